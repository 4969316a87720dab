"""End-to-end minibatch VGAE training: scalevgae vs the PyG recipe, identical settings, same run.

Built-in graph ``planted_partition(N, avg_degree=16, feature_dim=64)``, ``split_edges`` (85/5/10),
batches of 4096 positive training pairs + 1 uniform negative each, fanouts [10, 5] (``--fanouts``), a two-layer
GCN encoder (hidden 32, latent 16), Adam. Both systems run the same number of steps (so the
same number of training pairs) and are scored on the same test pairs with
``scalevgae.metrics``. Each system runs in its own subprocess so its peak RSS (VmHWM) is its
own; the peak is reset after the graph is built and split, so it covers training + inference.

Reported per system: steps/s, training pairs/s (positives + negatives), peak RSS, peak GPU
memory (CUDA), test AUC/AP, full-graph inference time of all N embeddings; for scalevgae also
one full epoch over all training edges (extrapolated from the measured steps unless
``--full-epoch``, which measures it) and ``steady_pairs_per_s``, the rate after the first step (an
epoch starts with a shuffle of all training pairs, O(E), and a loader with an empty queue: 3.8 s of
the first step at 10^7 nodes, once per epoch of ~16 000 steps there).

    python benchmarks/bench_train.py --quick          # 1e4 nodes, seconds
    python benchmarks/bench_train.py                  # 1e6 nodes (the README table)
    python benchmarks/bench_train.py --device cuda --full-epoch
    python benchmarks/bench_train.py --nodes 100000 --eval-at 30,100,300   # AUC along the way
    python benchmarks/bench_train.py --nodes 3000000 --skip-pyg            # ~4 GB; 10^7: ~12 GB
    python benchmarks/bench_train.py --nodes 10000000 --steps 200 --skip-pyg --x-dtype bfloat16   # features in bf16
    python benchmarks/bench_train.py --nodes 10000000 --steps 200 --skip-pyg --fanouts 10,-1   # exact input hop

``data_s`` is the time to generate the graph, build its CSR and split it. PyG's recipe runs only
where its measured footprint (``PYG_GB_PER_MNODE`` per 10^6 nodes, linear) fits in the available
memory; otherwise its row says so instead of swapping the machine to death.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

if __package__ in (None, ""):  # run as a file: make `benchmarks` (and this checkout's scalevgae) importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import Stopwatch, peak_rss_gb, reset_peak_rss, sync, write_results  # noqa: E402
from scalevgae.cli_options import _int_tuple  # noqa: E402
from scalevgae.data.datasets import X_DTYPES  # noqa: E402
from scalevgae.nn.decoder import available_memory_bytes  # noqa: E402

# PyG's peak RSS per 10^6 nodes in this benchmark: measured 6.49 GB at 10^6 and 17.56 GB at 3·10^6 nodes
PYG_GB_PER_MNODE = 6.0
DEFAULT_FANOUTS = (10, 5)


def _data(args: argparse.Namespace):
    from scalevgae.data.datasets import DatasetSpec, load_dataset
    from scalevgae.data.split import split_edges

    clock = Stopwatch()
    # The CLI's built-in graph, planted_partition(N, avg_degree=16, feature_dim=64); --x-dtype as the CLI's.
    x_dtype = args.x_dtype if args.worker == "ours" else "float32"
    data = load_dataset(DatasetSpec(dataset="synthetic", nodes=args.nodes, avg_degree=16, graph_seed=args.seed,
                                    x_dtype=x_dtype))
    split = split_edges(data.graph, 0.05, 0.10, seed=args.seed)
    return data, split, clock.elapsed()


def _run_ours(data, split, args: argparse.Namespace, device: torch.device) -> dict:
    from scalevgae.train import TrainConfig, Trainer

    steps = args.steps
    if args.full_epoch:
        steps = -(-split.train_pos.size(1) // args.batch_size)
    # The raw iterates (no weight averaging), like PyG's recipe, so both are scored the same way.
    cfg = TrainConfig(mode="minibatch", hidden=32, latent=16, epochs=10**6, steps=steps, lr=args.lr, neg_ratio=1,
                      batch_size=args.batch_size, fanouts=args.fanouts, patience=0, ema_decay=0.0, seed=args.seed,
                      device=str(device), amp="off", progress=False, reorder=args.reorder)
    setup_clock = Stopwatch()
    # with --reorder: computing the order and renumbering; with fanout -1 last: the input table
    trainer = Trainer(cfg, data.x, split)
    setup_s = setup_clock.elapsed()
    # No validation inside the timed training (the trainer validates at the end of a run): the
    # test scores below are the only scoring, off the clock as PyG's.
    trainer.validate = lambda: dict(auc=float("nan"), ap=float("nan"))
    train_edges = split.train_pos.size(1)
    curve: list = []
    stamps: list = []  # wall clock after each step

    def on_step(step: int) -> None:  # test scores along the way, off the clock
        stamps.append(time.perf_counter())
        if step in args.eval_at:
            with train_clock.paused():
                curve.append(_curve_point(step, _scored_pairs(step, args.batch_size, train_edges),
                                          *_test_scores(trainer.embed(), split)))

    train_clock = Stopwatch()
    res = trainer.fit(on_step=on_step)
    train_s = train_clock.elapsed()  # wall clock: batch preparation, waits and steps
    infer_clock = Stopwatch()
    z = trainer.embed()
    sync(device)
    infer_s = infer_clock.elapsed()
    auc, ap = _test_scores(z, split)
    # The trainer also counts the self-loop term's seeds; report scored pairs like PyG (pos + neg).
    n_batches = len(trainer.loader)
    pairs = _scored_pairs(res.steps, args.batch_size, train_edges)
    # After the first step: without the epoch's start (its shuffle of all training pairs, O(E):
    # 3.8 s at 10^7 nodes) and the loader's first batch, which nothing overlaps.
    steady = None
    if len(stamps) > 1 and not args.eval_at:
        steady = (pairs - _scored_pairs(1, args.batch_size, train_edges)) / (stamps[-1] - stamps[0])
    out = dict(system="scalevgae", steps=res.steps, train_s=train_s,
               steps_per_s=res.steps / train_s, pairs_per_s=pairs / train_s, steady_pairs_per_s=steady,
               train_pairs=pairs, inference_s=infer_s, setup_s=setup_s, reorder=args.reorder, test_auc=auc, test_ap=ap, curve=curve,
               fanouts=list(trainer.loader.fanouts), input_table=trainer.loader.sampler.table is not None)
    if args.full_epoch:
        out.update(epoch_s=train_s, epoch_measured=True)
    else:
        out.update(epoch_s=n_batches / out["steps_per_s"], epoch_measured=False)
    return out


def _test_scores(z: torch.Tensor, split) -> tuple[float, float]:
    """(AUC, AP) of the test positives vs the test negatives, scored on the embeddings z."""
    from scalevgae.metrics import link_scores
    from scalevgae.ops.decode import edge_logits

    tp, tn = split.test_pos.to(z.device), split.test_neg.to(z.device)
    return link_scores(edge_logits(z, tp[0], tp[1]), edge_logits(z, tn[0], tn[1]))


def _curve_point(steps: int, pairs: int, auc: float, ap: float) -> dict:
    return dict(steps=steps, train_pairs=pairs, test_auc=auc, test_ap=ap)


def _scored_pairs(steps: int, batch_size: int, train_edges: int) -> int:
    """Positive + negative pairs of the first ``steps`` batches (1 negative per positive)."""
    full, last = divmod(train_edges, batch_size)
    sizes = [batch_size] * full + ([last] if last else [])
    return 2 * sum(sizes[i % len(sizes)] for i in range(steps))


def worker(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    data, split, data_s = _data(args)
    reset = reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if args.worker == "ours":
        out = _run_ours(data, split, args, device)
    else:
        from benchmarks.train_pyg import run

        out = run(data, split, steps=args.steps, batch_size=args.batch_size, fanouts=list(args.fanouts), hidden=32,
                  latent=16, lr=args.lr, seed=args.seed, device=device, eval_at=args.eval_at)
    out.update(data_s=data_s, peak_rss_gb=peak_rss_gb(), peak_rss_reset=reset,
               peak_gpu_gb=torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
               num_nodes=data.num_nodes, num_edges=data.graph.num_edges, train_edges=split.train_pos.size(1),
               x_dtype=str(data.x.dtype).replace("torch.", ""))
    out.setdefault("fanouts", list(args.fanouts))
    print("RESULT " + json.dumps(out))


def _worker_env() -> dict:
    """Both systems get the same environment. OpenMP threads that spin while idle (libgomp's
    default) steal the cores from the other thread team (loader vs trainer) and from other jobs
    on a small shared CPU; passive waiting was 20x faster per step at 1e4 nodes on 2 loaded cores."""
    return dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))


def _spawn(args: argparse.Namespace, which: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", which, "--nodes", str(args.nodes), "--steps",
           str(args.steps), "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--seed", str(args.seed),
           "--device", args.device] + (["--full-epoch"] if args.full_epoch and which == "ours" else [])
    if which == "ours" and args.reorder != "none":
        cmd += ["--reorder", args.reorder]
    if which == "ours" and args.x_dtype != "float32":
        cmd += ["--x-dtype", args.x_dtype]
    if args.fanouts != DEFAULT_FANOUTS:
        cmd += ["--fanouts", ",".join(str(f) for f in args.fanouts)]
    if args.eval_at:
        cmd += ["--eval-at", ",".join(str(k) for k in sorted(args.eval_at))]
    print(f"[{which}] {' '.join(cmd[2:])}", flush=True)
    clock = Stopwatch()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_worker_env())
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise RuntimeError(f"{which} worker failed with exit code {proc.returncode}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    out = json.loads(line[len("RESULT "):])
    out["wall_s"] = clock.elapsed()
    print(f"[{which}] {out}", flush=True)
    return out


def _steps_list(text: str) -> tuple:
    try:
        steps = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated step counts, got {text!r}") from None
    if any(k <= 0 for k in steps):
        raise argparse.ArgumentTypeError(f"step counts must be positive, got {text!r}")
    return steps


def _fanouts(text: str) -> tuple:
    fanouts = _int_tuple("--fanouts")(text)  # the CLI's parser of A,B options
    if len(fanouts) != 2 or any(f < -1 or f == 0 for f in fanouts):
        raise argparse.ArgumentTypeError(f"expected two fanouts, each positive or -1 (all), got {text!r}")
    return fanouts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1e4 nodes, 10 steps, batch 512")
    p.add_argument("--nodes", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="training steps of each system (default 30)")
    p.add_argument("--batch-size", type=int, default=None, help="positive pairs per batch (default 4096)")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--full-epoch", action="store_true", help="scalevgae: train one real full epoch")
    p.add_argument("--skip-pyg", action="store_true")
    p.add_argument("--reorder", choices=["none", "degree", "rcm"], default="none",
                   help="scalevgae: renumber the nodes first (TrainConfig.reorder; its time is setup_s, not training)")
    p.add_argument("--x-dtype", choices=[d for d in X_DTYPES if d != "auto"], default="float32",
                   help="scalevgae: store the features in this dtype (the loader's aggregation accumulates in "
                        "float32; PyG's recipe keeps float32)")
    p.add_argument("--fanouts", type=_fanouts, default=DEFAULT_FANOUTS,
                   help="neighbours per layer, first hop first, both systems (default 10,5). -1 last: every "
                        "neighbour of the input hop, which scalevgae aggregates once for all nodes (Ã X) and "
                        "gathers per batch")
    p.add_argument("--eval-at", type=_steps_list, default=(),
                   help="also score test AUC/AP after these step counts, e.g. 30,100,300 (off the clock; "
                        "--steps defaults to the largest)")
    p.add_argument("--worker", choices=["ours", "pyg"], default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.nodes = args.nodes or (10_000 if args.quick else 1_000_000)
    args.eval_at = set(args.eval_at)
    args.steps = args.steps or max(args.eval_at, default=10 if args.quick else 30)
    args.batch_size = args.batch_size or (512 if args.quick else 4096)
    if args.worker:
        worker(args)
        return
    load = os.getloadavg()
    rows = [_spawn(args, "ours")]
    pyg_need_gb = PYG_GB_PER_MNODE * args.nodes / 1e6
    free_gb = available_memory_bytes(torch.device("cpu")) / 2**30  # PyG's footprint is host memory
    if not args.skip_pyg and pyg_need_gb > 0.9 * free_gb:
        rows.append(dict(system="pyg", note=f"not run: needs ~{pyg_need_gb:.0f} GB, {free_gb:.0f} GB available"))
    elif not args.skip_pyg:
        rows.append(_spawn(args, "pyg"))
        ours, pyg = rows
        ours["speedup_pairs_s"] = ours["pairs_per_s"] / pyg["pairs_per_s"]
    for r in rows:
        if r.get("epoch_s") is not None and not r.get("epoch_measured", True):
            r["epoch"] = f"{r['epoch_s']:.4g} s (extrapolated)"
        elif r.get("epoch_s") is not None:
            r["epoch"] = f"{r['epoch_s']:.4g} s (measured)"
    cmd = "python benchmarks/bench_train.py " + " ".join(a for a in sys.argv[1:])
    meta = dict(command=cmd.strip(), nodes=args.nodes, steps=args.steps, reorder=args.reorder, x_dtype=args.x_dtype,
                eval_at=sorted(args.eval_at), batch_size=args.batch_size, lr=args.lr,
                fanouts=list(args.fanouts), neg_ratio=1, hidden=32, latent=16, loadavg_start=load, loadavg_end=os.getloadavg(),
                omp_wait_policy=_worker_env()["OMP_WAIT_POLICY"])
    name = "train-quick" if args.quick else "train" if args.nodes == 1_000_000 else f"train-{args.nodes}"
    if not args.quick and not args.eval_at and not args.full_epoch and args.steps != 30:
        name += f"-{args.steps}steps"  # the 30-step tables stay as they are
    if args.eval_at:
        name += "-curve"
    if args.reorder != "none":
        name += f"-{args.reorder}"
    if args.x_dtype != "float32":
        name += f"-x{args.x_dtype}"
    if args.fanouts != DEFAULT_FANOUTS:
        name += "-f" + "_".join("all" if f == -1 else str(f) for f in args.fanouts)
    cols = ["system", "data_s", "steps", "steps_per_s", "pairs_per_s", "steady_pairs_per_s", "speedup_pairs_s",
            "peak_rss_gb",
            "peak_gpu_gb", "setup_s", "test_auc", "test_ap", "epoch", "inference_s"] + (["note"] if any("note" in r for r in rows)
                                                                          else [])
    for k in sorted(args.eval_at):  # one column per scoring point: "AUC / AP"
        cols.append(f"auc/ap@{k}")
        for r in rows:
            pt = next((c for c in r.get("curve", []) if c["steps"] == k), None)
            r[f"auc/ap@{k}"] = None if pt is None else f"{pt['test_auc']:.4f} / {pt['test_ap']:.4f}"
    write_results(name, torch.device(args.device), rows, cols, meta)
    print(f"load average at start {load}, at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
