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
    np.savez(path, edge_index=d.graph.edge_index.numpy())
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
        (0, False, (4, 3), 0.5, 1e-4, 9)
    # --max-epochs names the same field as --epochs (issue 18's name for the maximum).
    assert config_from_args(p.parse_args(["train", "--max-epochs", "7"])).epochs == 7
    assert config_from_args(p.parse_args(["train", "--epochs", "7"])).epochs == 7


def _string_id_edges(path, n=80, seed=0):
    rng = np.random.default_rng(seed)
    pairs = {(int(a), int(b)) for a, b in rng.integers(0, n, size=(400, 2)) if a != b}
    path.write_text("src,dst\n" + "".join(f"n{a},n{b}\n" for a, b in sorted(pairs)))


def test_run_folder_is_self_contained(tmp_path, monkeypatch, capsys):
    """Original ids everywhere, commands from another directory, moved data re-pointed, changed data
    refused unless --force, an existing run refused unless --overwrite (which leaves nothing stale)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _string_id_edges(data_dir / "e.csv")
    monkeypatch.chdir(data_dir)
    out = str(tmp_path / "run")
    train = ["train", "--dataset", "e.csv", "--ids", "str", "--steps", "3", "--hidden", "8", "--latent", "4",
             "--out", out, "--no-progress"]
    assert main(train) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("VGAE on e.csv, full: test AUC ") and line.endswith(f"→ {out}/"), line
    rec = json.load(open(os.path.join(out, "run.json")))
    assert rec["data"]["dataset"] == str(data_dir / "e.csv") and rec["fingerprint"]
    ids = sdata.load_node_ids(os.path.join(out, "nodes.csv"))
    assert ids.dtype.kind == "U" and ids[0] == "n0" and len(ids) == len(set(ids.tolist()))
    # from elsewhere: embed and predict speak the user's ids
    monkeypatch.chdir(tmp_path)
    assert main(["embed", "--out", out, "--output", str(tmp_path / "z.npy")]) == 0
    assert (sdata.load_node_ids(tmp_path / "z.nodes.csv") == ids).all()
    assert np.load(tmp_path / "z.npy").shape == (len(ids), 4)
    assert main(["predict", "--out", out, "--top-k", "2", "--query", "n3,n10"]) == 0
    rows = [r.split(",") for r in open(os.path.join(out, "topk.csv")).read().splitlines()[1:]]
    assert [r[0] for r in rows] == ["n3", "n3", "n10", "n10"] and all(r[1] in set(ids.tolist()) for r in rows)
    assert main(["predict", "--out", out, "--query", "3"]) == 2  # internal indices are not ids here
    assert "'3'" in capsys.readouterr().err
    # moved data: refused with a hint, then re-pointed
    os.rename(data_dir, tmp_path / "moved")
    assert main(["eval", "--out", out]) == 2
    assert "--dataset" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["eval", "--out", out, "--dataset", str(tmp_path / "moved" / "e.csv"), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["test_auc"] == pytest.approx(json.load(open(os.path.join(out, "metrics.json")))["test_auc"])
    # changed data: refused unless --force
    with open(tmp_path / "moved" / "e.csv", "a") as f:
        f.write("n1,n77\n")
    moved = ["--dataset", str(tmp_path / "moved" / "e.csv")]
    assert main(["eval", "--out", out, *moved]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["eval", "--out", out, *moved, "--force"]) in (0, 2)  # may no longer reproduce the split
    # an existing run: refused, then replaced without stale files
    train[2] = str(tmp_path / "moved" / "e.csv")
    assert main(train) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert os.path.exists(os.path.join(out, "topk.csv"))
    assert main(train + ["--overwrite"]) == 0
    assert not os.path.exists(os.path.join(out, "topk.csv")) and not os.path.exists(os.path.join(out, "eval.json"))
    assert os.path.exists(os.path.join(out, "nodes.csv"))


def test_partial_epoch_is_reported_honestly(tmp_path):
    out = str(tmp_path / "mb")
    assert main(["train", "--mode", "minibatch", "--batch-size", "32", "--steps", "2", "--out", out, *TINY]) == 0
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["steps"] == 2 and 0 < m["epochs_run"] < 1, m["epochs_run"]


def test_version_and_help_show_defaults():
    env = dict(os.environ, PYTHONPATH=REPO)
    r = subprocess.run([sys.executable, "-m", "scalevgae", "--version"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("scalevgae ")
    from scalevgae.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    for act in train._actions:
        if act.option_strings and act.dest != "help":
            assert act.help, act.option_strings
    text = " ".join(train.format_help().split())
    for flag in ("--features", "--delimiter", "--directed", "--ids", "--kl-weight", "--weight-decay",
                 "--full-max-nodes", "--overwrite", "--json"):
        assert flag in text, flag
    assert "--hidden HIDDEN" not in text and "(default: 32)" in text and "(default: runs/latest)" in text


@pytest.mark.parametrize("fanouts", [["--fanouts", "10,-1"], ["--fanouts=-1,-1"]])
def test_exact_input_hop_from_the_cli(tmp_path, fanouts, capsys):
    # fanout -1 at the input layer: the loader's precomputed table; the run records it and eval
    # (full-graph inference, which needs no table) reproduces its test scores.
    out = str(tmp_path / "r")
    assert main(["train", "--mode", "minibatch", *fanouts, "--steps", "4", "--out", out, *TINY]) == 0
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["config"]["fanouts"] == [int(f) for f in fanouts[-1].split("=")[-1].split(",")]
    capsys.readouterr()
    assert main(["eval", "--out", out, "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert (ev["test_auc"], ev["test_ap"]) == pytest.approx((m["test_auc"], m["test_ap"]), abs=1e-6)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_x_dtype_stores_features_narrower(tmp_path, dtype, capsys):
    from scalevgae.data.datasets import DatasetSpec, load_dataset

    base = load_dataset(DatasetSpec(nodes=150, avg_degree=6, feature_dim=8).resolved())
    data = load_dataset(DatasetSpec(nodes=150, avg_degree=6, feature_dim=8, x_dtype=dtype).resolved())
    assert base.x.dtype == torch.float32 and data.x.dtype == getattr(torch, dtype)
    assert torch.equal(data.x, base.x.to(data.x.dtype))
    out = str(tmp_path / "r")
    assert main(["train", "--mode", "minibatch", "--x-dtype", dtype, "--steps", "4", "--out", out, *TINY]) == 0
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["config"]["x_dtype"] == dtype
    capsys.readouterr()
    # eval re-reads the data as recorded (same dtype) and reproduces the run's test scores.
    assert main(["eval", "--out", out, "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert (ev["test_auc"], ev["test_ap"]) == pytest.approx((m["test_auc"], m["test_ap"]), abs=1e-6)
