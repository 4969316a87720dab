"""Per-phase time of one minibatch training step (the bench_train.py settings), serially.

Builds each batch with the loader's own ``make_batch`` in the calling thread (no prefetch),
timing the link sampler's named phases (``scalevgae.sampling.link.PHASES``) through its
``on_phase`` hook, then the training step phase by phase, and prints median wall times and
median process CPU times (user + system over all threads: the work a phase costs on a shared
machine, less sensitive to other jobs than wall time) over ``--repeat`` batches:

    python benchmarks/profile_train_step.py --nodes 1000000 --repeat 10
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from collections import defaultdict

import torch

if __package__ in (None, ""):  # run as a file: make `benchmarks` (and this checkout's scalevgae) importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    from scalevgae.cli_options import _int_tuple

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=1_000_000)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--fanouts", type=_int_tuple("--fanouts"), default=(10, 5),
                   help="neighbours per layer, first hop first (-1 last: the input hop precomputed once)")
    p.add_argument("--no-aggregate", action="store_true", help="gather x[n_id] instead of aggregating in the loader")
    args = p.parse_args()

    from scalevgae.data.split import split_edges
    from scalevgae.data.synthetic import planted_partition
    from scalevgae.train import TrainConfig, Trainer, minibatch

    data = planted_partition(args.nodes, avg_degree=16, feature_dim=64, seed=0)
    split = split_edges(data.graph, 0.05, 0.10, seed=0)
    cfg = TrainConfig(mode="minibatch", hidden=32, latent=16, epochs=1, steps=10**9, lr=args.lr, neg_ratio=1,
                      batch_size=args.batch_size, fanouts=args.fanouts, patience=0,
                      seed=0, device="cpu",
                      amp="off", progress=False)
    t0 = time.perf_counter()
    trainer = Trainer(cfg, data.x, split)
    print(f"Trainer built in {time.perf_counter() - t0:.1f} s (fanouts {cfg.fanouts})")
    loader = trainer.loader
    if args.no_aggregate:
        loader.sampler.aggregate_input = False
    order = loader._order(0)
    times: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)
    last = [0.0, 0.0]  # wall, cpu at the previous tick

    def cpu_s() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def tick(name: str) -> None:
        t, c = time.perf_counter(), cpu_s()
        times[name].append(t - last[0])
        cpu[name].append(c - last[1])
        last[:] = [t, c]

    for b in range(args.repeat + 1):
        last[:] = [time.perf_counter(), cpu_s()]
        t_start, c_start = last
        batch = loader.make_batch(0, b, order, on_phase=tick)
        t_step, c_step = last
        times["batch total"].append(t_step - t_start)
        cpu["batch total"].append(c_step - c_start)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss, _ = minibatch.batch_loss(trainer.model, batch, self_weight=trainer.self_weight,
                                       kl_weight=trainer.kl_weight, is_vgae=trainer.is_vgae,
                                       autocast=trainer._autocast)
        tick("forward + loss")
        loss.backward()
        tick("backward")
        trainer.optimizer.step()
        tick("optimizer")
        times["step total"].append(last[0] - t_step)
        cpu["step total"].append(last[1] - c_step)
        if b == 0:  # warm-up batch
            for v in list(times.values()) + list(cpu.values()):
                v.clear()
    print(f"nodes {args.nodes}, batch {args.batch_size}, input nodes {batch.n_id.numel()}, "
          f"aggregate_input {loader.aggregate_input}, blocks {batch.blocks}, threads {torch.get_num_threads()}, "
          f"load {os.getloadavg()}")
    print(f"{'phase':20s} {'wall median':>12s} {'wall min':>10s} {'cpu median':>11s}   (ms)")
    for name, v in times.items():
        print(f"{name:20s} {1e3 * statistics.median(v):12.2f} {1e3 * min(v):10.2f} "
              f"{1e3 * statistics.median(cpu[name]):11.2f}")


if __name__ == "__main__":
    main()
