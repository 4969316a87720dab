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
