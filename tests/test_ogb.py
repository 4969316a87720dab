"""OGB link-prediction directories: fixtures written in OGB's exact on-disk format, read by
``ogb``'s own reader and ours; official metrics cross-checked with ``ogb``'s Evaluator."""

import json
import os
import warnings

import numpy as np
import pytest
import torch

from scalevgae.cli import main
from scalevgae.data import load_graph
from scalevgae.data.ogb import OGB_LINK, load_ogb_link, read_split_file
from scalevgae.metrics import hits_at_k, mrr, ranking_metric

ogb = pytest.importorskip("ogb", reason="the optional 'ogb' package (pip install ogb) is not installed")
from ogb.linkproppred import Evaluator, LinkPropPredDataset  # noqa: E402
from ogb_fixtures import N, write_ogb_dir  # noqa: E402

FAST = ["--epochs", "10", "--hidden", "16", "--latent", "8", "--no-progress", "--mode", "full"]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ogb")
    return root, {"ogbl-collab": write_ogb_dir(root, "ogbl-collab", mrr_style=False),
                  "ogbl-citation2": write_ogb_dir(root, "ogbl-citation2", mrr_style=True)}


def _edge_set(ei):
    ei = torch.as_tensor(ei)
    return {(int(a), int(b)) for a, b in ei.t().tolist() if a != b}


def test_table_matches_ogb_master_csv():
    import pandas as pd

    master = pd.read_csv(os.path.join(os.path.dirname(ogb.linkproppred.__file__), "master.csv"), index_col=0,
                         keep_default_na=False)
    for name, info in OGB_LINK.items():
        row = master[name]
        assert info.metric == row["eval metric"], name
        assert info.add_inverse_edge == (row["add_inverse_edge"] == "True"), name
        assert info.split == row["split"], name


@pytest.mark.parametrize("name", ["ogbl-collab", "ogbl-citation2"])
def test_reader_agrees_with_ogb(dirs, name):
    root, paths = dirs
    ds = LinkPropPredDataset(name=name, root=str(root))  # reads the raw files (nothing to download)
    g, ref = ds[0], ds.get_edge_split()
    data = load_graph(paths[name])
    assert data.name == name and data.num_nodes == g["num_nodes"] == N
    assert _edge_set(data.graph.edge_index) == _edge_set(g["edge_index"])
    np.testing.assert_allclose(np.asarray(data.x), g["node_feat"], rtol=0, atol=1e-6)
    s = data.split
    assert s.metric == OGB_LINK[name].metric
    # Training pairs in the graph's index dtype; the graph's int64 COO is not built (and kept) for them.
    assert s.train_pos.dtype == s.train_graph.col.dtype == torch.int32 and s.train_graph._edge_index is None
    if name == "ogbl-collab":
        assert data.graph.is_symmetric and data.meta["add_inverse_edge"]
        np.testing.assert_array_equal(data.meta["edge_year"], g["edge_year"].reshape(-1)[0::2])
        np.testing.assert_array_equal(data.meta["edge_weight"], g["edge_weight"].reshape(-1)[0::2])
        train = ref["train"]["edge"].t()
        assert _edge_set(s.train_graph.edge_index) == _edge_set(train) | _edge_set(train.flip(0))
        assert _edge_set(s.train_pos) == {(min(a, b), max(a, b)) for a, b in _edge_set(train)}
        assert s.train_pos.size(1) == len(_edge_set(s.train_pos))  # repeated edges trained once
        for part, pos, neg in (("valid", s.val_pos, s.val_neg), ("test", s.test_pos, s.test_neg)):
            assert torch.equal(pos, ref[part]["edge"].t()) and torch.equal(neg, ref[part]["edge_neg"].t())
    else:
        assert not data.graph.is_symmetric and not data.meta["add_inverse_edge"]
        train = torch.stack([ref["train"]["source_node"], ref["train"]["target_node"]])
        assert _edge_set(s.train_graph.edge_index) == _edge_set(train) == _edge_set(s.train_pos)
        for part, pos, neg in (("valid", s.val_pos, s.val_neg), ("test", s.test_pos, s.test_neg)):
            r = ref[part]
            assert torch.equal(pos, torch.stack([r["source_node"], r["target_node"]]))
            q = r["target_node_neg"].size(1)
            assert q == 1000 and neg.shape == (2, pos.size(1) * q)
            assert torch.equal(neg[1].view(-1, q), r["target_node_neg"])
            assert torch.equal(neg[0].view(-1, q), r["source_node"][:, None].expand(-1, q))


@pytest.mark.parametrize("name", ["ogbl-collab", "ogbl-ppa", "ogbl-ddi", "ogbl-citation2"])
@pytest.mark.parametrize("library", ["torch", "numpy"])
def test_metrics_match_ogb_evaluator(name, library):
    ev = Evaluator(name)
    g = torch.Generator().manual_seed(len(name))
    for trial in range(4):
        p = 1 + trial * 37
        # Few distinct values: ties between positives and negatives on every trial.
        pos = torch.randint(0, 12, (p,), generator=g).double() / 4
        if ev.eval_metric == "mrr":
            if library == "numpy":
                pytest.skip("ogb 1.3.6's numpy MRR path fails (ndarray.sum(dim=1)); its torch path is the reference")
            neg = torch.randint(0, 12, (p, 1000), generator=g).double() / 4
            cast = (lambda t: t) if library == "torch" else (lambda t: t.numpy())
            r = ev.eval({"y_pred_pos": cast(pos), "y_pred_neg": cast(neg)})
            want = float(r["mrr_list"].mean())
            assert mrr(pos, neg) == pytest.approx(want, rel=1e-6)
            assert ranking_metric("mrr", pos, neg.reshape(-1)) == pytest.approx(want, rel=1e-6)
        else:
            q = [5, 150, 400, 1000][trial]  # also fewer negatives than K
            neg = torch.randint(0, 12, (q,), generator=g).double() / 4
            cast = (lambda t: t) if library == "torch" else (lambda t: t.numpy())
            want = ev.eval({"y_pred_pos": cast(pos), "y_pred_neg": cast(neg)})[ev.eval_metric]
            assert ranking_metric(ev.eval_metric, pos, neg) == pytest.approx(want, abs=1e-12)
            assert hits_at_k(pos, neg, ev.K) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("name", ["ogbl-collab", "ogbl-citation2"])
def test_cli_trains_with_official_protocol(dirs, tmp_path, capsys, name):
    root, paths = dirs
    out = str(tmp_path / "run")
    # By OGB name under --root, as `scalevgae train --dataset ogbl-collab --root DIR`.
    assert main(["train", "--dataset", name, "--root", str(root), "--out", out, "--eval-every", "1", *FAST]) == 0
    m = json.load(open(os.path.join(out, "metrics.json")))
    metric = OGB_LINK[name].metric
    for k in (f"test_{metric}", f"val_{metric}", "test_auc", "val_ap"):
        assert 0.0 <= m[k] <= 1.0, k
    assert m["test_auc"] > 0.6  # it learned the communities
    rows = [json.loads(ln) for ln in open(os.path.join(out, "metrics.jsonl"))]
    assert all(f"val_{metric}" in r for r in rows)
    best = max(range(len(rows)), key=lambda i: (rows[i][f"val_{metric}"], -i))
    assert m["best_epoch"] == best + 1  # selected on the official metric
    # The saved model re-scored independently with OGB's Evaluator gives the same number.
    from scalevgae.train.checkpoint import build_saved_model, load_model_file

    data = load_ogb_link(paths[name])
    model = build_saved_model(load_model_file(os.path.join(out, "model.pt")), torch.device("cpu"))
    z = model.embed(torch.as_tensor(data.x), data.split.train_graph)
    pos = model.decode(z, data.split.test_pos, sigmoid=False)
    neg = model.decode(z, data.split.test_neg, sigmoid=False)
    ev = Evaluator(name)
    if metric == "mrr":
        want = float(ev.eval({"y_pred_pos": pos, "y_pred_neg": neg.view(pos.numel(), -1)})["mrr_list"].mean())
        assert m["test_mrr"] == pytest.approx(want, rel=1e-5)
    else:
        assert m[f"test_{metric}"] == pytest.approx(ev.eval({"y_pred_pos": pos, "y_pred_neg": neg})[metric])
    capsys.readouterr()
    assert main(["eval", "--out", out, "--json"]) == 0
    ev_out = json.loads(capsys.readouterr().out)
    assert ev_out[f"test_{metric}"] == pytest.approx(m[f"test_{metric}"], rel=1e-6)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_bad_split_files_are_one_line_errors(dirs, tmp_path, capsys):
    import shutil

    _, paths = dirs
    d = tmp_path / "ogbl_collab"
    shutil.copytree(paths["ogbl-collab"], d)
    valid = d / "split" / "time" / "valid.pt"
    torch.save({"edge": _Evil()}, valid)
    with pytest.raises(ValueError, match="weights_only"):
        read_split_file(str(valid))
    rc = main(["train", "--dataset", str(d), "--out", str(tmp_path / "r"), *FAST])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "valid.pt" in err and "weights_only" in err and len(err.splitlines()) == 1
    valid.write_bytes(b"\x80\xb0" + bytes(range(256)))  # torch warns about the protocol, then fails
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning printed before our one line would fail here
        with pytest.raises(ValueError, match="valid.pt: not a tensor-only torch file"):
            read_split_file(str(valid))
    torch.save({"edge": torch.zeros(4, 3, dtype=torch.long)}, valid)
    with pytest.raises(ValueError, match=r"valid.pt: 'edge' must have shape \[\*, 2\]"):
        load_graph(d)
    torch.save({"edge": torch.tensor([[0, N]]), "edge_neg": torch.zeros(1, 2, dtype=torch.long)}, valid)
    with pytest.raises(ValueError, match="outside"):
        load_graph(d)
    torch.save({"edge": torch.zeros(1, 2), "edge_neg": torch.zeros(1, 2, dtype=torch.long)}, valid)
    with pytest.raises(ValueError, match="integer node ids"):
        load_graph(d)
    valid.unlink()
    with pytest.raises(FileNotFoundError, match="no valid.pt"):
        load_graph(d)
    assert main(["train", "--dataset", "ogbl-ppa", "--root", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "ogbl_ppa" in capsys.readouterr().err


def test_split_dict_and_unknown_name(dirs, tmp_path):
    """split_dict.pt instead of three files; a directory OGB does not name gets MRR from its layout."""
    import shutil

    _, paths = dirs
    d = tmp_path / "my_citations"
    shutil.copytree(paths["ogbl-citation2"], d)
    sd = d / "split" / "time"  # citation2's split type
    whole = {p: torch.load(sd / f"{p}.pt", weights_only=True) for p in ("train", "valid", "test")}
    for p in ("train", "valid", "test"):
        (sd / f"{p}.pt").unlink()
    torch.save(whole, sd / "split_dict.pt")
    data = load_graph(d)
    ref = load_graph(paths["ogbl-citation2"])
    assert data.split.metric == "mrr" and not data.graph.is_symmetric
    assert torch.equal(data.split.test_neg, ref.split.test_neg)
    assert torch.equal(data.split.train_pos, ref.split.train_pos)
