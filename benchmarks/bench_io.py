"""Loader throughput: edge-list parsing (integer / string ids, gzip), memmap row gathers, topk_links.

    python benchmarks/bench_io.py            # 10^7-line edge lists (the issue's target: < 60 s)
    python benchmarks/bench_io.py --quick    # seconds

Writes benchmarks/results/io-<device>.json/.md.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
import time

import numpy as np
import torch

if __package__ in (None, ""):  # run as a file: make `benchmarks` (and this checkout's scalevgae) importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import peak_extra_memory, time_fn, write_results  # noqa: E402
from scalevgae.data.features import gather_rows  # noqa: E402
from scalevgae.data.io import load_edge_list  # noqa: E402
from scalevgae.ops.topk import topk_links  # noqa: E402


def _write_edges(path: str, edges: np.ndarray, prefix: str = "") -> None:
    text = "\n".join(f"{prefix}{a}\t{prefix}{b}" for a, b in edges.tolist()) + "\n"
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wt") as f:
        f.write(text)


def _row(case: str, fn, n_items: int, unit: str, repeat: int) -> dict:
    cpu = torch.device("cpu")
    t = time_fn(fn, cpu, warmup=0, repeat=repeat)
    peak = peak_extra_memory(fn, cpu) if repeat > 0 else None
    return {"case": case, "items": n_items, "seconds": t["median_s"], f"{unit}/s": n_items / t["median_s"],
            "peak_extra_MB": None if peak is None else peak / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    lines = 10**5 if args.quick else 10**7
    nodes = lines // 10
    repeat = 1 if not args.quick else 3
    rng = np.random.default_rng(0)
    edges = rng.integers(0, nodes, (lines, 2))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        p_int, p_gz, p_str = (os.path.join(d, n) for n in ("e.txt", "e.txt.gz", "s.csv"))
        t0 = time.perf_counter()
        _write_edges(p_int, edges)
        _write_edges(p_gz, edges)
        _write_edges(p_str, edges[: lines // 10], prefix="user")
        print(f"wrote inputs in {time.perf_counter() - t0:.1f} s", flush=True)
        rows.append(_row(f"edge list, int ids, {lines:.0e} lines", lambda: load_edge_list(p_int), lines, "lines",
                         repeat))
        rows.append(_row(f"edge list .gz, int ids, {lines:.0e} lines", lambda: load_edge_list(p_gz), lines,
                         "lines", repeat))
        rows.append(_row(f"edge list, string ids, {lines // 10:.0e} lines", lambda: load_edge_list(p_str),
                         lines // 10, "lines", repeat))
        x = np.lib.format.open_memmap(os.path.join(d, "x.npy"), mode="w+", dtype=np.float32, shape=(nodes, 64))
        x[:] = rng.normal(size=(nodes, 64)).astype(np.float32)
        x.flush()
        xm = np.load(os.path.join(d, "x.npy"), mmap_mode="r")
        idx = torch.randint(0, nodes, (min(nodes, 10**5),))
        rows.append(_row(f"gather_rows memmap [{nodes}, 64], {idx.numel()} rows", lambda: gather_rows(xm, idx),
                         idx.numel(), "rows", 3))
        del x
    n_z = 10**4 if args.quick else 10**5
    z = torch.randn(n_z, 16)
    q = torch.arange(min(n_z, 10**4))
    rows.append(_row(f"topk_links k=10, {q.numel()} queries x {n_z} nodes", lambda: topk_links(z, 10, query=q),
                     q.numel() * n_z, "pairs", 1))
    write_results("io" + ("-quick" if args.quick else ""), torch.device("cpu"), rows,
                  ["case", "items", "seconds", "lines/s", "rows/s", "pairs/s", "peak_extra_MB"],
                  {"command": "python benchmarks/bench_io.py" + (" --quick" if args.quick else ""),
                   "lines": lines})


if __name__ == "__main__":
    main()
