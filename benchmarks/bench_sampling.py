"""Benchmark of neighbor sampling and the link minibatch loader against torch_sparse and PyG.

Samplers, timed on the same seeds (the distinct endpoints of `batch` training pairs plus as
many uniform negatives) of the same built-in graph:
  ours-cpu / ours-cuda   scalevgae.sampling.sample_neighbors (per-layer blocks: hop h samples
                         EVERY node reached so far, so it returns more edges than the peers)
  torch_sparse           torch.ops.torch_sparse.neighbor_sample (each node sampled once)
Loaders (one whole minibatch: negatives, sampling, feature gather):
  ours-loader            scalevgae.loader.LinkLoader (num_workers=0: the cost of a batch)
  pyg-loader             torch_geometric.loader.LinkNeighborLoader (neg_sampling_ratio=1)
Reported: median time per batch, sampled edges per second, and ours' speed-up over the peer
in edges/s and in batches/s.

    python benchmarks/bench_sampling.py --quick     # 10^5 nodes, one config, seconds
    python benchmarks/bench_sampling.py             # 10^6 nodes, fanouts [10,5]/[15,10], batch 1024/4096
    python benchmarks/bench_sampling.py --device cuda
    python benchmarks/bench_sampling.py --reorder rcm degree   # also on the renumbered graph, same run

With ``--reorder``, every configuration is also run on the graph renumbered by each method
(``Graph.reorder``; the same positive pairs relabelled, negatives drawn with the same seed, so seed
counts differ slightly; features permuted), rows ``graph`` = name+method,
``x_given`` = ms per batch as given / renumbered (> 1: renumbering is faster).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import torch

if __package__ in (None, ""):  # run as a file: make `benchmarks` (and this checkout's scalevgae) importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import time_interleaved, write_results  # noqa: E402
from scalevgae import reorder  # noqa: E402
from scalevgae.data import planted_partition  # noqa: E402
from scalevgae.loader import LinkLoader  # noqa: E402
from scalevgae.ops import available_backends  # noqa: E402
from scalevgae.sampling import negative_pairs, sample_neighbors  # noqa: E402

warnings.filterwarnings("ignore")


def batch_seeds(graph, pos: torch.Tensor, batch: int, gen: torch.Generator) -> torch.Tensor:
    idx = torch.randint(0, pos.size(1), (batch,), generator=gen)
    neg = negative_pairs(graph, batch, generator=gen)
    return torch.unique(torch.cat([pos[:, idx], neg], 1).reshape(-1))


def pyg_loader(graph, x, pos, fanouts, batch):
    from torch_geometric.data import Data
    from torch_geometric.loader import LinkNeighborLoader

    data = Data(x=x, edge_index=graph.edge_index, num_nodes=graph.num_nodes)
    return LinkNeighborLoader(data, num_neighbors=fanouts, edge_label_index=pos, batch_size=batch,
                              neg_sampling_ratio=1.0, shuffle=True)


def run_config(graph, x, pos, fanouts, batch, g_dev, device, repeat, gen, name) -> list[dict]:
    seeds = batch_seeds(graph, pos, batch, gen)
    base = dict(graph=name, fanouts=str(fanouts), batch=batch, seeds=seeds.numel())
    jobs: dict = {}  # impl -> (one batch, its edge count, the peer it is compared with)

    def add(impl, fn, count, peer=None):
        jobs[impl] = (fn, count, peer)

    if available_backends()["cpu"].usable:
        add("ours-cpu", lambda: sample_neighbors(graph, seeds, fanouts, generator=gen, backend="cpu"),
            lambda: sample_neighbors(graph, seeds, fanouts, generator=gen, backend="cpu").num_edges,
            peer="torch_sparse")
    if g_dev is not None:
        s_dev = seeds.to(device)
        cgen = torch.Generator(device=device).manual_seed(0)
        add("ours-cuda", lambda: sample_neighbors(g_dev, s_dev, fanouts, generator=cgen, backend="cuda"),
            lambda: sample_neighbors(g_dev, s_dev, fanouts, generator=cgen, backend="cuda").num_edges,
            peer="torch_sparse")
    try:
        import torch_sparse  # noqa: F401

        rp64, col64 = graph.rowptr.long(), graph.col.long()  # torch_sparse takes int64 only
        ns = lambda: torch.ops.torch_sparse.neighbor_sample(rp64, col64, seeds, fanouts, False, True)
        add("torch_sparse", ns, lambda: ns()[1].numel())
    except ImportError:
        pass

    ours = LinkLoader(graph, x, pos, batch_size=batch, fanouts=fanouts, neg_ratio=1, num_workers=0,
                      generator=torch.Generator().manual_seed(0))
    order = ours._order(0)
    add("ours-loader", lambda: ours.make_batch(0, 0, order),
        lambda: sum(b.num_edges for b in ours.make_batch(0, 0, order).blocks), peer="pyg-loader")
    try:
        it = iter(pyg_loader(graph, x, pos, fanouts, batch))
        add("pyg-loader", lambda: next(it), lambda: int(next(it).edge_index.size(1)))
    except ImportError:
        pass
    # Round-robin; synchronizing the GPU (when one runs) around the CPU peers too costs nothing.
    sync_dev = torch.device(device) if g_dev is not None else torch.device("cpu")
    times = time_interleaved({k: v[0] for k, v in jobs.items()}, sync_dev, warmup=1, repeat=repeat)
    rows = []
    for impl, (_, count, peer) in jobs.items():
        t, edges = times[impl]["median_s"], count()
        rows.append(dict(base, impl=impl, ms_per_batch=1e3 * t, edges=edges, medges_per_s=edges / t / 1e6,
                         peer=peer))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--reorder", nargs="*", default=[], choices=["degree", "rcm"],
                    help="also run every configuration on the graph renumbered by these methods")
    args = ap.parse_args()
    device = torch.device(args.device)
    n = 100_000 if args.quick else 1_000_000
    configs = [([10, 5], 1024)] if args.quick else [(f, b) for f in ([10, 5], [15, 10]) for b in (1024, 4096)]
    repeat = args.repeat or (2 if args.quick else 5)
    data = planted_partition(n, 16, feature_dim=64, seed=0)
    graph, x = data.graph, data.x
    ei = graph.edge_index
    pos = ei[:, ei[0] < ei[1]]
    have_cuda = available_backends()["cuda"].usable and device.type == "cuda"
    variants = [(data.name, graph, x, pos)]
    order_s = {}
    for method in args.reorder:
        t0 = time.perf_counter()
        perm = reorder.node_order(graph, method)
        t1 = time.perf_counter()
        inv = reorder.inverse(perm)
        variants.append((f"{data.name}+{method}", reorder.permute_graph(graph, perm), reorder.permute_rows(x, perm),
                         reorder.relabel(pos, inv)))
        order_s[method] = {"order_s": t1 - t0, "permute_s": time.perf_counter() - t1}
        print(f"{method}: order {order_s[method]['order_s']:.2f} s, permuting graph + features "
              f"{order_s[method]['permute_s']:.2f} s", flush=True)
    rows = []
    for name, g, xx, pp in variants:
        g_dev = g.to(device) if have_cuda else None
        gen = torch.Generator().manual_seed(0)  # the same draws (pair indices, negatives) for every variant
        for fanouts, batch in configs:
            rows += run_config(g, xx, pp, fanouts, batch, g_dev, device, repeat, gen, name)

    by_key = {(r["graph"], r["fanouts"], r["batch"], r["impl"]): r for r in rows}
    for r in rows:
        p = by_key.get((r["graph"], r["fanouts"], r["batch"], r.get("peer")))
        if p is not None:
            r["speedup_edges"] = r["medges_per_s"] / p["medges_per_s"]
            r["speedup_batches"] = p["ms_per_batch"] / r["ms_per_batch"]
        g = by_key.get((data.name, r["fanouts"], r["batch"], r["impl"]))
        if r["graph"] != data.name and g is not None:
            r["x_given"] = g["ms_per_batch"] / r["ms_per_batch"]
    cmd = "python benchmarks/bench_sampling.py" + (" --quick" if args.quick else "") + (
        f" --device {args.device}" if args.device != "cpu" else "") + (
        f" --reorder {' '.join(args.reorder)}" if args.reorder else "")
    meta = dict(command=cmd, num_nodes=n, num_edges=graph.num_edges, repeat=repeat,
                note="ours samples every destination of every layer (per-layer blocks); peers sample each node once",
                reorder_seconds=order_s)
    cols = ["graph", "fanouts", "batch", "seeds", "impl", "ms_per_batch", "edges", "medges_per_s", "peer",
            "speedup_edges", "speedup_batches", "x_given"]
    write_results("sampling-quick" if args.quick else "sampling", device, rows, cols, meta)


if __name__ == "__main__":
    main()
