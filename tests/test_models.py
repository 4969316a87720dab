import numpy as np
import pytest
import torch
from fake_sampling import full_blocks

from scalevgae import Graph
from scalevgae.data import planted_partition
from scalevgae.models import GAE, VGAE, GCNEncoder, VGAEEncoder, build_model
from scalevgae.nn import GCNLayer
from scalevgae.nn.gcn_layer import weight_first


def dense_norm_adj(g: Graph) -> torch.Tensor:
    a = torch.zeros(g.num_nodes, g.num_nodes, dtype=torch.float64)
    ei = g.edge_index
    a[ei[1], ei[0]] = 1  # row = destination
    a += torch.eye(g.num_nodes, dtype=torch.float64)
    d = a.sum(1).rsqrt()
    return d[:, None] * a * d[None, :]


def small(n=40, f=12, seed=0):
    d = planted_partition(n, avg_degree=4, feature_dim=f, seed=seed)
    return d.graph, d.x.double()


@pytest.mark.parametrize("fin,fout", [(12, 5), (3, 8)])
def test_gcn_layer_matches_dense(fin, fout):
    g, _ = small(f=fin)
    x = torch.randn(g.num_nodes, fin, dtype=torch.float64)
    conv = GCNLayer(fin, fout, bias=True).double()
    torch.nn.init.normal_(conv.bias)
    with torch.no_grad():
        assert weight_first(conv.weight, x) == (fout < fin)
    assert not weight_first(conv.weight, x)  # training on features: propagate first, no sparse backward
    ref = torch.relu(dense_norm_adj(g) @ x @ conv.weight + conv.bias)
    torch.testing.assert_close(conv(x, g, activation="relu"), ref)
    out = conv.inference(x.numpy(), g, batch_size=7, activation="relu")
    torch.testing.assert_close(out, ref.detach())


def test_glorot_range_and_no_bias():
    conv = GCNLayer(100, 20)
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
    z_full = model.encode(x, g)
    z_blk = model.encode(x[inputs], blocks)
    torch.testing.assert_close(z_blk, z_full[seeds])
    with pytest.raises(ValueError, match="blocks"):
        model.encode(x[inputs], blocks[:1])
    with pytest.raises(TypeError, match="PyG's order"):
        model.encode(g, x)


@pytest.mark.parametrize("kind,fin", [("gae", 12), ("vgae", 12), ("vgae", 3)])
def test_embed_matches_encode(kind, fin):
    g, x = small(f=fin)
    torch.manual_seed(1)
    model = build_model(kind, fin, 8, 4).double()
    model.train()
    emb = model.embed(x, g, batch_size=9)
    assert model.training  # restored
    model.eval()
    torch.testing.assert_close(emb, model.encode(x, g))
    torch.testing.assert_close(model.embed(x.numpy(), g, batch_size=1000), emb)
    torch.testing.assert_close(model.embed(x, g.edge_index), emb)  # not a Graph: one encoder call


def test_vgae_inference_without_logstd_head():
    g, x = small(f=12)
    torch.manual_seed(2)
    enc = VGAEEncoder(12, 8, 4).double().eval()
    torch.nn.init.normal_(enc.conv_logstd.weight)  # a nonzero head, so skipping it is visible
    a = dense_norm_adj(g)
    h = torch.relu(a @ x @ enc.conv1.weight)
    mu_ref, logstd_ref = a @ h @ enc.conv_mu.weight, a @ h @ enc.conv_logstd.weight
    mu, logstd = enc.inference(x, g, batch_size=7)
    torch.testing.assert_close(mu, mu_ref)
    torch.testing.assert_close(logstd, logstd_ref)
    mu_only, none = enc.inference(x, g, batch_size=7, logstd=False)
    assert none is None
    torch.testing.assert_close(mu_only, mu_ref)
    model = VGAE(enc)
    torch.testing.assert_close(model.embed(x, g, batch_size=7), mu_ref)


def test_vgae_reparam_clamp_and_kl():
    g, x = small()
    torch.manual_seed(0)
    model = VGAE(VGAEEncoder(x.size(1), 8, 4)).double()
    model.eval()
    z = model.encode(x, g)
    mu, logstd = model.encoder(x, g)
    torch.testing.assert_close(z, mu)
    model.train()
    z1 = model.encode(x, g)
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
    z = model.encode(x, g)
    pos = g.edge_index[:, :20]
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


def test_same_losses_as_pyg_gcn_vgae():
    """PyG's VGAE around PyG's own GCNConv layers vs ours with the same weights: same z (the
    encoders are computed independently), recon/KL losses, scores and weight gradients."""
    pyg = pytest.importorskip("torch_geometric.nn")
    g, x = small()
    torch.manual_seed(0)
    ours = VGAE(VGAEEncoder(x.size(1), 8, 4, bias=True, logstd_init="glorot")).double()

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv_mu, self.conv_logstd = (pyg.GCNConv(a, b) for a, b in ((x.size(1), 8), (8, 4), (8, 4)))

        def forward(self, x, edge_index):
            h = self.conv1(x, edge_index).relu()
            return self.conv_mu(h, edge_index), self.conv_logstd(h, edge_index)

    theirs = pyg.VGAE(Encoder()).double()
    with torch.no_grad():
        for name in ("conv1", "conv_mu", "conv_logstd"):
            a, b = getattr(ours.encoder, name), getattr(theirs.encoder, name)
            a.bias.normal_()
            b.lin.weight.copy_(a.weight.t())
            b.bias.copy_(a.bias)
    ours.eval(), theirs.eval()
    z1, z2 = ours.encode(x, g), theirs.encode(x, g.edge_index)
    torch.testing.assert_close(z1, z2)
    torch.testing.assert_close(ours.encode(x, g.edge_index), z2)  # PyG's edge_index, our encoder
    pos, neg = g.edge_index[:, :25], torch.randint(0, g.num_nodes, (2, 25))
    torch.testing.assert_close(ours.decode(z1, pos), theirs.decode(z2, pos))
    torch.testing.assert_close(ours.decode(z1, neg, sigmoid=False), theirs.decode(z2, neg, sigmoid=False))
    l1 = ours.recon_loss(z1, pos, neg) + ours.kl_loss().double() / g.num_nodes
    l2 = theirs.recon_loss(z2, pos, neg) + theirs.kl_loss() / g.num_nodes
    torch.testing.assert_close(l1, l2, rtol=1e-6, atol=1e-6)
    l1.backward(), l2.backward()
    for name in ("conv1", "conv_mu", "conv_logstd"):
        a, b = getattr(ours.encoder, name), getattr(theirs.encoder, name)
        torch.testing.assert_close(a.weight.grad, b.lin.weight.grad.t(), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(a.bias.grad, b.bias.grad, rtol=1e-5, atol=1e-7)
    a1, p1 = ours.test(z1, pos, neg)
    a2, p2 = theirs.test(z2, pos, neg)
    assert abs(a1 - a2) < 1e-9 and abs(p1 - p2) < 1e-9


def test_same_device():
    from scalevgae.nn.gcn_layer import same_device

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
    mu, logstd = enc.float()(x.float(), g)
    assert bool((logstd == 0).all()) and mu.abs().sum() > 0  # posterior N(mu, I) at init
    glorot = VGAEEncoder(6, 8, 4, logstd_init="glorot")
    assert bool((glorot.conv_logstd.weight != 0).any())
    with pytest.raises(ValueError, match="logstd_init"):
        VGAEEncoder(6, 8, 4, logstd_init="ones")


def test_encoders_take_every_adjacency_form():
    """PyG's calling convention: encode(x, edge_index) with a [2, E] tensor, a SparseTensor, a
    torch.sparse adj_t, a Graph, or blocks; on a simple graph all give the same z."""
    ts = pytest.importorskip("torch_sparse")
    g, x = small()
    ei, n = g.edge_index, g.num_nodes
    forms = [ei, ei.int(), g, ts.SparseTensor(row=ei[1], col=ei[0], sparse_sizes=(n, n)),
             torch.sparse_coo_tensor(ei, torch.ones(ei.size(1)), (n, n)).t(),
             torch.sparse_coo_tensor(ei, torch.ones(ei.size(1)), (n, n)).t().coalesce().to_sparse_csr()]
    for kind in ("gae", "vgae"):
        torch.manual_seed(0)
        model = build_model(kind, x.size(1), 8, 4).double().eval()
        want = model.encode(x, g)
        for adj in forms:
            torch.testing.assert_close(model.encode(x, adj), want)
            torch.testing.assert_close(model(x, adj), want)  # forward = encode, as in PyG
        seeds = torch.tensor([1, 7, 20])
        blocks, inputs = full_blocks(g, seeds)
        torch.testing.assert_close(model.encode(x[inputs], blocks), want[seeds])
    with pytest.raises(TypeError, match="edge_index"):
        model.encode(x, "not a graph")


@pytest.mark.parametrize("variational", [False, True])
@pytest.mark.parametrize("ours_encoder", [False, True])
def test_pyg_autoencoder_example_loop(variational, ours_encoder):
    """The training loop of PyG's examples/autoencoder.py (RandomLinkSplit data, encode(x, edge_index),
    recon_loss with sampled negatives, kl_loss / num_nodes, test(z, pos, neg)) runs unchanged on
    scalevgae.GAE/VGAE, with the example's encoder built from scalevgae.nn.GCNConv or with
    scalevgae's own encoders; the trained weights, loaded into PyG's GAE/VGAE around PyG's
    GCNConv, give the same z, KL and test scores."""
    pyg = pytest.importorskip("torch_geometric.nn")
    T = pytest.importorskip("torch_geometric.transforms")
    from torch_geometric.data import Data

    import scalevgae
    from scalevgae.nn import GCNConv

    d = planted_partition(300, avg_degree=8, num_communities=8, feature_dim=16, seed=3, p_in=0.95,
                          feature_noise=0.2)
    data = Data(x=d.x - d.x.min(), edge_index=d.graph.edge_index, num_nodes=d.graph.num_nodes)
    torch.manual_seed(0)
    transform = T.Compose([T.NormalizeFeatures(), T.RandomLinkSplit(
        num_val=0.05, num_test=0.1, is_undirected=True, split_labels=True, add_negative_train_samples=False)])
    train_data, val_data, test_data = transform(data)
    in_channels, out_channels = data.num_features, 16

    def encoder_class(conv, bias=True):
        class Encoder(torch.nn.Module):  # the example's GCNEncoder / VariationalGCNEncoder
            def __init__(self, in_channels, out_channels):
                super().__init__()
                self.conv1 = conv(in_channels, 2 * out_channels, bias=bias)
                heads = ("conv_mu", "conv_logstd") if variational else ("conv2",)
                for name in heads:
                    setattr(self, name, conv(2 * out_channels, out_channels, bias=bias))

            def forward(self, x, edge_index):
                x = self.conv1(x, edge_index).relu()
                if variational:
                    return self.conv_mu(x, edge_index), self.conv_logstd(x, edge_index)
                return self.conv2(x, edge_index)

        return Encoder

    if ours_encoder:
        enc = (scalevgae.VGAEEncoder if variational else scalevgae.GCNEncoder)(
            in_channels, 2 * out_channels, out_channels, **({"logstd_init": "glorot"} if variational else {}))
    else:
        enc = encoder_class(GCNConv)(in_channels, out_channels)
    model = scalevgae.VGAE(enc) if variational else scalevgae.GAE(enc)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

    def train():
        model.train()
        optimizer.zero_grad()
        z = model.encode(train_data.x, train_data.edge_index)
        loss = model.recon_loss(z, train_data.pos_edge_label_index)
        if variational:
            loss = loss + (1 / train_data.num_nodes) * model.kl_loss()
        loss.backward()
        optimizer.step()
        return float(loss)

    @torch.no_grad()
    def test(model, data):
        model.eval()
        z = model.encode(data.x, data.edge_index)
        return z, model.test(z, data.pos_edge_label_index, data.neg_edge_label_index)

    losses = [train() for _ in range(30)]
    assert losses[-1] < losses[0]

    twin = (pyg.VGAE if variational else pyg.GAE)(encoder_class(pyg.GCNConv, bias=not ours_encoder)(
        in_channels, out_channels))
    state = model.state_dict()
    if ours_encoder:  # our layer's weight is [in, out]; PyG's lin.weight [out, in]
        state = {k.replace(".weight", ".lin.weight"): v.t() for k, v in state.items()}
    twin.load_state_dict(state)
    for data in (val_data, test_data):
        (z1, (auc1, ap1)), (z2, (auc2, ap2)) = test(model, data), test(twin, data)
        torch.testing.assert_close(z1, z2, rtol=1e-4, atol=1e-5)
        # Our test() ranks the logits; PyG's ranks float32 sigmoid(logit), which rounds logits an ulp
        # or two apart (~1e-7) to one probability: a tie, worth 1/2 pair in the AUC (and z1, z2 differ
        # by rounding too). The negative pairs come from Python's unseeded `random` (PyG's
        # negative_sampling), so about 1 run in 130 draws such a near tie. The metrics of two
        # rankings agree exactly where the rankings do: compare score pairs (tie = 0) both ways.
        pos, neg = data.pos_edge_label_index, data.neg_edge_label_index
        s1 = torch.cat([model.decode(z1, e, sigmoid=False) for e in (pos, neg)]).double()
        s2 = torch.cat([twin.decode(z2, e, sigmoid=True) for e in (pos, neg)]).double()
        n_pos, n_neg = pos.size(1), neg.size(1)
        differ = torch.sign(s1[:, None] - s1[None, :]) != torch.sign(s2[:, None] - s2[None, :])
        flipped = int(differ[:n_pos, n_pos:].sum())  # positive/negative pairs ordered differently
        assert flipped <= 2, f"{flipped} pos/neg pairs ranked differently by our and PyG's scores"
        assert abs(auc1 - auc2) <= flipped / (n_pos * n_neg) + 1e-9 and auc1 > 0.6
        if not differ[:n_pos].any():  # AP depends on the order of every pair with a positive in it
            assert abs(ap1 - ap2) < 1e-6
        if variational:
            torch.testing.assert_close(model.kl_loss(), twin.kl_loss(), rtol=1e-4, atol=1e-5)
