"""scalevgae.Graph: construction, properties, conversions, propagation, validation."""

from __future__ import annotations

import importlib.util
import os
import time

import pytest
import torch

from scalevgae import Graph

_HAS_SCIPY = importlib.util.find_spec("scipy") is not None
_HAS_PYG = importlib.util.find_spec("torch_geometric") is not None
_HAS_TS = importlib.util.find_spec("torch_sparse") is not None


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))


def dense_adj(g: Graph) -> torch.Tensor:
    A = torch.zeros(g.num_nodes, g.num_nodes, dtype=torch.float64)
    ei = g.edge_index
    A[ei[0], ei[1]] = 1.0
    return A


def random_edges(n, m, gen):
    return torch.randint(0, n, (2, m), generator=gen)


def test_edge_index_is_a_cached_tensor_attribute():
    """PyG's data.edge_index shape: a [2, E] int64 tensor attribute, row-major from the CSR."""
    g = Graph.from_edge_index(torch.tensor([[0, 2, 3, 1], [1, 0, 2, 3]]), 5, undirected=False)
    assert isinstance(g.edge_index, torch.Tensor) and g.edge_index is g.edge_index  # built once
    assert g.edge_index.dtype == torch.int64 and g.edge_index.tolist() == [[0, 1, 2, 3], [1, 3, 0, 2]]
    assert Graph.from_edge_index(g.edge_index, 5, undirected=False).col.tolist() == g.col.tolist()
    assert g.to("cpu").edge_index.tolist() == g.edge_index.tolist()
    empty = Graph.from_edge_index(torch.zeros(2, 0, dtype=torch.long), 3)
    assert empty.edge_index.shape == (2, 0)


def test_from_edge_index_dedups_drops_self_loops_sorts(gen):
    ei = torch.tensor([[0, 0, 1, 2, 2, 3, 3], [1, 1, 1, 0, 3, 0, 2]])
    g = Graph.from_edge_index(ei, 5, undirected=False)
    assert g.rowptr.dtype == torch.int32 and g.col.dtype == torch.int32  # int32 where it fits
    assert g.rowptr.tolist() == [0, 1, 1, 3, 5, 5]
    assert g.col.tolist() == [1, 0, 3, 0, 2]
    assert g.num_edges == 5 and g.num_nodes == 5
    assert g.degree().tolist() == [1, 0, 2, 2, 0]


def test_undirected_stores_both_directions(gen):
    n = 50
    ei = random_edges(n, 200, gen)
    g = Graph.from_edge_index(ei, n)
    A = torch.zeros(n, n, dtype=torch.float64)
    A[ei[0], ei[1]] = 1
    A = ((A + A.t()) > 0).double()
    A.fill_diagonal_(0)
    torch.testing.assert_close(dense_adj(g), A)
    assert g.num_edges == int(A.sum())
    assert g.is_symmetric
    for r in range(n):  # sorted, unique columns per row
        c = g.col[g.rowptr[r]:g.rowptr[r + 1]]
        assert torch.all(c[1:] > c[:-1])


def test_num_nodes_inferred_and_isolated_nodes(gen):
    g = Graph.from_edge_index(torch.tensor([[0, 3], [3, 0]]))
    assert g.num_nodes == 4 and g.degree().tolist() == [1, 0, 0, 1]
    assert Graph.from_edge_index(torch.zeros(2, 0, dtype=torch.long)).num_nodes == 0


def test_transpose_and_symmetry(gen):
    n = 40
    g = Graph.from_edge_index(random_edges(n, 150, gen), n, undirected=False)
    t = g.transpose()
    torch.testing.assert_close(dense_adj(t), dense_adj(g).t())
    assert t.transpose() is g
    assert g.is_symmetric == torch.equal(dense_adj(g), dense_adj(g).t())
    s = Graph.from_edge_index(random_edges(n, 150, gen), n, undirected=True)
    fresh = Graph(s.rowptr, s.col, n)  # symmetry computed, not declared
    assert fresh.is_symmetric and fresh.transpose() is fresh
    assert not Graph.from_edge_index(torch.tensor([[0], [1]]), 2, undirected=False).is_symmetric


def test_to_keeps_structure(gen):
    g = Graph.from_edge_index(random_edges(20, 60, gen), 20)
    h = g.to("cpu")
    assert torch.equal(h.rowptr, g.rowptr) and torch.equal(h.col, g.col) and h.num_nodes == 20
    assert h.is_symmetric
    if torch.cuda.is_available():
        assert g.to("cuda").device.type == "cuda"


@pytest.mark.parametrize("undirected", [True, False])
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_propagate_matches_dense_gcn(undirected, backend, gen):
    from scalevgae.ops import available_backends

    if not available_backends()[backend].usable:
        pytest.skip(available_backends()[backend].reason)
    n, F = 45, 6
    g = Graph.from_edge_index(random_edges(n, 120, gen), n, undirected=undirected)
    A_hat = dense_adj(g) + torch.eye(n, dtype=torch.float64)
    d = A_hat.sum(1).rsqrt()
    x = torch.randn(n, F, generator=gen, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(F, generator=gen, dtype=torch.float64)
    want = torch.relu(d[:, None] * (A_hat @ (d[:, None] * x)) + bias)
    y = g.propagate(x, bias=bias, activation="relu", backend=backend)
    torch.testing.assert_close(y, want)
    (gy,) = torch.autograd.grad(y.sum(), x)
    (gw,) = torch.autograd.grad(want.sum(), x)
    torch.testing.assert_close(gy, gw)
    y32 = g.propagate(x.detach().float(), backend=backend)
    torch.testing.assert_close(y32.double(), d[:, None] * (A_hat @ (d[:, None] * x.detach())), rtol=1e-5, atol=1e-5)


def test_validation_errors():
    with pytest.raises(ValueError, match="edge_index"):
        Graph.from_edge_index(torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="edge_index"):
        Graph.from_edge_index(torch.zeros(2, 4))
    with pytest.raises(IndexError, match="edge_index"):
        Graph.from_edge_index(torch.tensor([[0, -1], [1, 0]]), 3)
    with pytest.raises(IndexError, match="edge_index"):
        Graph.from_edge_index(torch.tensor([[0, 5], [1, 0]]), 3)
    with pytest.raises(ValueError, match="rowptr"):
        Graph(torch.tensor([0, 2, 1]), torch.tensor([0]), 2)
    with pytest.raises(IndexError, match="col"):
        Graph(torch.tensor([0, 1, 1]), torch.tensor([2]), 2)
    with pytest.raises(ValueError, match="num_nodes"):
        Graph(torch.tensor([0, 1, 1]), torch.tensor([1]), 3)
    g = Graph.from_edge_index(torch.tensor([[0], [1]]), 2)
    with pytest.raises(ValueError, match="x must have shape"):
        g.propagate(torch.randn(3, 4))


@pytest.mark.skipif(not _HAS_SCIPY, reason="scipy not installed")
def test_from_scipy(gen):
    import scipy.sparse as sp

    n = 30
    ei = random_edges(n, 90, gen)
    m = sp.coo_matrix(([1.0] * 90, (ei[0].numpy(), ei[1].numpy())), shape=(n, n))
    g = Graph.from_scipy(m.tocsr())
    want = torch.zeros(n, n, dtype=torch.float64)
    want[ei[0], ei[1]] = 1
    want.fill_diagonal_(0)
    torch.testing.assert_close(dense_adj(g), want)
    with pytest.raises(ValueError, match="square"):
        Graph.from_scipy(sp.coo_matrix((3, 4)))


@pytest.mark.skipif(not _HAS_PYG, reason="torch_geometric not installed")
def test_from_pyg(gen):
    from torch_geometric.data import Data

    ei = random_edges(25, 70, gen)
    g = Graph.from_pyg(Data(edge_index=ei, num_nodes=25))
    want = torch.zeros(25, 25, dtype=torch.float64)
    want[ei[0], ei[1]] = 1
    want.fill_diagonal_(0)
    torch.testing.assert_close(dense_adj(g), want)
    assert Graph.from_pyg(Data(edge_index=ei, num_nodes=25), undirected=True).is_symmetric


@pytest.mark.skipif(not _HAS_TS, reason="torch_sparse not installed")
def test_from_sparse_tensor(gen):
    from torch_sparse import SparseTensor

    ei = random_edges(25, 70, gen)
    adj = SparseTensor(row=ei[0], col=ei[1], sparse_sizes=(25, 25))
    g = Graph.from_sparse_tensor(adj)
    want = torch.zeros(25, 25, dtype=torch.float64)
    want[ei[0], ei[1]] = 1
    want.fill_diagonal_(0)
    torch.testing.assert_close(dense_adj(g), want)
    with pytest.raises(ValueError, match="square"):
        Graph.from_sparse_tensor(SparseTensor(row=ei[0], col=ei[1] % 5, sparse_sizes=(25, 5)))


@pytest.mark.slow
def test_csr_build_time_million_nodes():
    """10^6 nodes, 1.6e7 stored directed edges: seconds, not minutes (loose bound, shared CI cores)."""
    gen = torch.Generator().manual_seed(0)
    n = 1_000_000
    ei = torch.randint(0, n, (2, 8_000_000), generator=gen)
    t = time.perf_counter()
    g = Graph.from_edge_index(ei, n)
    dt = time.perf_counter() - t
    print(f"Graph.from_edge_index: {n} nodes, {g.num_edges} edges in {dt:.2f} s")
    assert g.num_edges > 15_000_000
    assert dt < 120


def test_index_dtype_decision():
    """int32 while every node id and row pointer fits, int64 from 2^31 nodes or entries."""
    from scalevgae.csr import index_dtype

    assert index_dtype(0, 0) == index_dtype(2**31 - 1, 2**31 - 1) == torch.int32
    assert index_dtype(2**31, 0) == index_dtype(10, 2**31) == torch.int64


@pytest.mark.parametrize("fits", [True, False])
def test_index_dtype_end_to_end(monkeypatch, gen, fits):
    """Graph, transpose, split and a training batch keep one index dtype: int32 where it fits,
    int64 past the limit (the limit lowered to 63 here: 2^31 nodes cannot be built in a test).
    Any int32/int64 input gives the same graph; edge_index stays int64 for PyG."""
    from scalevgae.data.split import split_edges
    from scalevgae.loader import LinkLoader

    if not fits:
        monkeypatch.setattr("scalevgae.csr.INT32_MAX", 63)
    want = torch.int32 if fits else torch.int64
    n = 40
    ei = torch.randint(0, n, (2, 300), generator=gen)
    g = Graph.from_edge_index(ei, n)
    assert g.rowptr.dtype == g.col.dtype == want and g.edge_index.dtype == torch.int64
    for other in (Graph.from_edge_index(ei.int(), n), Graph(g.rowptr.long(), g.col.long(), n),
                  Graph(g.rowptr.int(), g.col.int(), n)):
        assert other.rowptr.dtype == other.col.dtype == want
        assert torch.equal(other.rowptr, g.rowptr) and torch.equal(other.col, g.col)
    directed = Graph.from_edge_index(ei, n, undirected=False)
    t = directed.transpose()
    assert t.rowptr.dtype == t.col.dtype == want and directed.degree().dtype == torch.int64
    x = torch.randn(n, 5, dtype=torch.float64, generator=gen)
    a = dense_adj(directed) + torch.eye(n, dtype=torch.float64)
    d = a.sum(1).rsqrt()[:, None]
    torch.testing.assert_close(directed.propagate(x), d * (a @ (d * x)))
    sp = split_edges(g, 0.1, 0.1, seed=0)
    for e in (sp.train_pos, sp.val_pos, sp.val_neg, sp.test_pos, sp.test_neg):
        assert e.dtype == want
    assert sp.train_graph.col.dtype == want
    loader = LinkLoader(sp.train_graph, x.float(), sp.train_pos, batch_size=16, fanouts=[3, 2], exclude=[g],
                        generator=torch.Generator().manual_seed(0))
    assert loader.pos_pairs.dtype == want  # no int64 copy of the positives
    batch = next(iter(loader))
    assert batch.label.sum() == batch.num_pos == 16 and batch.x.shape == (batch.n_id.numel(), 5)
