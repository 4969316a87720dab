"""topk_links against a dense computation; write_topk_csv."""

from __future__ import annotations

import csv

import pytest
import torch

from scalevgae.data.io import write_topk_csv
from scalevgae.graph import Graph
from scalevgae.ops.topk import topk_links


def _dense_topk(z, k, query, exclude, exclude_self=True):
    s = (z.double() @ z.double().t())
    if exclude_self:
        s.fill_diagonal_(float("-inf"))
    if exclude is not None:
        ei = exclude.edge_index
        s[ei[0], ei[1]] = float("-inf")
    s = s[query]
    vals, idx = s.topk(min(k, z.size(0)), dim=1)
    return idx, vals


@pytest.mark.parametrize("chunk", [7, 64, 4096])
@pytest.mark.parametrize("k", [1, 5, 17])
def test_topk_matches_dense(chunk, k):
    g = torch.Generator().manual_seed(chunk * 100 + k)
    n = 150
    z = torch.randn(n, 8, generator=g, dtype=torch.float64)
    ei = torch.randint(0, n, (2, 600), generator=g)
    graph = Graph.from_edge_index(ei, n, undirected=True)
    query = torch.cat([torch.randperm(n, generator=g)[:40], torch.tensor([3, 3])])
    for excl in (None, graph):
        idx, sc = topk_links(z, k, query=query, exclude=excl, chunk=chunk)
        ridx, rsc = _dense_topk(z, k, query, excl)
        assert idx.shape == sc.shape == (query.numel(), k)
        torch.testing.assert_close(sc, rsc)
        assert torch.equal(idx, ridx)
    # exclude_self=False keeps i itself as a candidate
    idx, sc = topk_links(z, k, query=query, exclude_self=False, chunk=chunk)
    ridx, rsc = _dense_topk(z, k, query, None, exclude_self=False)
    torch.testing.assert_close(sc, rsc)
    assert torch.equal(idx, ridx)


def test_topk_float32_all_nodes_and_padding():
    z = torch.randn(50, 4)
    idx, sc = topk_links(z, 3, chunk=16)
    ridx, rsc = _dense_topk(z, 3, torch.arange(50), None)
    torch.testing.assert_close(sc, rsc.float(), rtol=1e-5, atol=1e-5)
    assert sc.dtype == torch.float32 and idx.shape == (50, 3)
    # more partners than exist: padded with -1 / -inf
    full = Graph.from_edge_index(torch.tensor([[0, 0, 1], [1, 2, 2]]), 4, undirected=True)
    idx, sc = topk_links(torch.randn(4, 2), 5, exclude=full, chunk=2)
    assert idx[0].tolist()[1:] == [-1] * 4 and idx[0, 0] == 3 and torch.isneginf(sc[0, 1:]).all()
    assert topk_links(torch.randn(5, 2), 2, query=torch.zeros(0, dtype=torch.long))[0].shape == (0, 2)
    bf = topk_links(torch.randn(20, 4).bfloat16(), 2)[1]
    assert bf.dtype == torch.float32


def test_topk_errors():
    z = torch.randn(10, 3)
    with pytest.raises(ValueError):
        topk_links(z, 0)
    with pytest.raises(IndexError):
        topk_links(z, 2, query=torch.tensor([10]))
    with pytest.raises(ValueError, match="NaN"):
        topk_links(torch.full((3, 2), float("nan")), 1)
    with pytest.raises(ValueError, match="nodes"):
        topk_links(z, 1, exclude=Graph.from_edge_index(torch.tensor([[0], [1]]), 5))


def test_write_topk_csv(tmp_path):
    z = torch.randn(6, 3)
    q = torch.tensor([0, 4])
    full = Graph.from_edge_index(torch.tensor([[0, 0, 0, 0], [1, 2, 3, 4]]), 6, undirected=True)
    idx, sc = topk_links(z, 2, query=q, exclude=full)
    names = ["a", "b", "c", "d", "e", "f"]
    p = tmp_path / "top.csv"
    nrows = write_topk_csv(p, q, idx, sc, node_ids=names)
    rows = list(csv.reader(open(p)))
    assert rows[0] == ["node", "candidate", "score"] and len(rows) == 1 + nrows == 4  # node 0 has 1 candidate
    assert rows[1][:2] == ["a", "f"]
    assert {r[0] for r in rows[1:]} == {"a", "e"}
    assert abs(float(rows[1][2]) - float(sc[0, 0])) < 1e-4


def test_write_topk_csv_indices_and_probabilities(tmp_path):
    idx = torch.tensor([[2, -1], [0, 1]])
    sc = torch.tensor([[0.0, float("-inf")], [1.0, -1.0]])
    p = tmp_path / "t.csv"
    assert write_topk_csv(p, torch.tensor([5, 7]), idx, sc, sigmoid=True) == 3
    rows = list(csv.reader(open(p)))[1:]
    assert [r[:2] for r in rows] == [["5", "2"], ["7", "0"], ["7", "1"]]
    assert abs(float(rows[0][2]) - 0.5) < 1e-6 and abs(float(rows[1][2]) - torch.sigmoid(torch.tensor(1.0))) < 1e-6
    with pytest.raises(ValueError):
        write_topk_csv(p, torch.tensor([5]), idx, sc)
