import numpy as np
import pytest
import torch

from scalevgae import Graph
from scalevgae.data import planted_partition
from scalevgae.models import GAE, VGAE, GCNEncoder, GraphConv, VGAEEncoder, build_model
from scalevgae.ops.propagate import gcn_propagate


def dense_norm_adj(g: Graph) -> torch.Tensor:
    a = torch.zeros(g.num_nodes, g.num_nodes, dtype=torch.float64)
    ei = g.edge_index()
    a[ei[1], ei[0]] = 1  # row = destination
    a += torch.eye(g.num_nodes, dtype=torch.float64)
    d = a.sum(1).rsqrt()
    return d[:, None] * a * d[None, :]


def small(n=40, f=12, seed=0):
    d = planted_partition(n, avg_degree=4, feature_dim=f, seed=seed)
    return d.graph, d.x.double()


class FakeBlock:
    """A bipartite block: destinations are the first num_dst sources (full-graph normalization)."""

    def __init__(self, g: Graph, dst: torch.Tensor):
        nbr = torch.cat([g.col[g.rowptr[i]:g.rowptr[i + 1]] for i in dst.tolist()] + [dst])
        extra = nbr[~torch.isin(nbr, dst)].unique()
        self.src_nodes = torch.cat([dst, extra])
        local = torch.full((g.num_nodes,), -1, dtype=torch.long)
        local[self.src_nodes] = torch.arange(self.src_nodes.numel())
        rows = [local[g.col[g.rowptr[i]:g.rowptr[i + 1]]] for i in dst.tolist()]
        self.rowptr = torch.tensor([0] + np.cumsum([r.numel() for r in rows]).tolist())
        self.col = torch.cat(rows)
        self.num_dst = dst.numel()
        norm = g.gcn_norm(torch.float64)
        self.src_scale, self.dst_scale = norm[self.src_nodes], norm[dst]

    def propagate(self, x, *, bias=None, activation=None):
        return gcn_propagate(self.rowptr, self.col, x, src_scale=self.src_scale.to(x.dtype),
                             dst_scale=self.dst_scale.to(x.dtype), bias=bias, activation=activation)


def full_blocks(g, seeds):
    b2 = FakeBlock(g, seeds)
    b1 = FakeBlock(g, b2.src_nodes)
    return [b1, b2], b1.src_nodes


@pytest.mark.parametrize("fin,fout", [(12, 5), (3, 8)])
def test_graphconv_matches_dense(fin, fout):
    g, _ = small(f=fin)
    x = torch.randn(g.num_nodes, fin, dtype=torch.float64)
    conv = GraphConv(fin, fout, bias=True).double()
    torch.nn.init.normal_(conv.bias)
    assert conv.transform_first == (fout < fin)
    ref = torch.relu(dense_norm_adj(g) @ x @ conv.weight + conv.bias)
    torch.testing.assert_close(conv(g, x, activation="relu"), ref)
    out = conv.forward_chunked(g, x.numpy(), batch_size=7, activation="relu")
    torch.testing.assert_close(out, ref.detach())


def test_glorot_range_and_no_bias():
    conv = GraphConv(100, 20)
    a = (6 / 120) ** 0.5
    assert conv.bias is None
    assert conv.weight.abs().max() <= a and conv.weight.abs().max() > 0.8 * a


@pytest.mark.parametrize("kind", ["gae", "vgae"])
def test_blocks_equal_full_graph(kind):
    g, x = small()
    torch.manual_seed(0)
    model = build_model(kind, x.size(1), 8, 4).double().eval()
    seeds = torch.tensor([3, 17, 5, 30])
    blocks, inputs = full_blocks(g, seeds)
    z_full = model.encode(g, x)
    z_blk = model.encode(blocks, x[inputs])
    torch.testing.assert_close(z_blk, z_full[seeds])
    with pytest.raises(ValueError, match="blocks"):
        model.encode(blocks[:1], x[inputs])


@pytest.mark.parametrize("kind,fin", [("gae", 12), ("vgae", 12), ("vgae", 3)])
def test_embed_matches_encode(kind, fin):
    g, x = small(f=fin)
    torch.manual_seed(1)
    model = build_model(kind, fin, 8, 4).double()
    model.train()
    emb = model.embed(g, x, batch_size=9)
    assert model.training  # restored
    model.eval()
    torch.testing.assert_close(emb, model.encode(g, x))
    torch.testing.assert_close(model.embed(g, x.numpy(), batch_size=1000), emb)


def test_vgae_reparam_clamp_and_kl():
    g, x = small()
    torch.manual_seed(0)
    model = VGAE(VGAEEncoder(x.size(1), 8, 4)).double()
    model.eval()
    z = model.encode(g, x)
    mu, logstd = model.encoder(g, x)
    torch.testing.assert_close(z, mu)
    model.train()
    z1 = model.encode(g, x)
    assert not torch.allclose(z1, mu)
    ls = torch.full((5, 4), 50.0, dtype=torch.float64)
    m = torch.randn(5, 4, dtype=torch.float64)
    kl = model.kl_loss(m, ls)
    ls_c = ls.clamp(max=10)
    ref = -0.5 * (1 + 2 * ls_c - m**2 - (2 * ls_c).exp()).sum(1).mean()
    torch.testing.assert_close(kl, ref.float())
    with pytest.raises(RuntimeError, match="encode"):
        VGAE(VGAEEncoder(3, 4, 2)).kl_loss()


def test_recon_loss_decode_test():
    g, x = small()
    torch.manual_seed(0)
    model = GAE(GCNEncoder(x.size(1), 8, 4)).double()
    z = model.encode(g, x)
    pos = g.edge_index()[:, :20]
    neg = torch.randint(0, g.num_nodes, (2, 30))
    lp = (z[pos[0]] * z[pos[1]]).sum(1)
    ln = (z[neg[0]] * z[neg[1]]).sum(1)
    ref = torch.nn.functional.softplus(-lp).mean() + torch.nn.functional.softplus(ln).mean()
    torch.testing.assert_close(model.recon_loss(z, pos, neg), ref)
    loss = model.recon_loss(z, pos)  # sampled negatives
    loss.backward()
    assert torch.isfinite(loss) and model.encoder.conv1.weight.grad is not None
    p = model.decode(z, pos)
    assert p.shape == (20,) and bool(((p >= 0) & (p <= 1)).all())
    sk = pytest.importorskip("sklearn.metrics")
    auc, ap = model.test(z, pos, neg)
    y = np.r_[np.ones(20), np.zeros(30)]
    s = torch.cat([lp, ln]).detach().numpy()
    assert abs(auc - sk.roc_auc_score(y, s)) < 1e-9 and abs(ap - sk.average_precision_score(y, s)) < 1e-9
    with pytest.raises(ValueError, match="pos_edge_index"):
        model.recon_loss(z, pos[0])


def test_same_losses_as_pyg():
    pyg = pytest.importorskip("torch_geometric.nn.models.autoencoder")
    g, x = small()
    torch.manual_seed(0)
    ours = VGAE(VGAEEncoder(x.size(1), 8, 4)).double().eval()

    class Enc(torch.nn.Module):
        def forward(self, x, graph):
            return ours.encoder(graph, x)

    theirs = pyg.VGAE(Enc()).double().eval()
    z1, z2 = ours.encode(g, x), theirs.encode(x, g)
    torch.testing.assert_close(z1, z2)
    pos, neg = g.edge_index()[:, :25], torch.randint(0, g.num_nodes, (2, 25))
    torch.testing.assert_close(ours.recon_loss(z1, pos, neg), theirs.recon_loss(z2, pos, neg), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours.kl_loss().double(), theirs.kl_loss(), rtol=1e-6, atol=1e-6)
    a1, p1 = ours.test(z1, pos, neg)
    a2, p2 = theirs.test(z2, pos, neg)
    assert abs(a1 - a2) < 1e-9 and abs(p1 - p2) < 1e-9


def test_same_device():
    from scalevgae.models.conv import same_device

    assert same_device(torch.device("cpu"), "cpu")
    assert not same_device("cpu", "meta")


def test_vgae_logstd_head_starts_at_zero():
    torch.manual_seed(0)
    enc = VGAEEncoder(12, 8, 4)
    assert bool((enc.conv_logstd.weight == 0).all()) and bool((enc.conv_mu.weight != 0).any())
    enc.conv_logstd.weight.data.fill_(1.0)
    enc.reset_parameters()
    assert bool((enc.conv_logstd.weight == 0).all())
    g, x = small()
    mu, logstd = enc.float()(g, x.float())
    assert bool((logstd == 0).all()) and mu.abs().sum() > 0  # posterior N(mu, I) at init
    glorot = VGAEEncoder(6, 8, 4, logstd_init="glorot")
    assert bool((glorot.conv_logstd.weight != 0).any())
    with pytest.raises(ValueError, match="logstd_init"):
        VGAEEncoder(6, 8, 4, logstd_init="ones")
