"""Time of one exact full-mode training epoch against the graph size: the figures behind
``TrainConfig.full_max_nodes``.

A full-mode epoch is one step over the whole graph: the encoder on all N nodes, the paper's exact
loss over all N² pairs (``all_pairs_bce_loss``), backward and Adam. Built-in graph
``planted_partition(N, avg_degree=16, feature_dim=64)``, ``split_edges`` (85/5/10), VGAE with
hidden 32 and latent 16 (the README's settings), no validation inside the timed epochs. Each size
runs ``--warmup`` epochs, then ``--repeat`` timed ones; the table has their median, the pairs
scored per second (N² per epoch) and the peak RSS of the process so far.

    python benchmarks/bench_full_epoch.py                       # 1e4, 2e4, 5e4, 1e5 nodes
    python benchmarks/bench_full_epoch.py --nodes 20000 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

if __package__ in (None, ""):  # run as a file: make `benchmarks` (and this checkout's scalevgae) importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import peak_rss_gb, write_results  # noqa: E402


def epoch_times(nodes: int, warmup: int, repeat: int, seed: int) -> list[float]:
    """Seconds of each timed full-mode epoch (one optimizer step each) on an N-node graph."""
    from scalevgae.data.split import split_edges
    from scalevgae.data.synthetic import planted_partition
    from scalevgae.train import TrainConfig, Trainer

    data = planted_partition(nodes, avg_degree=16, feature_dim=64, seed=seed)
    split = split_edges(data.graph, 0.05, 0.10, seed=seed)
    cfg = TrainConfig(mode="full", hidden=32, latent=16, epochs=warmup + repeat, patience=0, ema_decay=0.0,
                      seed=seed, full_max_nodes=max(nodes, 1), progress=False, amp="off")
    trainer = Trainer(cfg, data.x, split)
    assert trainer.all_pairs, "full mode must take the exact objective here"
    trainer.validate = lambda: dict(auc=float("nan"), ap=float("nan"))  # not part of an epoch's cost
    stamps = [time.perf_counter()]
    trainer.fit(on_step=lambda step: stamps.append(time.perf_counter()))
    trainer.close()
    return [b - a for a, b in zip(stamps, stamps[1:])][warmup:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, nargs="+", default=[10_000, 20_000, 50_000, 100_000])
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rows = []
    for n in args.nodes:
        times = epoch_times(n, args.warmup, args.repeat, args.seed)
        t = statistics.median(times)
        rows.append(dict(N=n, pairs=n * n, epoch_s=t, min_s=min(times), max_s=max(times), Gpairs_per_s=n * n / t / 1e9,
                         peak_rss_gb=peak_rss_gb()))
        print(rows[-1], flush=True)
    cmd = "python benchmarks/bench_full_epoch.py " + " ".join(sys.argv[1:])
    meta = dict(command=cmd.strip(), warmup=args.warmup, repeat=args.repeat, hidden=32, latent=16, features=64,
                threads=torch.get_num_threads(), loadavg_end=os.getloadavg())
    write_results("full-epoch", torch.device("cpu"), rows,
                  ["N", "pairs", "epoch_s", "min_s", "max_s", "Gpairs_per_s", "peak_rss_gb"], meta)


if __name__ == "__main__":
    main()
