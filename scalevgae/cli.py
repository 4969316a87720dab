"""Command line: ``scalevgae train | eval | embed``.

    scalevgae train                                  # synthetic graph, VGAE, full mode
    scalevgae train --dataset cora --root DIR --out runs/cora --plot
    scalevgae eval --out runs/cora                   # re-scores the saved model on its split
    scalevgae embed --out runs/cora                  # DIR/embeddings.npy on the full graph

``--dataset``: cora | citeseer | pubmed (Planetoid ``ind.<name>.*`` files in ``--root``),
synthetic (planted partition, ``--nodes``/``--avg-degree``; the default), or a path to a
``.npz`` / edge-list file (read by ``scalevgae.data.load_graph``). Graphs without features
get ``scalevgae.data.features.default_features`` (standardized log-degree + fixed random
columns, ``--feature-dim``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Any, Optional, Sequence

import numpy as np
import torch

from scalevgae.data.dataset import GraphData
from scalevgae.data.features import default_features
from scalevgae.data.io import write_topk_csv
from scalevgae.data.split import split_edges
from scalevgae.distributed import barrier, init_distributed
from scalevgae.metrics import ranking_metric
from scalevgae.models import build_model
from scalevgae.ops.topk import topk_links
from scalevgae.train import TrainConfig, Trainer, resolve_device

PLANETOID = ("cora", "citeseer", "pubmed")
MODEL_FILE = "model.pt"


# ---- data ----
def load_dataset(name: str, *, root: Optional[str] = None, nodes: int = 2000, avg_degree: float = 16,
                 graph_seed: int = 0) -> GraphData:
    """The graph named by ``--dataset`` (see the module docstring)."""
    low = name.lower()
    if low in PLANETOID:
        from scalevgae.data.planetoid import find_planetoid_root, load_planetoid

        root = root or find_planetoid_root()
        if root is None:
            raise FileNotFoundError(f"--dataset {low}: no Planetoid folder found; pass --root DIR with ind.{low}.* files")
        return load_planetoid(root, low)
    if low == "synthetic":
        from scalevgae.data.synthetic import planted_partition

        return planted_partition(nodes, avg_degree, seed=graph_seed)
    from scalevgae.data.ogb import resolve_ogb_dir

    ogb_dir = resolve_ogb_dir(name, root)
    if low.startswith("ogbl-") and not os.path.exists(name):
        if ogb_dir is None:
            raise FileNotFoundError(f"--dataset {name}: no {name.replace('-', '_')} folder in --root "
                                    f"{root or '.'} (nothing is downloaded; see README 'OGB')")
        name = ogb_dir
    if not os.path.exists(name):
        raise FileNotFoundError(f"--dataset {name!r} is neither {PLANETOID + ('synthetic',)} nor an existing file")
    import scalevgae.data as sd

    loader = getattr(sd, "load_graph", None)
    if loader is None:
        raise RuntimeError(f"--dataset {name}: reading .npz / edge-list files needs scalevgae.data.load_graph, "
                           "which this installation does not provide")
    return loader(name)


def features_of(data: GraphData, dim: int, seed: int) -> torch.Tensor:
    if data.x is None:
        return default_features(data.graph, dim, seed)
    return torch.as_tensor(np.asarray(data.x) if not isinstance(data.x, torch.Tensor) else data.x).float()


def _data_args(a: argparse.Namespace) -> dict[str, Any]:
    return dict(dataset=a.dataset, root=a.root, nodes=a.nodes, avg_degree=a.avg_degree, graph_seed=a.graph_seed,
                feature_dim=a.feature_dim, val=a.val, test=a.test)


def _load(d: dict[str, Any], split_seed: int):
    data = load_dataset(d["dataset"], root=d["root"], nodes=d["nodes"], avg_degree=d["avg_degree"],
                        graph_seed=d["graph_seed"])
    x = features_of(data, d["feature_dim"], d["graph_seed"])
    if data.split is not None:  # the dataset's official split (OGB): --val/--test do not apply
        return data, x, data.split
    return data, x, split_edges(data.graph, d["val"], d["test"], seed=split_seed)


# ---- outputs ----
def peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def plot_latent(z: torch.Tensor, y: Optional[torch.Tensor], path: str, *, max_points: int = 20000,
                seed: int = 0) -> None:
    """2-D PCA projection of the latent means, coloured by class when labels exist (VGAE Fig. 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = z.detach().float().cpu()
    idx = torch.arange(z.size(0))
    if z.size(0) > max_points:
        idx = torch.randperm(z.size(0), generator=torch.Generator().manual_seed(seed))[:max_points]
    zc = z[idx] - z[idx].mean(0)
    _, _, v = torch.linalg.svd(zc, full_matrices=False)
    p = (zc @ v[:2].t()).numpy() if v.size(0) >= 2 else np.c_[zc.numpy()[:, :1], np.zeros(len(idx))]
    fig, ax = plt.subplots(figsize=(6, 6))
    c = None if y is None else y.cpu()[idx].numpy()
    ax.scatter(p[:, 0], p[:, 1], c=c, s=4, cmap="tab10" if c is not None else None, alpha=0.7)
    ax.set_title("latent means (PCA)" + (", coloured by class" if c is not None else ""))
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _model_blob(trainer: Trainer, in_channels: int, data_args: dict[str, Any]) -> dict[str, Any]:
    return {"format": 1, "state_dict": {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()},
            "config": trainer.cfg.to_dict(), "data": data_args, "in_channels": int(in_channels)}


def _load_model(path: str, device: torch.device):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no saved model at {path} (run `scalevgae train --out DIR` first)")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    cfg = TrainConfig.from_dict(blob["config"])
    model = build_model(cfg.model, blob["in_channels"], cfg.hidden, cfg.latent, cfg.dropout)
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval(), cfg, blob["data"]


# ---- commands ----
def cmd_train(a: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    cfg = TrainConfig(model=a.model, mode=a.mode, hidden=a.hidden, latent=a.latent, dropout=a.dropout,
                      epochs=a.epochs, steps=a.steps, lr=a.lr, optimizer=a.optimizer, neg_ratio=a.neg_ratio,
                      batch_size=a.batch_size, fanouts=tuple(a.fanouts), patience=a.patience or None,
                      seed=a.seed, device=a.device, amp=a.amp, checkpoint_every=a.checkpoint_every,
                      eval_every=a.eval_every, ema_decay=a.ema_decay, exclude_heldout=not a.no_exclude_heldout,
                      progress=not a.no_progress)
    cfg.resolved()  # fail fast on bad options
    # Under torchrun: join the process group (NCCL on GPUs, gloo on CPU); a no-op otherwise.
    info = init_distributed(device=None if a.device == "auto" else a.device)
    data_args = _data_args(a)
    data, x, split = _load(data_args, a.seed)
    os.makedirs(a.out, exist_ok=True)
    if not info.is_main:
        pass  # only rank 0 touches the run folder
    elif not a.resume:
        for stale in ("metrics.jsonl", "checkpoint.pt"):
            if os.path.exists(os.path.join(a.out, stale)):
                os.remove(os.path.join(a.out, stale))
    elif not os.path.isfile(os.path.join(a.out, "checkpoint.pt")):
        raise FileNotFoundError(f"--resume: no checkpoint.pt in {a.out} (train with --checkpoint-every K)")
    barrier(info)  # stale files gone before any rank starts
    trainer = Trainer(cfg, x, split, out_dir=a.out)
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)
    res = trainer.fit(resume=a.resume)
    z = trainer.embed()  # one full-graph pass for both scores (it dominates on large graphs)
    val = trainer.evaluate_metrics(split.val_pos, split.val_neg, z=z)
    test = trainer.evaluate_metrics(split.test_pos, split.test_neg, z=z)
    del z
    out = dict(**{f"test_{k}": v for k, v in test.items()}, **{f"val_{k}": v for k, v in val.items()},
               seconds=time.perf_counter() - t0, train_seconds=res.train_seconds,
               train_pairs_per_s=res.train_pairs_per_s, peak_memory_bytes=peak_memory_bytes(trainer.device),
               best_epoch=res.best_epoch, epochs_run=res.epochs_run, steps=res.steps,
               stopped_early=res.stopped_early, objective="all_pairs" if trainer.all_pairs else "sampled",
               num_nodes=data.num_nodes, num_edges=data.graph.num_edges,
               config={**trainer.cfg.to_dict(), **data_args, "backend": a.backend},
               world_size=info.world_size)
    if not info.is_main:
        return out
    torch.save(_model_blob(trainer, x.size(1), data_args), os.path.join(a.out, MODEL_FILE))
    if a.save_embeddings or a.plot:
        mu = trainer.model.embed(data.graph, x, batch_size=cfg.embed_batch_size, device=trainer.device)
        if a.save_embeddings:
            np.save(os.path.join(a.out, "embeddings.npy"), mu.cpu().numpy())
        if a.plot:
            plot_latent(mu, data.y, os.path.join(a.out, "latent.png"))
    with open(os.path.join(a.out, "metrics.json"), "w") as f:
        json.dump(out, f, indent=1)
    return out


def cmd_eval(a: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(a.device)
    model, cfg, data_args = _load_model(a.checkpoint or os.path.join(a.out, MODEL_FILE), device)
    data, x, split = _load(data_args, cfg.seed)
    z = model.embed(split.train_graph, x, device=device)
    out = {}
    for name, pos, neg in (("val", split.val_pos, split.val_neg), ("test", split.test_pos, split.test_neg)):
        out[name + "_auc"], out[name + "_ap"] = model.test(z, pos.to(device), neg.to(device))
        if split.metric:  # the dataset's official ranking metric (OGB), as in metrics.json
            ps, ns = (model.decode(z, e.to(device), sigmoid=False) for e in (pos, neg))
            out[f"{name}_{split.metric}"] = ranking_metric(split.metric, ps, ns)
    with open(os.path.join(a.out, "eval.json"), "w") as f:
        json.dump(out, f, indent=1)
    return out


def _embed_checkpoint(a: argparse.Namespace) -> tuple[GraphData, torch.Tensor]:
    """The dataset a model was trained on and its full-graph latent means [N, latent]."""
    device = resolve_device(a.device)
    model, cfg, data_args = _load_model(a.checkpoint or os.path.join(a.out, MODEL_FILE), device)
    data = load_dataset(data_args["dataset"], root=data_args["root"], nodes=data_args["nodes"],
                        avg_degree=data_args["avg_degree"], graph_seed=data_args["graph_seed"])
    x = features_of(data, data_args["feature_dim"], data_args["graph_seed"])
    return data, model.embed(data.graph, x, batch_size=a.embed_batch_size, device=device)


def cmd_embed(a: argparse.Namespace) -> dict[str, Any]:
    data, mu = _embed_checkpoint(a)
    path = a.output or os.path.join(a.out, "embeddings.npy")
    np.save(path, mu.cpu().numpy())
    if a.plot:
        plot_latent(mu, data.y, os.path.join(a.out, "latent.png"))
    return {"embeddings": path, "shape": list(mu.shape)}


def cmd_predict(a: argparse.Namespace) -> dict[str, Any]:
    """The --top-k most likely new partners of each query node, as CSV (node, candidate, score)."""
    if a.top_k <= 0:
        raise ValueError(f"--top-k must be positive, got {a.top_k}")
    data, mu = _embed_checkpoint(a)
    n = mu.size(0)
    query = torch.arange(n) if a.query is None else torch.tensor(a.query, dtype=torch.long)
    if query.numel() and (int(query.min()) < 0 or int(query.max()) >= n):
        raise ValueError(f"--query nodes must lie in [0, {n})")
    exclude = None if a.include_known else data.graph
    idx, scores = topk_links(mu, a.top_k, query=query.to(mu.device), exclude=exclude)
    path = a.output or os.path.join(a.out, "topk.csv")
    rows = write_topk_csv(path, query, idx, scores, data.node_ids, sigmoid=True)
    return {"predictions": path, "rows": rows, "top_k": a.top_k, "queries": int(query.numel())}


# ---- parser ----
def _node_list(s: str) -> list[int]:
    try:
        return [int(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--query must be comma-separated node indices, got {s!r}") from None


def _fanouts(s: str) -> list[int]:
    try:
        return [int(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--fanouts must be comma-separated integers, got {s!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scalevgae", description="Train and use (V)GAE link-prediction models.")
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", default="runs/latest", help="run folder (default runs/latest)")
    common.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    common.add_argument("--backend", default=None, choices=["reference", "cpu", "cuda", "triton"],
                        help="kernel backend for every op (default: best available)")
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--dataset", default="synthetic",
                      help="cora | citeseer | pubmed | synthetic | path to .npz or edge list")
    data.add_argument("--root", default=None, help="folder with the Planetoid ind.<name>.* files")
    data.add_argument("--nodes", type=int, default=2000, help="synthetic: number of nodes")
    data.add_argument("--avg-degree", type=float, default=16, help="synthetic: average degree")
    data.add_argument("--graph-seed", type=int, default=0, help="synthetic graph / default-feature seed")
    data.add_argument("--feature-dim", type=int, default=32, help="size of default features for featureless graphs")
    data.add_argument("--val", type=float, default=0.05, help="validation edge fraction")
    data.add_argument("--test", type=float, default=0.10, help="test edge fraction")

    t = sub.add_parser("train", parents=[common, data], help="train a model, write metrics.json and model.pt")
    t.add_argument("--model", default="vgae", choices=["vgae", "gae"])
    t.add_argument("--mode", default="full", choices=["full", "minibatch"])
    t.add_argument("--epochs", type=int, default=None, help="default 200 (full) / 100 (minibatch)")
    t.add_argument("--steps", type=int, default=None, help="stop after this many optimizer steps")
    t.add_argument("--batch-size", type=int, default=512, help="minibatch: positive pairs per batch")
    t.add_argument("--fanouts", type=_fanouts, default=[10, 5], help="minibatch: neighbours per layer, e.g. 10,5")
    t.add_argument("--neg-ratio", type=int, default=None, help="sampled negatives per positive (default 5)")
    t.add_argument("--hidden", type=int, default=32)
    t.add_argument("--latent", type=int, default=16)
    t.add_argument("--dropout", type=float, default=0.0)
    t.add_argument("--lr", type=float, default=None, help="default 0.01 (full) / 0.001 (minibatch)")
    t.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    t.add_argument("--patience", type=int, default=100, help="early-stopping patience in epochs (0: off)")
    t.add_argument("--ema-decay", type=float, default=None,
                   help="evaluate/keep an exponential moving average of the weights (default 0.95 full, off minibatch; 0: off)")
    t.add_argument("--eval-every", type=int, default=1, help="epochs between validation evaluations")
    t.add_argument("--no-exclude-heldout", action="store_true",
                   help="train validation/test edges as non-edges like the paper's loss (default: never)")
    t.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"], help="bf16 autocast (auto: on GPU)")
    t.add_argument("--seed", type=int, default=0, help="split, initialisation and sampling seed")
    t.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints (0: none)")
    t.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    t.add_argument("--save-embeddings", action="store_true", help="write DIR/embeddings.npy (full graph)")
    t.add_argument("--plot", action="store_true", help="write DIR/latent.png")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", parents=[common], help="score DIR/model.pt on its validation and test pairs")
    e.add_argument("--checkpoint", default=None, help="model file (default DIR/model.pt)")
    e.set_defaults(func=cmd_eval)

    m = sub.add_parser("embed", parents=[common], help="full-graph latent means of DIR/model.pt")
    m.add_argument("--checkpoint", default=None, help="model file (default DIR/model.pt)")
    m.add_argument("--output", default=None, help=".npy path (default DIR/embeddings.npy)")
    m.add_argument("--embed-batch-size", type=int, default=65536, help="rows per propagation chunk")
    m.add_argument("--plot", action="store_true", help="write DIR/latent.png")
    m.set_defaults(func=cmd_embed)
    q = sub.add_parser("predict", parents=[common], help="top-k most likely new links of DIR/model.pt as CSV")
    q.add_argument("--checkpoint", default=None, help="model file (default DIR/model.pt)")
    q.add_argument("--top-k", type=int, default=10, help="candidates per query node")
    q.add_argument("--query", type=_node_list, default=None, help="comma-separated node indices (default: all nodes)")
    q.add_argument("--include-known", action="store_true", help="also rank pairs that are already edges")
    q.add_argument("--output", default=None, help="CSV path (default DIR/topk.csv)")
    q.add_argument("--embed-batch-size", type=int, default=65536, help="rows per propagation chunk")
    q.set_defaults(func=cmd_predict)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    old = os.environ.get("SCALEVGAE_BACKEND")
    if args.backend is not None:
        os.environ["SCALEVGAE_BACKEND"] = args.backend  # read by every op's dispatcher
    try:
        out = args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError, ImportError) as e:
        print(f"scalevgae {args.command}: error: {e}", file=sys.stderr)
        return 2
    finally:
        _leave_process_group()
        if args.backend is not None:
            if old is None:
                os.environ.pop("SCALEVGAE_BACKEND", None)
            else:
                os.environ["SCALEVGAE_BACKEND"] = old
    if _is_main_process():
        print(json.dumps(out, indent=1, default=str))
    return 0


def _leave_process_group() -> None:
    from scalevgae.distributed import shutdown_distributed

    shutdown_distributed()  # the trainer is gone by now: cmd_train has returned


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0  # torchrun's global rank
