"""Benchmark: fused edge BCE loss and the tiled all-pairs loss against their unfused peers.

Part 1 (forward + backward of the mean BCE over E sampled pairs, n nodes, F features):
  ours         scalevgae.ops.edge_bce_loss (best backend for the device)
  pyg          PyG's InnerProductDecoder written out: (z[src] * z[dst]).sum(-1) + BCEWithLogits
  pyg_compile  the same under torch.compile (dynamic shapes, compiled once)
Part 2 (forward + backward of the full-graph reconstruction loss over all N^2 pairs):
  ours         scalevgae.ops.all_pairs_bce_loss (default backend: the all_pairs_softplus op on CPU)
  torch_tiles  the same loss with backend="reference": torch matmul tiles of `tile` x `tile` pairs
  dense        z @ z.T and BCEWithLogits against the dense (A + I) label matrix (tkipf/gae)

Reports median time, the ratio to each peer, bytes-model bandwidth (indices + gathered rows +
dz) and peak extra memory; writes benchmarks/results/decoder-<device>.{json,md}.

    python benchmarks/bench_decoder.py            # full: E in {1e5,1e6,1e7}, F in {16,64,128}, n=1e6
    python benchmarks/bench_decoder.py --quick    # seconds
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as Fn

if __package__ in (None, ""):  # run as a file: make `benchmarks` (and this checkout's scalevgae) importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import (  # noqa: E402
    copy_bandwidth,
    markdown_table,
    matmul_flops,
    peak_extra_memory,
    time_interleaved,
    write_results,
)
from scalevgae.data.synthetic import planted_partition  # noqa: E402
from scalevgae.nn.decoder import available_memory_bytes  # noqa: E402
from scalevgae.ops import all_pairs, edge_bce_loss  # noqa: E402


def pyg_loss(z, src, dst, label):
    """PyG's InnerProductDecoder(sigmoid=False) + BCEWithLogits: three E x F tensors."""
    return Fn.binary_cross_entropy_with_logits((z[src] * z[dst]).sum(dim=-1), label)


def _fwd_bwd(loss_fn: Callable[[], torch.Tensor], z: torch.Tensor) -> Callable[[], None]:
    def run():
        z.grad = None
        loss_fn().backward()

    return run


def bench_edges(device, sizes, features, n, repeat, budget) -> list[dict]:
    """Forward + backward of the mean BCE over E random pairs, ours against the PyG-style paths.
    Bytes model (``ours_GBps``, and as a percentage of the measured copy bandwidth): the traffic
    the computation needs at the least, each row gathered once per use and dz written once."""
    rows = []
    copy_bw = copy_bandwidth(device)
    print(f"copy bandwidth {copy_bw / 1e9:.1f} GB/s", flush=True)
    compiled = torch.compile(pyg_loss, dynamic=True)
    for F in features:
        gen = torch.Generator().manual_seed(F)
        z = (torch.randn(n, F, generator=gen) / F**0.5).to(device).requires_grad_()
        for E in sizes:
            src = torch.randint(0, n, (E,), generator=gen).to(device)
            dst = torch.randint(0, n, (E,), generator=gen).to(device)
            label = (torch.rand(E, generator=gen) < 0.5).float().to(device)
            es, idx = z.element_size(), src.element_size()
            # fwd reads 2E indices + 2E rows + labels; bwd re-reads them and writes dz.
            nbytes = 2 * (2 * E * idx + 2 * E * F * es) + E * 4 + n * F * es
            row = {"E": E, "F": F, "n": n}
            peers = {
                "ours": partial(edge_bce_loss, z, src, dst, label),
                "pyg": partial(pyg_loss, z, src, dst, label),
                "pyg_compile": partial(compiled, z, src, dst, label),
            }
            rep = repeat if E * F < 10**8 else min(repeat, 3)  # bound the CPU run time of big peers
            jobs = {}
            for name, loss_fn in peers.items():
                if name != "ours" and 4 * E * F * es > budget:  # the peers hold ~3-4 E x F tensors
                    row[f"{name}_s"] = None
                    continue
                jobs[name] = _fwd_bwd(loss_fn, z)
            times = time_interleaved(jobs, device, warmup=1, repeat=rep)
            for name, fn in jobs.items():
                t = row[f"{name}_s"] = times[name]["median_s"]
                mem = peak_extra_memory(fn, device)
                row[f"{name}_mem_MB"] = None if mem is None else mem / 2**20
                if name == "ours":
                    row["ours_GBps"] = nbytes / t / 1e9
                    row["ours_pct_copy"] = 100 * nbytes / t / copy_bw
            for peer in ("pyg", "pyg_compile"):
                if row.get(f"{peer}_s"):
                    row[f"x_vs_{peer}"] = row[f"{peer}_s"] / row["ours_s"]
            rows.append(row)
            print(row, flush=True)
    return rows


def dense_all_pairs(z, y, pos_weight):
    """tkipf/gae's reconstruction term (without its norm factor), dense N x N."""
    return Fn.binary_cross_entropy_with_logits(z @ z.T, y, pos_weight=pos_weight)


def bench_all_pairs(device, nodes, F, tile, repeat, budget) -> list[dict]:
    """Forward + backward of the exact objective. Flop model (effective): per ordered pair 2F for
    the dot product and 2F for its gradient row, reported against the measured float32 matmul
    rate. The CPU kernel scores each unordered pair once (3F per ordered pair) and computes the
    loss and gradient in one pass; the torch tiles recompute the products in the backward."""
    rows = []
    peak = matmul_flops(device)
    print(f"matmul rate {peak / 1e9:.1f} GFLOP/s", flush=True)
    for N in nodes:
        g = planted_partition(N, avg_degree=4, feature_dim=0, seed=0).graph
        rowptr, col = g.rowptr.to(device), g.col.to(device)
        gen = torch.Generator().manual_seed(N)
        z = (torch.randn(N, F, generator=gen) * 0.3).to(device).requires_grad_()
        row = {"N": N, "F": F, "tile": tile, "pairs": N * N}
        ours = partial(all_pairs.all_pairs_bce_loss, z, rowptr, col, tile=tile)
        row["engine"] = all_pairs._tile_engine(z, None)
        jobs = {"ours": _fwd_bwd(ours, z)}
        if row["engine"] != "torch":  # the torch matmul tiles (the reference backend) as a peer
            torch_tiles = partial(all_pairs.all_pairs_bce_loss, z, rowptr, col, tile=tile, backend="reference")
            jobs["torch_tiles"] = _fwd_bwd(torch_tiles, z)
        dense = None
        if 5 * N * N * 4 <= budget:  # logits, label, loss terms, their grads
            y = torch.zeros(N, N, device=device)
            y[torch.repeat_interleave(torch.arange(N, device=device), rowptr.diff()), col] = 1
            y.fill_diagonal_(1)
            p = float(y.sum())
            pw = torch.tensor((N * N - p) / p, device=device)
            dense = partial(dense_all_pairs, z, y, pw)
            jobs["dense"] = _fwd_bwd(dense, z)
        times = time_interleaved(jobs, device, warmup=1, repeat=repeat)
        for name, fn in jobs.items():
            row[f"{name}_s"] = times[name]["median_s"]
            mem = peak_extra_memory(fn, device)
            row[f"{name}_mem_MB"] = None if mem is None else mem / 2**20
            if name != "ours":
                row[f"x_vs_{name}"] = row[f"{name}_s"] / row["ours_s"]
        t = row["ours_s"]
        row["ours_Gpairs_per_s"] = N * N / t / 1e9
        row["flop_pct_matmul"] = 100 * 4 * F * N * N / t / peak
        if dense is not None:
            with torch.no_grad():
                a = all_pairs.all_pairs_bce_loss(z, rowptr, col, tile=tile)
                b = dense()
            row["rel_diff"] = abs(float(a) - float(b)) / abs(float(b))
        else:
            row["dense_s"] = None  # N x N does not fit
        rows.append(row)
        print(row, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--skip-all-pairs", action="store_true")
    ap.add_argument("--skip-edges", action="store_true")
    ap.add_argument("--edges", type=int, nargs="+", help="E values of part 1 (default: by --quick)")
    ap.add_argument("--features", type=int, nargs="+", help="F values of part 1")
    ap.add_argument("--all-pairs-nodes", type=int, nargs="+", help="N values of part 2")
    ap.add_argument("--name", default=None,
                    help="results file stem (default decoder, or decoder-quick with --quick); a focused run should "
                         "not overwrite the full table")
    args = ap.parse_args()
    device = torch.device(args.device)
    budget = int(0.6 * available_memory_bytes(device))
    if args.quick:
        sizes, features, n, repeat = [10_000, 100_000], [16, 64], 100_000, 3
        nodes, ap_repeat = [500, 2708], 2
    else:
        sizes, features, n, repeat = [100_000, 1_000_000, 10_000_000], [16, 64, 128], 1_000_000, 5
        nodes, ap_repeat = [2708, 20_000, 100_000], 2
    sizes, features = args.edges or sizes, args.features or features
    nodes = args.all_pairs_nodes or nodes
    rows, columns = [], []
    if not args.skip_edges:
        rows += bench_edges(device, sizes, features, n, repeat, budget)
        columns = ["E", "F", "n", "ours_s", "pyg_s", "pyg_compile_s", "x_vs_pyg", "x_vs_pyg_compile", "ours_GBps",
                   "ours_pct_copy", "ours_mem_MB", "pyg_mem_MB", "pyg_compile_mem_MB"]  # fmt: skip
    ap_rows = []
    if not args.skip_all_pairs:
        ap_rows = bench_all_pairs(device, nodes, 16, 2048, ap_repeat, budget)
    cmd = "python " + " ".join(["benchmarks/bench_decoder.py"] + sys.argv[1:])
    meta = {"command": cmd, "quick": args.quick, "all_pairs": ap_rows}
    extra = ""
    if ap_rows:
        ap_cols = ["N", "F", "engine", "tile", "ours_s", "torch_tiles_s", "x_vs_torch_tiles", "dense_s", "x_vs_dense", "ours_mem_MB", "dense_mem_MB",
                   "ours_Gpairs_per_s", "flop_pct_matmul", "rel_diff"]  # fmt: skip
        extra = "\n\nall_pairs_bce_loss vs dense (forward + backward):\n\n" + markdown_table(ap_rows, ap_cols) + "\n"
    name = args.name or ("decoder-quick" if args.quick else "decoder")
    write_results(name, device, rows, columns, meta, extra_md=extra)
    if extra:
        print(extra)


if __name__ == "__main__":
    main()
