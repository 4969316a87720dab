"""Command line: ``scalevgae train | eval | embed | predict``.

    scalevgae train                                  # synthetic graph, VGAE, full mode
    scalevgae train --dataset cora --out runs/cora --plot
    scalevgae train --resume --out runs/cora         # continue a killed run: nothing else needed
    scalevgae eval --out runs/cora                   # re-scores the saved model on its split
    scalevgae embed --out runs/cora                  # DIR/embeddings.npy (+ DIR/nodes.csv: the ids)
    scalevgae predict --out runs/cora --query 0,5    # DIR/topk.csv in the user's node ids

Datasets are resolved by ``scalevgae.data.datasets`` (``--dataset`` cora | citeseer | pubmed |
synthetic | a path); a run folder records the absolute dataset location, a fingerprint of its
files, the full config and the split seed (``run.json``, and in ``model.pt``), so every command
works from any directory, and ``--dataset/--root`` re-point moved data (``--force`` if it
changed). Training options are generated from ``TrainConfig``'s fields, the data options from
``DatasetSpec``'s. A user's mistake is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import sys
import time
from typing import Any, Optional, Sequence

import numpy as np
import torch

from scalevgae.cli_options import (
    HelpFormatter,
    Parser,
    add_dataclass_options,
    dataclass_from_args,
    given_options,
)
from scalevgae.data.datasets import (
    DatasetSpec,
    check_fingerprint,
    check_splittable,
    fingerprint,
    load_dataset,
)
from scalevgae.data.io import save_node_ids, write_topk_csv
from scalevgae.data.split import split_edges
from scalevgae.distributed import barrier, init_distributed, shared_on_host
from scalevgae.metrics import ranking_metric
from scalevgae.ops import dispatch
from scalevgae.ops.topk import topk_links
from scalevgae.reorder import check_permutation
from scalevgae.train import TrainConfig, Trainer, resolve_device
from scalevgae.train.checkpoint import (
    CHECKPOINT_NAME,
    MODEL_FORMAT,
    MODEL_NAME,
    ModelFileError,
    build_saved_model,
    load_model_file,
    read_run_record,
    save_model,
    write_run_record,
)
from scalevgae.train.progress import phase
from scalevgae.train.rundir import ORDER_NAME, check_fresh, check_writable, clear

# Settings a resumed run cannot change (its checkpoint and split depend on them).
FIXED_ON_RESUME = ("model", "mode", "hidden", "latent", "seed", "val", "test", "nodes", "avg_degree", "graph_seed",
                   "feature_dim", "ids", "directed", "delimiter", "reorder")
USER_ERRORS = (OSError, ValueError, pickle.UnpicklingError, ImportError)


def config_from_args(a: argparse.Namespace) -> TrainConfig:
    return dataclass_from_args(TrainConfig, a)


def peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


# ---- data ----
def _load(spec: DatasetSpec, seed: int, *, progress: bool, recorded: Optional[dict] = None, force: bool = False):
    """(resolved spec, GraphData with x, LinkSplit); refuses changed data unless ``force``."""
    spec = spec.resolved()
    if recorded is not None:
        check_fingerprint(spec, recorded, force=force)
    with phase(f"loading {spec.label} (parse, CSR build)", progress):
        data = load_dataset(spec)
    if data.split is not None:  # the dataset's official split (OGB): --val/--test do not apply
        return spec, data, data.split
    check_splittable(data.graph, spec.val, spec.test, spec.dataset if spec.kind == "file" else spec.label)
    with phase("splitting edges into train/validation/test", progress):
        split = split_edges(data.graph, spec.val, spec.test, seed=seed)
    return spec, data, split


def _node_ids(data: Any) -> np.ndarray:
    return np.asarray(data.node_ids) if data.node_ids is not None else np.arange(data.num_nodes)


def _stored_order(path: str, num_nodes: int) -> torch.Tensor:
    """The node order a --reorder run stored (ValueError naming the file if it is not one)."""
    try:
        perm = torch.from_numpy(np.load(path, allow_pickle=False))
        check_permutation(perm, num_nodes, path)
    except (ValueError, OSError, TypeError):
        raise ValueError(f"{path}: damaged node order (not a permutation of the {num_nodes} nodes); start a new "
                         "run, or delete it to recompute the order") from None
    return perm


def _repointed(blob: dict[str, Any], a: argparse.Namespace, given: set[str]) -> DatasetSpec:
    """The recorded dataset, with --dataset/--root/--features re-pointing moved files."""
    spec = DatasetSpec.from_dict(blob["data"])
    for name in ("dataset", "root", "features"):
        if name in given:
            setattr(spec, name, getattr(a, name))
    return spec


def _check_split(blob: dict[str, Any], split: Any, path: str) -> None:
    want = blob.get("split", {})
    got = {"val_edges": int(split.val_pos.size(1)), "test_edges": int(split.test_pos.size(1))}
    if any(k in want and want[k] != v for k, v in got.items()):
        raise ValueError(f"{path}: the recorded split ({want.get('val_edges')}/{want.get('test_edges')} validation/"
                         f"test edges) does not reproduce on this data ({got['val_edges']}/{got['test_edges']}); "
                         "pass the original data with --dataset/--root")


# ---- commands ----
def cmd_train(a: argparse.Namespace, given: set[str]) -> tuple[str, dict[str, Any]]:
    t0 = time.perf_counter()
    out = os.path.abspath(a.out)
    check_writable(out)
    recorded = None
    if a.resume:
        if not os.path.isfile(os.path.join(out, CHECKPOINT_NAME)):
            raise FileNotFoundError(f"--resume: no {CHECKPOINT_NAME} in {out} (a run saves one every "
                                    "--checkpoint-every steps)")
        rec = read_run_record(out)
        base_cfg, base_spec = TrainConfig.from_dict(rec["config"]), DatasetSpec.from_dict(rec["data"])
        for name in FIXED_ON_RESUME:
            if name in given:
                old = getattr(base_cfg if hasattr(base_cfg, name) else base_spec, name)
                if getattr(a, name) != old:
                    raise ValueError(f"--{name.replace('_', '-')}: cannot change on --resume (the run used {old}); "
                                     "start a new run with another --out")
        explicit = argparse.Namespace(**{k: v for k, v in vars(a).items() if k in given})
        cfg = dataclass_from_args(TrainConfig, explicit, base=base_cfg)
        spec = dataclass_from_args(DatasetSpec, explicit, base=base_spec)
        recorded = rec.get("fingerprint")
    else:
        if _is_main_process():  # other ranks may start after rank 0 has begun writing the folder
            check_fresh(out, a.overwrite)
        cfg, spec = config_from_args(a), dataclass_from_args(DatasetSpec, a)
    try:
        rcfg = cfg.resolved()  # fail fast on bad options
    except ValueError as e:  # "dropout must be ..." -> "--dropout must be ..."
        field, _, rest = str(e).partition(" ")
        raise ValueError(f"--{field.replace('_', '-')} {rest}" if hasattr(cfg, field) else str(e)) from None
    if rcfg.mode == "full" and given & {"fanouts", "batch_size"}:
        raise ValueError("--fanouts and --batch-size apply to --mode minibatch only")
    # Under torchrun: join the process group (NCCL on GPUs, gloo on CPU); a no-op otherwise.
    info = init_distributed(device=None if cfg.device == "auto" else cfg.device)
    talk = cfg.progress and info.is_main
    # Under torchrun the host's local rank 0 builds the graph and split; its ranks share one mapped copy.
    spec, data, split = shared_on_host(
        info, lambda: _load(spec, cfg.seed, progress=talk, recorded=recorded, force=a.force))
    if cfg.mode == "auto" and cfg.choose_mode(data.num_nodes)[0] == "full" and given & {"fanouts", "batch_size"}:
        raise ValueError(f"--fanouts and --batch-size apply to minibatch mode, but --mode auto trains this "
                         f"{data.num_nodes}-node graph in full mode (--auto-full-nodes {cfg.auto_full_nodes}); "
                         "pass --mode minibatch to use them")
    record = {"format": MODEL_FORMAT, "config": cfg.to_dict(), "data": spec.to_dict(),
              "fingerprint": fingerprint(spec), "backend": a.backend,
              "split": {"seed": cfg.seed, "val": spec.val, "test": spec.test,
                        "val_edges": int(split.val_pos.size(1)), "test_edges": int(split.test_pos.size(1))}}
    # The node order a reordered run trains in is kept in the folder (resume reuses it, not a recomputation).
    order_path = os.path.join(out, ORDER_NAME)
    perm = _stored_order(order_path, data.num_nodes) if a.resume and os.path.isfile(order_path) else None
    trainer = Trainer(cfg, data.x, split, out_dir=out, perm=perm)
    if info.is_main:  # only rank 0 touches the run folder
        if not a.resume:
            clear(out)
        write_run_record(out, record)
        if trainer.perm is not None:
            np.save(order_path, trainer.perm.numpy())
        save_node_ids(os.path.join(out, "nodes.csv"), _node_ids(data))
    barrier(info)  # the folder is ready before any rank starts
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)
    res = trainer.fit(resume=a.resume)
    with phase("full-graph inference and scoring", talk):
        z = trainer.embed()  # one full-graph pass for both scores (it dominates on large graphs)
        val = trainer.evaluate_metrics(split.val_pos, split.val_neg, z=z)  # AUC, AP (+ the official metric)
        test = trainer.evaluate_metrics(split.test_pos, split.test_neg, z=z)
        del z
    epochs = res.steps / trainer.steps_per_epoch  # fractional when stopped inside an epoch
    test_auc, test_ap = test["auc"], test["ap"]
    out_rec = dict(**{f"test_{k}": v for k, v in test.items()}, **{f"val_{k}": v for k, v in val.items()},
                   seconds=time.perf_counter() - t0, train_seconds=res.train_seconds,
                   train_pairs_per_s=res.train_pairs_per_s, peak_memory_bytes=peak_memory_bytes(trainer.device),
                   best_epoch=res.best_epoch, epochs_run=int(epochs) if epochs == int(epochs) else round(epochs, 3),
                   steps=res.steps, stopped_early=res.stopped_early, out_of_time=res.out_of_time,
                   mode=res.mode, mode_reason=res.mode_reason,
                   objective="all_pairs" if trainer.all_pairs else "sampled",
                   num_nodes=data.num_nodes, num_edges=data.graph.num_edges,
                   config={**trainer.cfg.to_dict(), **spec.to_dict(), "backend": a.backend},
                   world_size=info.world_size)
    official = f" / {split.metric} {test[split.metric]:.3f}" if split.metric else ""
    line = (f"{cfg.model.upper()} on {spec.label}, {res.mode}: test AUC {test_auc:.3f} / AP {test_ap:.3f}{official} in "
            f"{out_rec['seconds']:.0f} s, peak {out_rec['peak_memory_bytes'] / 2**30:.1f} GB → {a.out.rstrip('/')}/")
    if not info.is_main:
        return line, out_rec
    save_model(os.path.join(out, MODEL_NAME), trainer.model, record, data.x.shape[1])
    title = f"{cfg.model.upper()} on {spec.label} ({res.mode}): test AUC {test_auc:.3f} / AP {test_ap:.3f}"
    if a.save_embeddings or a.plot:
        with phase("full-graph embeddings", talk):
            mu = trainer.model.embed(data.x, data.graph, batch_size=cfg.embed_batch_size, device=trainer.device)
        if a.save_embeddings:
            np.save(os.path.join(out, "embeddings.npy"), mu.cpu().numpy())
        if a.plot:
            from scalevgae.train.plots import plot_curves, plot_latent

            plot_latent(mu, data.y, os.path.join(out, "latent.png"), title=title)
            plot_curves(trainer.history, os.path.join(out, "curves.png"), best_epoch=res.best_epoch or None,
                        title=title)
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(out_rec, f, indent=1)
    return line, out_rec


def _saved_run(a: argparse.Namespace, given: set[str]):
    """(blob, model path, resolved spec, data, split, device) of the model named by --out/--checkpoint."""
    path = os.path.abspath(a.checkpoint or os.path.join(a.out, MODEL_NAME))
    blob = load_model_file(path)
    cfg = TrainConfig.from_dict(blob["config"])
    spec, data, split = _load(_repointed(blob, a, given), cfg.seed, progress=True, recorded=blob.get("fingerprint"),
                              force=a.force)
    _check_split(blob, split, path)
    if data.x.shape[1] != int(blob["in_channels"]):
        raise ModelFileError(f"{path}: the model takes {blob['in_channels']} features per node, the data has "
                             f"{data.x.shape[1]}; pass the data it was trained on")
    return blob, path, spec, data, split


def cmd_eval(a: argparse.Namespace, given: set[str]) -> tuple[str, dict[str, Any]]:
    check_writable(os.path.abspath(a.out))
    blob, path, spec, data, split = _saved_run(a, given)
    device = resolve_device(a.device)
    model = build_saved_model(blob, device)
    with phase("full-graph inference and scoring"):
        z = model.embed(data.x, split.train_graph, batch_size=a.embed_batch_size, device=device)
        res: dict[str, Any] = {}
        for name, pos, neg in (("val", split.val_pos, split.val_neg), ("test", split.test_pos, split.test_neg)):
            res[name + "_auc"], res[name + "_ap"] = model.test(z, pos.to(device), neg.to(device))
            if split.metric:  # the dataset's official ranking metric (OGB), as in metrics.json
                ps, ns = (model.decode(z, e.to(device), sigmoid=False) for e in (pos, neg))
                res[f"{name}_{split.metric}"] = ranking_metric(split.metric, ps, ns)
    os.makedirs(a.out, exist_ok=True)
    dest = os.path.join(a.out, "eval.json")
    with open(dest, "w") as f:
        json.dump(res, f, indent=1)
    line = (f"{path} on {spec.label}: val AUC {res['val_auc']:.3f} / AP {res['val_ap']:.3f}, "
            f"test AUC {res['test_auc']:.3f} / AP {res['test_ap']:.3f} → {dest}")
    return line, res


def _embed_saved(a: argparse.Namespace, given: set[str]):
    blob, path, spec, data, _ = _saved_run(a, given)
    device = resolve_device(a.device)
    model = build_saved_model(blob, device)
    with phase("full-graph inference"):
        mu = model.embed(data.x, data.graph, batch_size=a.embed_batch_size, device=device)
    return blob, spec, data, mu


def _ids_path(npy: str) -> str:
    """Where the ids of an embeddings file go: DIR/nodes.csv beside DIR/embeddings.npy, else X.nodes.csv."""
    if os.path.basename(npy) == "embeddings.npy":
        return os.path.join(os.path.dirname(npy), "nodes.csv")
    return (npy[:-4] if npy.endswith(".npy") else npy) + ".nodes.csv"


def cmd_embed(a: argparse.Namespace, given: set[str]) -> tuple[str, dict[str, Any]]:
    path = os.path.abspath(a.output or os.path.join(a.out, "embeddings.npy"))
    check_writable(path, "--output" if a.output else "--out", is_dir=False)
    blob, spec, data, mu = _embed_saved(a, given)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, mu.cpu().numpy())
    ids = _ids_path(path)
    save_node_ids(ids, _node_ids(data))
    if a.plot:
        from scalevgae.train.plots import plot_latent

        cfg = TrainConfig.from_dict(blob["config"])
        plot_latent(mu, data.y, os.path.join(a.out, "latent.png"), title=f"{cfg.model.upper()} on {spec.label}")
    res = {"embeddings": path, "node_ids": ids, "shape": list(mu.shape)}
    return f"{mu.size(0)} x {mu.size(1)} embeddings → {path} (row i is node_id i of {ids})", res


def _query_indices(tokens: list[str], ids: Any, n: int) -> torch.Tensor:
    """Internal indices of the --query ids (the dataset's original ids, or indices when it has none)."""
    if ids is None:
        try:
            q = [int(t) for t in tokens]
        except ValueError:
            raise ValueError(f"--query: node ids of this graph are integers 0..{n - 1}, got {tokens!r}") from None
        bad = [v for v in q if not 0 <= v < n]
        if bad:
            raise ValueError(f"--query: node {bad[0]} is not in the graph (ids 0..{n - 1})")
        return torch.tensor(q, dtype=torch.long)
    index = {str(v): i for i, v in enumerate(np.asarray(ids).tolist())}
    missing = [t for t in tokens if t not in index]
    if missing:
        raise ValueError(f"--query: node id {missing[0]!r} is not in the graph (see nodes.csv for its ids)")
    return torch.tensor([index[t] for t in tokens], dtype=torch.long)


def cmd_predict(a: argparse.Namespace, given: set[str]) -> tuple[str, dict[str, Any]]:
    """The --top-k most likely new partners of each query node, as CSV (node, candidate, score)."""
    if a.top_k <= 0:
        raise ValueError(f"--top-k must be positive, got {a.top_k}")
    path = os.path.abspath(a.output or os.path.join(a.out, "topk.csv"))
    check_writable(path, "--output" if a.output else "--out", is_dir=False)
    _, _, data, mu = _embed_saved(a, given)
    n = mu.size(0)
    query = torch.arange(n) if a.query is None else _query_indices(a.query, data.node_ids, n)
    exclude = None if a.include_known else data.graph
    with phase("scoring candidates"):
        idx, scores = topk_links(mu, a.top_k, query=query.to(mu.device), exclude=exclude)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rows = write_topk_csv(path, query, idx, scores, data.node_ids, sigmoid=True)
    res = {"predictions": path, "rows": rows, "top_k": a.top_k, "queries": int(query.numel())}
    return f"{rows} predicted links ({a.top_k} per node for {query.numel()} nodes) → {path}", res


# ---- parser ----
def _node_list(s: str) -> list[str]:
    return [v.strip() for v in s.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    from scalevgae import __version__

    fmt = {"formatter_class": HelpFormatter}
    p = Parser(prog="scalevgae", description="Train and use (V)GAE link-prediction models.", **fmt)
    p.add_argument("--version", action="version", version=f"scalevgae {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="{train,eval,embed,predict,selftest}")
    common = Parser(add_help=False)
    common.add_argument("--out", default="runs/latest", help="run folder")
    add_dataclass_options(common, TrainConfig, only={"device"})
    common.add_argument("--backend", default=None, choices=list(dispatch.BACKENDS),
                        help="kernel backend for every op (default: best available)")
    common.add_argument("--json", action="store_true", help="print the full JSON record instead of one line")
    common.add_argument("--force", action="store_true",
                        help="use data whose files differ from the ones the run recorded")
    data = Parser(add_help=False)
    add_dataclass_options(data, DatasetSpec)
    saved = Parser(add_help=False)  # commands on a saved model: re-point moved data
    saved.add_argument("--checkpoint", default=None, help="model file (default DIR/model.pt)")
    saved.add_argument("--dataset", help="the run's dataset moved: its new path (default: the recorded one)")
    saved.add_argument("--root", help="the run's Planetoid folder moved: its new path (default: the recorded one)")
    saved.add_argument("--features", help="the run's features file moved: its new path (default: the recorded one)")
    add_dataclass_options(saved, TrainConfig, only={"embed_batch_size"})

    t = sub.add_parser("train", parents=[common, data], help="train a model, write metrics.json and model.pt",
                       description="Train a VGAE/GAE; writes DIR/model.pt, run.json, metrics.json(l), nodes.csv.",
                       **fmt)
    add_dataclass_options(t, TrainConfig, exclude={"device"})
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint.pt (its dataset and settings are read "
                        "from it; options given here override them)")
    t.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    t.add_argument("--save-embeddings", action="store_true", help="write DIR/embeddings.npy (full graph)")
    t.add_argument("--plot", action="store_true", help="write DIR/latent.png and DIR/curves.png")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", parents=[common, saved], help="score DIR/model.pt on its validation and test pairs",
                       **fmt)
    e.set_defaults(func=cmd_eval)
    m = sub.add_parser("embed", parents=[common, saved], help="full-graph latent means of DIR/model.pt", **fmt)
    m.add_argument("--output", default=None, help=".npy path (default DIR/embeddings.npy; ids in DIR/nodes.csv)")
    m.add_argument("--plot", action="store_true", help="write DIR/latent.png")
    m.set_defaults(func=cmd_embed)
    q = sub.add_parser("predict", parents=[common, saved], help="top-k most likely new links of DIR/model.pt as CSV",
                       **fmt)
    q.add_argument("--top-k", type=int, default=10, help="candidates per query node")
    q.add_argument("--query", type=_node_list, default=None,
                   help="comma-separated node ids, as in your data (default: all nodes)")
    q.add_argument("--include-known", action="store_true", help="also rank pairs that are already edges")
    q.add_argument("--output", default=None, help="CSV path (default DIR/topk.csv)")
    q.set_defaults(func=cmd_predict)
    s = sub.add_parser("selftest", help="check every usable kernel backend against the reference (run first on a GPU)")
    s.add_argument("--device", default=None, help="cpu or cuda (default: cuda if visible)")
    s.add_argument("--seed", type=int, default=None, help="input seed (default: a fresh one, printed)")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s.set_defaults(func=cmd_selftest, backend=None)
    return p


def cmd_selftest(args: argparse.Namespace, given: set[str]) -> tuple[str, dict[str, Any]]:
    """One line per (op, backend); exit status 1 if any check fails."""
    from scalevgae.ops import selftest

    if args.device is not None and args.device.split(":")[0] not in ("cpu", "cuda"):
        raise ValueError(f"--device {args.device}: expected cpu or cuda")
    rows = selftest(args.device, seed=args.seed)
    failed = [f"{r.op}/{r.backend}" for r in rows if not r.ok]
    if failed:
        print(f"scalevgae selftest: FAILED: {', '.join(failed)}", file=sys.stderr)
        raise SystemExit(1)
    return f"scalevgae selftest: all {len(rows)} checks passed", {"checks": len(rows), "failed": 0}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    given = given_options(parser, argv)
    old = os.environ.get("SCALEVGAE_BACKEND")
    if args.backend is not None:
        os.environ["SCALEVGAE_BACKEND"] = args.backend  # read by every op's dispatcher
    try:
        line, out = args.func(args, given)
    except USER_ERRORS as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"scalevgae {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"scalevgae {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        _leave_process_group()
        if args.backend is not None:
            if old is None:
                os.environ.pop("SCALEVGAE_BACKEND", None)
            else:
                os.environ["SCALEVGAE_BACKEND"] = old
    if _is_main_process():
        print(json.dumps(out, indent=1, default=str) if args.json else line)
    return 0


def _leave_process_group() -> None:
    from scalevgae.distributed import shutdown_distributed

    shutdown_distributed()  # the trainer is gone by now: cmd_train has returned


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0  # torchrun's global rank
