"""Link split, negative pair sampling and the CSR membership test."""

from __future__ import annotations

import pytest
import torch

from scalevgae import Graph, _ext
from scalevgae.data import planted_partition, split_edges
from scalevgae.sampling import negative_pairs
from scalevgae.sampling.membership import has_pairs, has_pairs_reference

CPU_BACKENDS = ["reference"] + (["cpu"] if _ext.loaded() else [])


@pytest.fixture(scope="module")
def graph() -> Graph:
    return planted_partition(1500, 10, feature_dim=0, seed=4).graph


def ukeys(pairs: torch.Tensor, n: int) -> torch.Tensor:
    return pairs.min(0).values * n + pairs.max(0).values


def test_split_partitions_edges(graph):
    n = graph.num_nodes
    sp = split_edges(graph, 0.05, 0.1, seed=3)
    ei = graph.edge_index
    m = int((ei[0] < ei[1]).sum())
    assert sp.val_pos.size(1) == int(m * 0.05) and sp.test_pos.size(1) == int(m * 0.1)
    parts = [ukeys(p, n) for p in (sp.train_pos, sp.val_pos, sp.test_pos)]
    allk = torch.cat(parts)
    assert allk.numel() == m and torch.unique(allk).numel() == m  # no overlap, nothing lost
    assert torch.equal(torch.sort(allk).values, torch.sort(ukeys(ei[:, ei[0] < ei[1]], n)).values)
    # train graph: exactly the training edges, both directions
    tg = sp.train_graph
    assert tg.is_symmetric and tg.num_edges == 2 * sp.train_pos.size(1)
    assert torch.equal(torch.sort(ukeys(tg.edge_index[:, tg.edge_index[0] < tg.edge_index[1]], n)).values,
                       torch.sort(parts[0]).values)
    for held in (sp.val_pos, sp.test_pos):
        assert not bool(has_pairs(tg, held[0], held[1]).any())
        assert not bool(has_pairs(tg, held[1], held[0]).any())


def test_split_negatives(graph):
    n = graph.num_nodes
    sp = split_edges(graph, seed=5)
    for pos, neg in ((sp.val_pos, sp.val_neg), (sp.test_pos, sp.test_neg)):
        assert neg.shape == pos.shape and neg.dtype == pos.dtype == torch.int32  # the graph's index dtype
        assert not bool((neg[0] == neg[1]).any())
        assert not bool(has_pairs(graph, neg[0], neg[1]).any())
    both = torch.cat([ukeys(sp.val_neg, n), ukeys(sp.test_neg, n)])
    assert torch.unique(both).numel() == both.numel()


def test_split_reproducible(graph):
    a, b, c = split_edges(graph, seed=1), split_edges(graph, seed=1), split_edges(graph, seed=2)
    for f in ("train_pos", "val_pos", "val_neg", "test_pos", "test_neg"):
        assert torch.equal(getattr(a, f), getattr(b, f))
    assert not torch.equal(a.val_pos, c.val_pos)
    assert torch.equal(a.train_graph.col, b.train_graph.col)


def test_split_directed_and_edge_cases():
    ei = torch.randint(0, 200, (2, 1500), generator=torch.Generator().manual_seed(0))
    g = Graph.from_edge_index(ei, 200, undirected=False)
    assert not g.is_symmetric
    sp = split_edges(g, 0.1, 0.2, seed=0)
    m = g.num_edges
    assert sp.train_pos.size(1) + sp.val_pos.size(1) + sp.test_pos.size(1) == m
    assert sp.train_graph.num_edges == sp.train_pos.size(1)
    keys = torch.cat([p[0] * 200 + p[1] for p in (sp.train_pos, sp.val_pos, sp.test_pos)])
    assert torch.unique(keys).numel() == m
    empty = split_edges(Graph.from_edge_index(torch.empty(2, 0, dtype=torch.long), 5), seed=0)
    assert empty.val_pos.shape == (2, 0) and empty.train_graph.num_edges == 0
    none = split_edges(g, 0.0, 0.0)
    assert none.train_graph.num_edges == m
    with pytest.raises(ValueError):
        split_edges(g, 0.6, 0.5)
    with pytest.raises(ValueError):
        split_edges(g, -0.1, 0.1)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_has_pairs_backends(graph, backend):
    gen = torch.Generator().manual_seed(0)
    ei = graph.edge_index
    s = torch.cat([ei[0, ::5], torch.randint(0, graph.num_nodes, (3000,), generator=gen)])
    d = torch.cat([ei[1, ::5], torch.randint(0, graph.num_nodes, (3000,), generator=gen)])
    dense = torch.zeros(graph.num_nodes, graph.num_nodes, dtype=torch.bool)
    dense[ei[0], ei[1]] = True  # small graph: a dense check as ground truth
    got = has_pairs(graph, s, d, backend=backend)
    assert torch.equal(got, dense[s, d])
    assert torch.equal(has_pairs_reference(graph.rowptr.int(), graph.col.int(), s, d), dense[s, d])
    with pytest.raises(IndexError):
        has_pairs(graph, s + graph.num_nodes, d, backend=backend)
    with pytest.raises(ValueError, match="same length"):
        has_pairs(graph, s[:-1], d, backend=backend)


@pytest.mark.skipif(not _ext.loaded(), reason="compiled extension not built")
def test_has_pairs_opcheck(graph):
    s = torch.randint(0, graph.num_nodes, (50,))
    torch.library.opcheck(torch.ops.scalevgae.csr_has_pairs.default, (graph.rowptr, graph.col, s, s.flip(0)))


@pytest.mark.parametrize("method", ["uniform", "degree"])
def test_negative_pairs(graph, method):
    n = graph.num_nodes
    other = Graph.from_edge_index(torch.stack([torch.arange(n - 1), torch.arange(1, n)]), n)
    neg = negative_pairs(graph, 5000, method=method, exclude=[other], generator=torch.Generator().manual_seed(0))
    assert neg.shape == (2, 5000) and neg.dtype == torch.long
    assert not bool((neg[0] == neg[1]).any())
    assert not bool(has_pairs(graph, neg[0], neg[1]).any())
    assert not bool(has_pairs(other, neg[0], neg[1]).any())
    again = negative_pairs(graph, 5000, method=method, exclude=[other], generator=torch.Generator().manual_seed(0))
    assert torch.equal(neg, again)


def test_negative_pairs_degree_bias_and_options(graph):
    gen = torch.Generator().manual_seed(1)
    deg = graph.degree().double() + 1
    neg = negative_pairs(graph, 20000, method="degree", exclude_edges=False, generator=gen)
    top = torch.topk(deg, 20).indices
    share = torch.isin(neg[0], top).double().mean()
    expect = deg[top].sum() / deg.sum()
    assert abs(float(share - expect)) < 0.02  # endpoints follow degree + 1
    # a complete graph has no non-edges: the sampler says so instead of looping forever
    k = 6
    full = Graph.from_edge_index(torch.combinations(torch.arange(k)).t(), k)
    with pytest.raises(RuntimeError, match="could not"):
        negative_pairs(full, 3, max_rounds=5)
    assert negative_pairs(full, 3, exclude_edges=False).shape == (2, 3)
    with pytest.raises(ValueError, match="method"):
        negative_pairs(graph, 3, method="hard")
    with pytest.raises(ValueError, match="exclude"):
        negative_pairs(graph, 3, exclude=[full])
    assert negative_pairs(graph, 0).shape == (2, 0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_negative_pairs_and_has_pairs_cuda(graph):
    g = graph.to("cuda")
    neg = negative_pairs(g, 4000, generator=torch.Generator(device="cuda").manual_seed(0))
    assert neg.is_cuda and neg.shape == (2, 4000)
    assert not bool(has_pairs(graph, neg[0].cpu(), neg[1].cpu()).any())
    ei = g.edge_index
    assert bool(has_pairs(g, ei[0], ei[1]).all())
    sp = split_edges(g, seed=0)
    assert sp.train_graph.device.type == "cuda"
