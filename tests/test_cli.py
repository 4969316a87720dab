import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import scalevgae.data as sdata
from scalevgae.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--nodes", "150", "--avg-degree", "6", "--feature-dim", "8", "--no-progress"]


def test_train_eval_embed(tmp_path, capsys):
    out = str(tmp_path / "run")
    rc = main(["train", "--out", out, "--epochs", "6", "--hidden", "8", "--latent", "4", "--checkpoint-every", "2",
               "--save-embeddings", "--plot", *TINY])
    assert rc == 0
    m = json.load(open(os.path.join(out, "metrics.json")))
    for k in ("test_auc", "test_ap", "val_auc", "val_ap", "seconds", "train_pairs_per_s", "peak_memory_bytes"):
        assert isinstance(m[k], (int, float)) and m[k] >= 0, k
    assert m["config"]["hidden"] == 8 and m["config"]["dataset"] == "synthetic" and m["objective"] == "all_pairs"
    blob = torch.load(os.path.join(out, "model.pt"), weights_only=True)
    assert blob["in_channels"] == 64 and "conv1.weight" in {k.split("encoder.")[-1] for k in blob["state_dict"]}
    emb = np.load(os.path.join(out, "embeddings.npy"))
    assert emb.shape == (150, 4)
    assert os.path.getsize(os.path.join(out, "latent.png")) > 1000
    assert len(open(os.path.join(out, "metrics.jsonl")).read().splitlines()) == 6
    capsys.readouterr()
    assert main(["eval", "--out", out, "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["test_auc"] == pytest.approx(m["test_auc"]) and ev["val_ap"] == pytest.approx(m["val_ap"])
    assert main(["embed", "--out", out, "--output", str(tmp_path / "e.npy"), "--embed-batch-size", "7"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), emb, rtol=1e-5, atol=1e-6)
    # predict: top-3 new partners of nodes 0 and 5, against a dense ranking of the saved embeddings
    csv = tmp_path / "top.csv"
    assert main(["predict", "--out", out, "--top-k", "3", "--query", "0,5", "--output", str(csv)]) == 0
    rows = [ln.split(",") for ln in open(csv).read().splitlines()[1:]]
    assert len(rows) == 6
    data = sdata.planted_partition(150, avg_degree=6, feature_dim=64)
    z = torch.from_numpy(emb).double()
    for q in (0, 5):
        s = z @ z[q]
        s[q] = -float("inf")
        s[data.graph.col[data.graph.rowptr[q]:data.graph.rowptr[q + 1]]] = -float("inf")
        want = s.topk(3).indices.tolist()
        got = [int(r[1]) for r in rows if int(r[0]) == q]
        assert got == want
        assert all(0.0 <= float(r[2]) <= 1.0 for r in rows)
    assert main(["predict", "--out", out, "--top-k", "0"]) == 2
    assert main(["predict", "--out", out, "--query", "150"]) == 2
    assert main(["predict", "--out", out, "--query", "x"]) == 2


def test_resume_and_featureless(tmp_path, monkeypatch):
    d = sdata.planted_partition(120, 6, feature_dim=0, seed=1)
    path = tmp_path / "g.npz"
    np.savez(path, edge_index=d.graph.edge_index().numpy())
    args = ["train", "--dataset", str(path), "--epochs", "8", "--checkpoint-every", "3", "--model", "gae",
            "--out", str(tmp_path / "a"), "--no-progress"]
    assert main(args) == 0
    a = json.load(open(tmp_path / "a" / "metrics.json"))
    assert a["config"]["dataset"] == str(path) and a["config"]["feature_dim"] == 32
    assert main(args[:-3] + ["--out", str(tmp_path / "b"), "--steps", "4", "--no-progress"]) == 0
    assert json.load(open(tmp_path / "b" / "metrics.json"))["steps"] == 4
    # resume b's checkpoint (taken at step 3) from another directory with nothing but --out and the
    # lifted step limit -> the same final numbers as a
    monkeypatch.chdir(tmp_path / "a")
    assert main(["train", "--resume", "--out", str(tmp_path / "b"), "--steps", "0"]) == 0
    b = json.load(open(tmp_path / "b" / "metrics.json"))
    assert (b["test_auc"], b["val_ap"], b["steps"]) == (a["test_auc"], a["val_ap"], a["steps"])
    assert b["config"]["model"] == "gae" and b["config"]["progress"] is False


def test_errors_are_clear(tmp_path, capsys, monkeypatch):
    assert main(["train", "--dataset", "nosuch", "--out", str(tmp_path), *TINY]) == 2
    assert "nosuch" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "none"), *TINY]) == 2
    assert "checkpoint" in capsys.readouterr().err
    assert main(["eval", "--out", str(tmp_path / "none")]) == 2
    assert main(["train", "--dataset", "cora", "--root", str(tmp_path), "--out", str(tmp_path), *TINY]) == 2
    assert "ind.cora" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--fanouts", "a,b"])


def test_python_dash_m():
    env = dict(os.environ, PYTHONPATH=REPO)
    r = subprocess.run([sys.executable, "-m", "scalevgae", "train", "--help"], capture_output=True, text=True,
                       env=env, cwd=REPO, timeout=120)
    assert r.returncode == 0 and "--fanouts" in r.stdout and "--neg-ratio" in r.stdout


def test_eval_every_and_heldout_flag(tmp_path):
    out = str(tmp_path / "r")
    assert main(["train", "--nodes", "120", "--epochs", "6", "--eval-every", "3", "--no-exclude-heldout",
                 "--hidden", "8", "--latent", "4", "--out", out, "--no-progress", "--checkpoint-every", "0"]) == 0
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["config"]["eval_every"] == 3 and m["config"]["exclude_heldout"] is False
    rows = [json.loads(ln) for ln in open(os.path.join(out, "metrics.jsonl")).read().splitlines()]
    assert [("val_auc" in r) for r in rows] == [False, False, True, False, False, True]


def test_train_options_generated_from_config():
    """Every TrainConfig field is a --<field-name> option with help; the defaults parse back to the config's."""
    import dataclasses

    from scalevgae.cli import build_parser, config_from_args
    from scalevgae.train import TrainConfig

    p = build_parser()
    text = p._subparsers._group_actions[0].choices["train"].format_help()
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        assert flag in text or "--no-" + flag[2:] in text, f.name
        assert f.metadata.get("help"), f.name
    cfg = config_from_args(p.parse_args(["train"]))
    want = {f.name: f.metadata.get("cli_default", f.default) for f in dataclasses.fields(TrainConfig)}
    assert cfg.to_dict() == {**want, "fanouts": list(want["fanouts"])}
    cfg = config_from_args(p.parse_args(["train", "--patience", "0", "--no-progress", "--fanouts", "4,3",
                                         "--kl-weight", "0.5", "--weight-decay", "1e-4", "--full-max-nodes", "9"]))
    assert (cfg.patience, cfg.progress, cfg.fanouts, cfg.kl_weight, cfg.weight_decay, cfg.full_max_nodes) == \
        (None, False, (4, 3), 0.5, 1e-4, 9)
