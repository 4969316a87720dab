"""Per-phase time of one minibatch training step (the bench_train.py settings), serially.

Runs the loader's batch preparation phase by phase in the calling thread (no prefetch), then
the training step phase by phase, and prints median wall times and median process CPU times
(user + system over all threads: the work a phase costs on a shared machine, less sensitive to
other jobs than wall time) over ``--repeat`` batches:

    python benchmarks/profile_train_step.py --nodes 1000000 --repeat 10

The phases mirror ``LinkLoader.make_batch`` and ``Trainer._step``; a change to either should
be mirrored here.
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=1_000_000)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--no-aggregate", action="store_true", help="gather x[n_id] instead of aggregating in the loader")
    args = p.parse_args()

    from scalevgae.data.loader import _gather_rows

    from scalevgae.data.split import split_edges
    from scalevgae.data.synthetic import planted_partition
    from scalevgae.sampling.negative import negative_pairs
    from scalevgae.sampling.neighbor import sample_neighbors
    from scalevgae.train import TrainConfig, Trainer, minibatch

    data = planted_partition(args.nodes, avg_degree=16, feature_dim=64, seed=0)
    split = split_edges(data.graph, 0.05, 0.10, seed=0)
    cfg = TrainConfig(mode="minibatch", hidden=32, latent=16, epochs=1, steps=10**9, lr=args.lr, neg_ratio=1,
                      batch_size=args.batch_size, fanouts=(10, 5), patience=None, seed=0, device="cpu",
                      amp="off", progress=False)
    trainer = Trainer(cfg, data.x, split)
    loader = trainer.loader
    aggregate = getattr(loader, "aggregate_input", False) and not args.no_aggregate
    if aggregate:
        from scalevgae.sampling.aggregated import sample_aggregated
    order = loader._order(0)
    times: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)
    last_cpu = [0.0]

    def cpu_s() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def tick(name: str, t0: float) -> float:
        t, c = time.perf_counter(), cpu_s()
        times[name].append(t - t0)
        cpu[name].append(c - last_cpu[0])
        last_cpu[0] = c
        return t

    for b in range(args.repeat + 1):
        t = t_start = time.perf_counter()
        last_cpu[0] = c_start = cpu_s()
        idx = loader._batch_index(order, b)
        pos = loader.pos_pairs[:, idx]
        gen = loader._batch_generator(0, b)
        neg = negative_pairs(loader.graph, pos.size(1), generator=gen)
        t = tick("negatives", t)
        pairs = torch.cat([pos, neg], 1)
        seeds, inv = torch.unique(pairs.reshape(-1), return_inverse=True)
        t = tick("unique seeds", t)
        if aggregate:  # sampling with the input layer's aggregation (no gather)
            sub, x = sample_aggregated(loader.graph, seeds, loader.fanouts, loader.x, generator=gen)
            t = tick("sample + aggregate", t)
        else:
            sub = sample_neighbors(loader.graph, seeds, loader.fanouts, generator=gen)
            t = tick("sample + blocks", t)
            x = _gather_rows(loader.x, sub.n_id)
            t = tick("gather x", t)
        blocks = sub.blocks
        m = pairs.size(1)
        label = torch.zeros(m)
        label[: pos.size(1)] = 1
        batch = type("B", (), dict(blocks=blocks, x=x, src=inv[:m], dst=inv[m:], label=label))
        t_step, c_step = time.perf_counter(), cpu_s()
        cpu["batch total"].append(c_step - c_start)
        t = t_step
        trainer.optimizer.zero_grad(set_to_none=True)
        loss, _ = minibatch.batch_loss(trainer.model, batch, self_weight=trainer.self_weight,
                                       kl_weight=trainer.kl_weight, is_vgae=trainer.is_vgae,
                                       autocast=trainer._autocast)
        t = tick("forward + loss", t)
        loss.backward()
        t = tick("backward", t)
        trainer.optimizer.step()
        t = tick("optimizer", t)
        times["step total"].append(t - t_step)
        cpu["step total"].append(cpu_s() - c_step)
        times["batch total"].append(t_step - t_start)
        if b == 0:  # warm-up batch
            for v in list(times.values()) + list(cpu.values()):
                v.clear()
    print(f"nodes {args.nodes}, batch {args.batch_size}, sampled nodes {sub.n_id.numel()}, "
          f"blocks {sub.blocks}, threads {torch.get_num_threads()}, "
          f"load {os.getloadavg()}")
    print(f"{'phase':20s} {'wall median':>12s} {'wall min':>10s} {'cpu median':>11s}   (ms)")
    for name, v in times.items():
        print(f"{name:20s} {1e3 * statistics.median(v):12.2f} {1e3 * min(v):10.2f} "
              f"{1e3 * statistics.median(cpu[name]):11.2f}")


if __name__ == "__main__":
    main()
