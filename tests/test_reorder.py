"""Node reordering (scalevgae.reorder, Graph.reorder, TrainConfig.reorder / --reorder): the
permutation, the relabelled graph, split and features, and every output back in original ids."""

import json
import os

import numpy as np
import pytest
import torch

import scalevgae.data as sdata
from scalevgae import Graph, reorder
from scalevgae.cli import main
from scalevgae.data.split import split_edges
from scalevgae.train import TrainConfig, Trainer
from scalevgae.train.checkpoint import build_saved_model, load_model_file

TINY = ["--nodes", "150", "--avg-degree", "6", "--feature-dim", "8", "--no-progress"]


def _graph(directed: bool = False, n: int = 90, seed: int = 0) -> Graph:
    """Random edges plus a hub, duplicates and self loops (dropped), isolated nodes n-5..n-1."""
    gen = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n - 5, (2, 4 * n), generator=gen)
    hub = torch.stack([torch.zeros(40, dtype=torch.long), torch.arange(1, 41)])
    ei = torch.cat([ei, ei[:, :20], hub, torch.tensor([[3, 4], [3, 4]])], 1)
    return Graph.from_edge_index(ei, n, undirected=not directed)


def _edges(g: Graph) -> set:
    return set(map(tuple, g.edge_index.t().tolist()))


@pytest.mark.parametrize("method", reorder.METHODS)
@pytest.mark.parametrize("directed", [False, True])
def test_order_is_a_deterministic_permutation_and_graph_isomorphic(method, directed):
    g = _graph(directed)
    h, perm = g.reorder(method)
    assert perm.dtype == torch.int32 and perm.shape == (g.num_nodes,)
    assert torch.equal(torch.sort(perm.long()).values, torch.arange(g.num_nodes))
    assert torch.equal(reorder.node_order(g, method), perm)  # deterministic
    inv = reorder.inverse(perm)
    assert torch.equal(inv[perm.long()].long(), torch.arange(g.num_nodes))
    # the edge set maps back exactly, and the CSR is a valid sorted, duplicate-free one
    assert _edges(h) == set(map(tuple, reorder.relabel(g.edge_index, inv).t().tolist()))
    assert h.num_edges == g.num_edges and h.col.dtype == g.col.dtype
    Graph(h.rowptr, h.col, h.num_nodes)  # validates
    for i in range(h.num_nodes):
        row = h.col[h.rowptr[i]:h.rowptr[i + 1]]
        assert bool((row[1:] > row[:-1]).all())
    # the cached symmetry flag agrees with a recomputation
    assert h.is_symmetric == Graph(h.rowptr, h.col, h.num_nodes).is_symmetric == (not directed)


@pytest.mark.parametrize("method", reorder.METHODS)
def test_propagation_commutes_with_the_permutation(method):
    g = _graph(directed=False)
    h, perm = g.reorder(method)
    p = perm.long()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(g.num_nodes, 7, dtype=torch.float64, generator=gen)
    bias = torch.randn(7, dtype=torch.float64, generator=gen)
    want = g.propagate(x, bias=bias, activation="relu")[p]
    torch.testing.assert_close(h.propagate(x[p], bias=bias, activation="relu"), want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h.propagate(x[p].t().contiguous().t()), g.propagate(x)[p])  # non-contiguous x


def test_degree_order_is_by_degree_then_id():
    g = _graph()
    perm = reorder.degree_order(g).long()
    d = g.degree()[perm]
    assert bool((d[1:] <= d[:-1]).all())
    ties = (d[1:] == d[:-1])
    assert bool((perm[1:][ties] > perm[:-1][ties]).all())  # stable: ties by ascending id
    assert int(perm[0]) == 0  # the hub


def _bandwidth(g: Graph) -> int:
    ei = g.edge_index
    return int((ei[0] - ei[1]).abs().max())


def test_rcm_recovers_a_band_from_a_shuffled_banded_graph():
    n, band = 400, 3
    i = torch.arange(n)
    ei = torch.cat([torch.stack([i[:-k], i[k:]]) for k in range(1, band + 1)], 1)
    shuffle = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    g = Graph.from_edge_index(shuffle[ei], n)
    assert _bandwidth(g) > n // 2
    h, _ = g.reorder("rcm")
    assert _bandwidth(h) <= 2 * band
    assert _bandwidth(g.reorder("degree")[0]) > 4 * band  # degree order does not find the band


def test_bad_method_and_bad_permutation():
    g = _graph()
    with pytest.raises(ValueError, match="reorder method"):
        g.reorder("metis")
    with pytest.raises(ValueError, match="not a permutation"):
        reorder.check_permutation(torch.zeros(g.num_nodes, dtype=torch.int32), g.num_nodes)
    with pytest.raises(ValueError, match="not a permutation"):
        reorder.check_permutation(torch.arange(g.num_nodes) - 1, g.num_nodes)
    with pytest.raises(ValueError, match="entries"):
        reorder.check_permutation(torch.arange(3), g.num_nodes)


def test_permute_rows_tensor_and_memmap_in_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(reorder, "_ROW_BLOCK", 7)  # several blocks and a partial last one
    x = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float64)
    np.save(tmp_path / "x.npy", x)
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(0)).int()
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    out = reorder.permute_rows(mm, perm)
    assert isinstance(out, np.memmap) and out.dtype == np.float64  # still on disk, stored dtype kept
    np.testing.assert_array_equal(np.asarray(out), x[perm.numpy()])
    assert not [f for f in os.listdir(os.path.dirname(out.filename)) if f == os.path.basename(out.filename)]
    t = torch.from_numpy(x)
    assert torch.equal(reorder.permute_rows(t, perm), t[perm.long()])


def test_permute_split_relabels_every_pair():
    data = sdata.planted_partition(120, avg_degree=6, feature_dim=0, seed=2)
    split = split_edges(data.graph, 0.1, 0.1, seed=0)
    perm = reorder.node_order(split.train_graph, "rcm")
    inv = reorder.inverse(perm).long()
    s = reorder.permute_split(split, perm)
    for k in ("val_pos", "val_neg", "test_pos", "test_neg"):
        assert torch.equal(perm.long()[getattr(s, k)], getattr(split, k))  # pair k is the same pair
    assert torch.equal(s.train_pos.sort(0).values, inv[split.train_pos].sort(0).values)
    assert bool((s.train_pos[0] < s.train_pos[1]).all())
    assert _edges(s.train_graph) == set(map(tuple, inv[split.train_graph.edge_index].t().tolist()))


def test_trainer_full_mode_same_run_in_either_order():
    """GAE in full mode: the all-pairs objective does not see node order and the initialization is
    seeded, so with and without reordering the runs agree up to float summation order (VGAE's
    noise is drawn per row, so its runs differ by sampling), and embed() is in the caller's ids."""
    data = sdata.planted_partition(150, avg_degree=6, feature_dim=8, seed=0)
    split = split_edges(data.graph, 0.1, 0.1, seed=0)
    res, z = {}, {}
    for method in ("none", "rcm"):
        tr = Trainer(TrainConfig(model="gae", mode="full", epochs=10, hidden=8, latent=4, progress=False,
                                 reorder=method),
                     data.x, split)
        res[method] = tr.fit()
        z[method] = tr.embed()
        if method != "none":
            assert tr.perm is not None and not torch.equal(tr.perm.long(), torch.arange(150))
            # the exact mapping: row k of embed() is the model on the original graph at node k
            torch.testing.assert_close(z[method], tr.model.embed(data.x, split.train_graph), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(z["rcm"], z["none"], rtol=1e-3, atol=1e-4)
    assert res["rcm"].best_val_auc == pytest.approx(res["none"].best_val_auc, abs=1e-3)


def test_trainer_minibatch_with_memmap_features(tmp_path):
    data = sdata.planted_partition(300, avg_degree=6, feature_dim=6, seed=3)
    np.save(tmp_path / "x.npy", data.x.numpy())
    x = np.load(tmp_path / "x.npy", mmap_mode="r")
    split = split_edges(data.graph, 0.1, 0.1, seed=0)
    tr = Trainer(TrainConfig(mode="minibatch", steps=4, batch_size=64, hidden=8, latent=4, progress=False,
                             reorder="degree", eval_pairs=8), x, split)
    assert isinstance(tr.loader.x, np.memmap)  # permuted on disk, not loaded
    tr.fit()
    torch.testing.assert_close(tr.embed(), tr.model.embed(data.x, split.train_graph), rtol=1e-5, atol=1e-6)
    auc, _ = tr.evaluate(split.test_pos, split.test_neg)
    z = tr.model.embed(data.x, split.train_graph)
    assert auc == pytest.approx(tr.evaluate(split.test_pos, split.test_neg, z=z)[0])


def test_cli_reorder_outputs_in_original_ids(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--out", out, "--epochs", "4", "--hidden", "8", "--latent", "4", "--reorder", "rcm",
                 "--checkpoint-every", "2", "--save-embeddings", *TINY]) == 0
    perm = torch.from_numpy(np.load(os.path.join(out, "order.npy")))
    reorder.check_permutation(perm, 150)
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["config"]["reorder"] == "rcm"
    data = sdata.planted_partition(150, avg_degree=6, feature_dim=64)
    ids = open(os.path.join(out, "nodes.csv")).read().split()
    assert ids[1:] == [f"{k},{k}" for k in range(150)]  # row k: node k, as given
    # embed row k is node k: the saved model on the reordered graph, mapped back with the stored order
    model = build_saved_model(load_model_file(os.path.join(out, "model.pt")), torch.device("cpu"))
    z_new = model.embed(data.x[perm.long()], reorder.permute_graph(data.graph, perm))
    z_orig = z_new[reorder.inverse(perm).long()]
    emb = np.load(os.path.join(out, "embeddings.npy"))
    np.testing.assert_allclose(emb, z_orig.numpy(), rtol=1e-4, atol=1e-5)
    assert main(["embed", "--out", out, "--output", str(tmp_path / "e.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), emb, rtol=1e-5, atol=1e-6)
    # metrics.json (scored by the trainer, which trained in the new order) == eval (original order)
    capsys.readouterr()
    assert main(["eval", "--out", out, "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["test_auc"] == pytest.approx(m["test_auc"], abs=1e-6)
    assert ev["val_ap"] == pytest.approx(m["val_ap"], abs=1e-6)
    # predict --query 7: candidates in original ids
    csv = tmp_path / "top.csv"
    assert main(["predict", "--out", out, "--top-k", "3", "--query", "7", "--output", str(csv)]) == 0
    got = [int(r.split(",")[1]) for r in open(csv).read().splitlines()[1:]]
    s = z_orig.double() @ z_orig[7].double()
    s[7] = -float("inf")
    s[data.graph.col[data.graph.rowptr[7]:data.graph.rowptr[8]]] = -float("inf")
    assert got == s.topk(3).indices.tolist()
    # resume reuses the stored order; the order cannot change on resume; a damaged order is one line
    assert main(["train", "--resume", "--out", out, "--epochs", "6"]) == 0
    assert main(["train", "--resume", "--out", out, "--epochs", "8", "--reorder", "degree"]) == 2
    np.save(os.path.join(out, "order.npy"), np.zeros(150, dtype=np.int32))
    capsys.readouterr()
    assert main(["train", "--resume", "--out", out, "--epochs", "8"]) == 2
    err = capsys.readouterr().err
    assert "order.npy" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
