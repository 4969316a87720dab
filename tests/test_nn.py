"""scalevgae.nn against PyG: same outputs and gradients with the same weights."""

from __future__ import annotations

import pytest
import torch

from scalevgae.graph import Graph
from scalevgae.nn import DenseOutputTooLarge, GCNConv, InnerProductDecoder

pyg_nn = pytest.importorskip("torch_geometric.nn")

TOL = dict(rtol=1e-9, atol=1e-10)


def _edges(n: int, e: int, seed: int, *, loops: bool = True, dups: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    if not loops:
        ei = ei[:, ei[0] != ei[1]]
    if not dups:
        key = torch.unique(ei[0] * n + ei[1])
        ei = torch.stack([key // n, key % n])
        ei = ei[:, torch.randperm(ei.size(1), generator=g)]
    else:
        ei = torch.cat([ei, ei[:, : e // 4]], 1)
    return ei


def _pair(cin, cout, **kw):
    theirs = pyg_nn.GCNConv(cin, cout, **kw).double()
    ours = GCNConv(cin, cout, **kw).double()
    ours.load_state_dict(theirs.state_dict())
    with torch.no_grad():
        if theirs.bias is not None:
            theirs.bias.normal_()
            ours.bias.copy_(theirs.bias)
    return ours, theirs


def _check_same(ours, theirs, x, adj_ours, adj_theirs, **fw):
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    a = ours(xa, adj_ours, **fw)
    b = theirs(xb, adj_theirs, **fw)
    assert a.shape == b.shape
    torch.testing.assert_close(a, b, **TOL)
    gout = torch.randn_like(a)
    a.backward(gout)
    b.backward(gout)
    torch.testing.assert_close(xa.grad, xb.grad, **TOL)
    for (na, pa), (nb, pb) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert na == nb
        torch.testing.assert_close(pa.grad, pb.grad, **TOL)


@pytest.mark.parametrize("cin, cout", [(7, 3), (3, 7)])  # weight before / after the propagation
@pytest.mark.parametrize(
    "kw",
    [{}, {"improved": True}, {"add_self_loops": False}, {"normalize": False}, {"bias": False}, {"cached": True}],
)
def test_gcnconv_edge_index_matches_pyg(cin, cout, kw):
    n = 40
    ei = _edges(n, 150, seed=1)  # directed, with some self loops, no duplicates
    x = torch.randn(n, cin, dtype=torch.float64)
    ours, theirs = _pair(cin, cout, **kw)
    _check_same(ours, theirs, x, ei, ei)
    _check_same(ours, theirs, x, ei, ei)  # second call: cached structure


def test_gcnconv_int32_and_non_contiguous_inputs_match_pyg():
    n = 30
    ei = _edges(n, 100, seed=22)
    x = torch.randn(8, n, dtype=torch.float64).t()  # non-contiguous [n, 8]
    w = torch.rand(2 * ei.size(1), dtype=torch.float64)[::2]  # non-contiguous weights
    ei_nc = ei.t().contiguous().t()  # non-contiguous [2, E]
    assert not (x.is_contiguous() or w.is_contiguous() or ei_nc.is_contiguous())
    for adj in (ei.int(), ei_nc, ei_nc.int()):
        for fw in ({}, {"edge_weight": w}):
            ours, theirs = _pair(8, 3)
            _check_same(ours, theirs, x, adj, ei, **fw)


def test_gcnconv_target_to_source_flow_matches_pyg():
    n = 30
    ei = _edges(n, 100, seed=11)
    x = torch.randn(n, 5, dtype=torch.float64)
    ours, theirs = _pair(5, 3, flow="target_to_source")
    _check_same(ours, theirs, x, ei, ei)
    w = torch.rand(ei.size(1), dtype=torch.float64)
    _check_same(ours, theirs, x, ei, ei, edge_weight=w)


def test_gcnconv_duplicates_and_isolated_nodes_match_pyg():
    n = 30
    ei = _edges(20, 80, seed=2, dups=True)  # nodes 20..29 isolated, duplicate edges counted
    x = torch.randn(n, 5, dtype=torch.float64)
    for kw in ({}, {"improved": True}, {"add_self_loops": False}):
        ours, theirs = _pair(5, 4, **kw)
        _check_same(ours, theirs, x, ei, ei)


def test_gcnconv_edge_weight_matches_pyg():
    n = 25
    ei = _edges(n, 90, seed=3)
    w = torch.rand(ei.size(1), dtype=torch.float64) + 0.1
    x = torch.randn(n, 6, dtype=torch.float64)
    for kw in ({}, {"improved": True}, {"normalize": False}):
        ours, theirs = _pair(6, 4, **kw)
        _check_same(ours, theirs, x, ei, ei, edge_weight=w)


def test_gcnconv_sparse_tensor_matches_pyg():
    ts = pytest.importorskip("torch_sparse")
    n = 35
    ei = _edges(n, 120, seed=4)
    adj_t = ts.SparseTensor(row=ei[1], col=ei[0], sparse_sizes=(n, n))
    x = torch.randn(n, 6, dtype=torch.float64)
    for kw in ({}, {"improved": True}):
        ours, theirs = _pair(6, 3, **kw)
        _check_same(ours, theirs, x, adj_t, adj_t)
    vals = torch.rand(ei.size(1), dtype=torch.float64) + 0.5
    adj_w = ts.SparseTensor(row=ei[1], col=ei[0], value=vals, sparse_sizes=(n, n))
    ours, theirs = _pair(6, 3)
    _check_same(ours, theirs, x, adj_w, adj_w)


def test_gcnconv_graph_and_block_inputs():
    n = 30
    g = Graph.from_edge_index(_edges(n, 80, seed=5, loops=False), n, undirected=True)
    x = torch.randn(n, 5, dtype=torch.float64)
    ours, theirs = _pair(5, 4)
    pyg_ei = torch.stack([g.col, g.edge_index[0]])  # Graph rows are targets
    _check_same(ours, theirs, x, g, pyg_ei)

    class Block:  # anything with .propagate behaves like a sampled block
        def propagate(self, h, bias=None, activation=None):
            return g.propagate(h, bias=bias, activation=activation)

    torch.testing.assert_close(ours(x, Block()), theirs(x, pyg_ei), **TOL)
    with pytest.raises(TypeError):
        ours(x, [1, 2])
    with pytest.raises(IndexError):
        ours(x, torch.tensor([[0], [n]]))


def test_gcnconv_cache_follows_the_graph():
    n = 20
    x = torch.randn(n, 4, dtype=torch.float64)
    ours, theirs = _pair(4, 4)
    e1, e2 = _edges(n, 50, seed=6), _edges(n, 50, seed=7)
    torch.testing.assert_close(ours(x, e1), theirs(x, e1), **TOL)
    torch.testing.assert_close(ours(x, e2), theirs(x, e2), **TOL)  # new tensor: rebuilt
    e2[0, 0] = (e2[0, 0] + 1) % n  # in-place change bumps the version: rebuilt
    torch.testing.assert_close(ours(x, e2), theirs(x, e2), **TOL)


def test_state_dict_keys_and_constructor_errors():
    theirs = pyg_nn.GCNConv(8, 4)
    ours = GCNConv(8, 4)
    assert set(ours.state_dict()) == set(theirs.state_dict()) == {"lin.weight", "bias"}
    ours.load_state_dict(theirs.state_dict())
    with pytest.raises(ValueError):
        GCNConv(8, 4, normalize=False, add_self_loops=True)
    with pytest.raises(TypeError):
        GCNConv(8, 4, aggr="mean")


def test_vgae_with_our_modules_matches_pyg_vgae():
    """PyG's own VGAE, with our GCNConv/InnerProductDecoder swapped in: same losses and grads."""

    class Encoder(torch.nn.Module):
        def __init__(self, conv, cin, hidden, latent):
            super().__init__()
            self.conv1 = conv(cin, hidden)
            self.conv_mu = conv(hidden, latent)
            self.conv_logstd = conv(hidden, latent)

        def forward(self, x, edge_index):
            h = self.conv1(x, edge_index).relu()
            return self.conv_mu(h, edge_index), self.conv_logstd(h, edge_index)

    n, f = 60, 12
    ei = _edges(n, 240, seed=8, loops=False)
    ei = torch.cat([ei, ei.flip(0)], 1)
    x = torch.randn(n, f, dtype=torch.float64)
    theirs = pyg_nn.VGAE(Encoder(pyg_nn.GCNConv, f, 16, 8)).double()
    ours = pyg_nn.VGAE(Encoder(GCNConv, f, 16, 8), InnerProductDecoder()).double()
    ours.load_state_dict(theirs.state_dict())
    neg = torch.randint(0, n, (2, 200), generator=torch.Generator().manual_seed(9))
    losses = []
    for model in (ours, theirs):
        model.train()
        torch.manual_seed(123)  # same reparameterisation noise
        z = model.encode(x, ei)
        loss = model.recon_loss(z, ei, neg) + model.kl_loss() / n
        loss.backward()
        losses.append((loss.detach(), z.detach(), model.decoder(z, neg).detach(),
                       model.decoder.forward_all(z).detach()))
    for a, b in zip(*losses):
        torch.testing.assert_close(a, b, **TOL)
    for (na, pa), (nb, pb) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert na == nb
        torch.testing.assert_close(pa.grad, pb.grad, **TOL)


def test_forward_all_refuses_too_large():
    z = torch.randn(1000, 4)
    dec = InnerProductDecoder(max_dense_bytes=1000 * 1000 * 4 - 1)
    with pytest.raises(DenseOutputTooLarge, match="topk_links"):
        dec.forward_all(z)
    assert InnerProductDecoder(max_dense_bytes=4 * 10**6).forward_all(z).shape == (1000, 1000)
    huge = torch.empty(10**6, 2).expand(10**6, 2)
    with pytest.raises(DenseOutputTooLarge):  # default limit: half the available memory
        InnerProductDecoder().forward_all(huge)


def test_decoder_checks_indices():
    z = torch.randn(5, 3)
    dec = InnerProductDecoder()
    with pytest.raises(IndexError):
        dec(z, torch.tensor([[0], [5]]))
    with pytest.raises(ValueError):
        dec(z, torch.tensor([0, 1]))
    ei = torch.tensor([[0, 1, 4], [2, 3, 0]])
    torch.testing.assert_close(dec(z, ei), torch.sigmoid((z[ei[0]] * z[ei[1]]).sum(-1)))


def test_gcnconv_graph_improved_against_dense():
    n = 12
    g = Graph.from_edge_index(_edges(n, 30, seed=12, loops=False), n, undirected=True)
    x = torch.randn(n, 3, dtype=torch.float64)
    conv = GCNConv(3, 2, improved=True).double()
    a = torch.zeros(n, n, dtype=torch.float64)
    ei = g.edge_index
    a[ei[0], ei[1]] = 1
    a += 2 * torch.eye(n, dtype=torch.float64)
    dinv = a.sum(1).pow(-0.5)
    want = (dinv[:, None] * a * dinv[None, :]) @ x @ conv.lin.weight.t() + conv.bias
    torch.testing.assert_close(conv(x, g), want, **TOL)


# ---- issue 17: every adjacency and feature form PyG's GCNConv takes ----


def _adj_t(ei: torch.Tensor, n: int, values: torch.Tensor, layout: torch.layout) -> torch.Tensor:
    """PyG's transposed adjacency ``adj.t()`` (rows are targets) in ``layout``; COO stays uncoalesced."""
    adj = torch.sparse_coo_tensor(ei, values, (n, n)).t()
    if layout == torch.sparse_csr:
        return adj.coalesce().to_sparse_csr()
    if layout == torch.sparse_csc:
        return adj.coalesce().to_sparse_csc()
    return adj


def _check_grads(ours, theirs, a, b, leaves_a=(), leaves_b=()):
    """Same forward, same gradient for the parameters and the given leaf tensors."""
    assert a.shape == b.shape
    torch.testing.assert_close(a, b, **TOL)
    gout = torch.randn_like(a)
    a.backward(gout)
    b.backward(gout)
    for la, lb in zip(leaves_a, leaves_b):
        torch.testing.assert_close(la.grad, lb.grad, **TOL)
    for (na, pa), (nb, pb) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert na == nb
        torch.testing.assert_close(pa.grad, pb.grad, **TOL)


@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr, torch.sparse_csc])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kw", [{}, {"improved": True}, {"add_self_loops": False}, {"normalize": False}])
def test_gcnconv_torch_sparse_matches_pyg(layout, weighted, kw):
    n = 30
    ei = _edges(20, 110, seed=13, dups=True)  # self loops, duplicates (summed by COO), isolated nodes
    vals = (torch.rand(ei.size(1), dtype=torch.float64) + 0.2 if weighted
            else torch.ones(ei.size(1), dtype=torch.float64))
    x = torch.randn(n, 6, dtype=torch.float64)
    for cin, cout in ((6, 4), (6, 9)):
        ours, theirs = _pair(cin, cout, **kw)
        adj = _adj_t(ei, n, vals, layout)
        # PyG's gcn_norm refuses CSC: its reference is the same matrix as COO.
        ref = adj if layout != torch.sparse_csc else _adj_t(ei, n, vals, torch.sparse_coo)
        _check_same(ours, theirs, x, adj, ref)
        _check_same(ours, theirs, x, adj, ref)  # cached structure


def test_gcnconv_torch_sparse_cache_follows_version(monkeypatch):
    from scalevgae.nn.adjacency import AdjacencyCache

    builds = []
    build = AdjacencyCache._build
    monkeypatch.setattr(AdjacencyCache, "_build", lambda self, *a: builds.append(1) or build(self, *a))
    n = 25
    ei = _edges(n, 80, seed=14)
    x = torch.randn(n, 5, dtype=torch.float64)
    ours, theirs = _pair(5, 3)
    for layout in (torch.sparse_coo, torch.sparse_csr):
        adj = _adj_t(ei, n, torch.ones(ei.size(1), dtype=torch.float64), layout)
        builds.clear()
        # PyG gets a copy: its to_edge_index marks a COO coalesced in place (a new _version).
        torch.testing.assert_close(ours(x, adj), theirs(x, adj.clone()), **TOL)
        torch.testing.assert_close(ours(x, adj), theirs(x, adj.clone()), **TOL)
        assert len(builds) == 1  # same unchanged tensor: built once
        vals = adj._values() if layout == torch.sparse_coo else adj.values()
        vals.mul_(torch.rand_like(vals) + 0.5)  # in place: a new _version
        torch.testing.assert_close(ours(x, adj), theirs(x, adj.clone()), **TOL)
        assert len(builds) == 2


@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
@pytest.mark.parametrize("cin, cout", [(12, 4), (5, 9)])
def test_gcnconv_sparse_features_match_pyg(layout, cin, cout):
    n = 30
    ei = _edges(n, 100, seed=15)
    dense = torch.randn(n, cin, dtype=torch.float64) * (torch.rand(n, cin) < 0.2)  # bag-of-words-like
    xs = dense.to_sparse() if layout == torch.sparse_coo else dense.to_sparse_csr()
    w = torch.rand(ei.size(1), dtype=torch.float64) + 0.1
    for adj, fw in ((ei, {}), (ei, {"edge_weight": w}), (Graph.from_edge_index(ei, n), {})):
        ours, theirs = _pair(cin, cout)
        ref_adj = adj if isinstance(adj, torch.Tensor) else torch.stack([adj.edge_index[1], adj.edge_index[0]])
        _check_grads(ours, theirs, ours(xs, adj, **fw), theirs(dense, ref_adj, **fw))


@pytest.mark.parametrize("cin, cout", [(7, 3), (3, 7)])
def test_gcnconv_batched_features_match_pyg(cin, cout):
    ts = pytest.importorskip("torch_sparse")
    n, b = 25, 3
    ei = _edges(n, 90, seed=16)
    w = torch.rand(ei.size(1), dtype=torch.float64) + 0.1
    xb = torch.randn(b, n, cin, dtype=torch.float64)
    coo = _adj_t(ei, n, w, torch.sparse_coo)
    sp = ts.SparseTensor(row=ei[1], col=ei[0], sparse_sizes=(n, n))
    for adj, fw in ((ei, {}), (ei, {"edge_weight": w}), (coo, {}), (sp, {})):
        ours, theirs = _pair(cin, cout)
        xa, xr = xb.clone().requires_grad_(), xb.clone().requires_grad_()
        out = ours(xa, adj, **fw)
        assert out.shape == (b, n, cout)
        ref = torch.stack([theirs(xr[i], adj, **fw) for i in range(b)])  # PyG: one call per feature set
        _check_grads(ours, theirs, out, ref, [xa], [xr])


def test_gcnconv_learned_edge_weight_gradient_matches_pyg():
    n = 20
    ei = _edges(n, 70, seed=17)
    x = torch.randn(n, 4, dtype=torch.float64)
    for kw in ({}, {"improved": True}, {"normalize": False}):
        ours, theirs = _pair(4, 3, **kw)
        wa = (torch.rand(ei.size(1), dtype=torch.float64) + 0.1).requires_grad_()
        wb = wa.detach().clone().requires_grad_()
        _check_grads(ours, theirs, ours(x, ei, wa), theirs(x, ei, wb), [wa], [wb])
        wa.grad = None
        ours.zero_grad()
        out = ours(x, ei, wa)  # not cached: a second backward through a fresh normalization
        out.sum().backward()
        assert wa.grad is not None


def test_gcnconv_cached_reuses_the_first_normalization_like_pyg():
    """cached=True follows PyG: the first call's normalized graph (weights included) is kept for
    every later call on the layer, until reset_parameters()."""
    n = 20
    x = torch.randn(n, 4, dtype=torch.float64)
    e1, e2 = _edges(n, 50, seed=18), _edges(n, 50, seed=19)
    w1 = torch.rand(e1.size(1), dtype=torch.float64) + 0.1
    for first, then in (((e1,), (e2,)), ((e1, w1), (e1, w1 * 3 + 1)), ((e1, w1), (e2,))):
        ours, theirs = _pair(4, 3, cached=True)
        torch.testing.assert_close(ours(x, *first), theirs(x, *first), **TOL)
        a = ours(x, *then)
        torch.testing.assert_close(a, theirs(x, *then), **TOL)
        uncached, _ = _pair(4, 3)
        uncached.load_state_dict(ours.state_dict())
        torch.testing.assert_close(a, uncached(x, *first), **TOL)  # the first graph, not the new one
        ours.reset_parameters()
        ours.load_state_dict(uncached.state_dict())
        torch.testing.assert_close(ours(x, *then), uncached(x, *then), **TOL)


def test_gcnconv_refuses_unsupported_inputs():
    n = 10
    ei = _edges(n, 20, seed=20)
    conv = GCNConv(4, 3)
    with pytest.raises(ValueError, match=r"\[10, 10\]"):
        conv(torch.randn(n, 4), torch.eye(n + 1).to_sparse())
    with pytest.raises(ValueError, match="edge_weight"):
        conv(torch.randn(n, 4), torch.eye(n).to_sparse(), torch.ones(n))
    with pytest.raises(ValueError, match="edge_weight must have shape"):
        conv(torch.randn(n, 4), ei, torch.ones(3))
    with pytest.raises(ValueError, match="x must be"):
        conv(torch.randn(2, 3, n, 4), ei)
    with pytest.raises(ValueError, match="bipartite"):
        conv((torch.randn(n, 4), torch.randn(n, 4)), ei)
    with pytest.raises(TypeError, match="decomposed_layers"):
        GCNConv(4, 3, decomposed_layers=2)


@pytest.mark.parametrize("backend", ["inductor", "aot_eager"])
def test_gcnconv_models_compile(backend):
    """A PyG-style GAE built from the drop-ins under torch.compile: same z and gradients as eager;
    the cached-graph lookup runs eagerly (torch.compiler.disable), the propagation is traced."""

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv_mu = GCNConv(12, 16), GCNConv(16, 8)

        def forward(self, x, edge_index):
            return self.conv_mu(self.conv1(x, edge_index).relu(), edge_index)

    n = 40
    ei = _edges(n, 160, seed=21, loops=False)
    x = torch.randn(n, 12)
    pos = ei[:, :50]
    neg = torch.randint(0, n, (2, 50), generator=torch.Generator().manual_seed(0))
    model = pyg_nn.GAE(Encoder(), InnerProductDecoder())

    def step(m):
        m.zero_grad()
        z = m.encode(x, ei)
        loss = m.recon_loss(z, pos, neg)
        loss.backward()
        return z.detach(), loss.detach(), [p.grad.clone() for p in m.parameters()]

    want = step(model)
    compiled = torch.compile(model, backend=backend)
    torch._dynamo.reset()
    for _ in range(2):  # the second call runs the cached structure through the compiled graph
        got = step(compiled)
        torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got[1], want[1], rtol=1e-5, atol=1e-6)
        for a, b in zip(got[2], want[2]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
