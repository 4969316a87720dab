"""Graph build cost at scale: time and peak memory of generating the built-in graph (CSR
included) and of splitting it, per size.

    python benchmarks/bench_build.py --nodes 1000000 3000000 10000000

Each size runs in a fresh subprocess so the process-wide peak RSS (VmHWM) belongs to it. Peak
"extra" is the phase's peak RSS above the RSS when it started (benchmarks.common).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _one(nodes: int, avg_degree: float, feature_dim: int) -> dict:
    import torch

    from benchmarks.common import _rss_kb, peak_extra_memory
    from scalevgae.data.split import split_edges
    from scalevgae.data.synthetic import planted_partition

    out: dict = {"nodes": nodes, "avg_degree": avg_degree, "feature_dim": feature_dim}
    box: dict = {}
    t = time.perf_counter()
    out["gen_peak_extra_gb"] = peak_extra_memory(
        lambda: box.update(d=planted_partition(nodes, avg_degree, feature_dim=feature_dim)), torch.device("cpu")
    ) / 2**30
    out["gen_s"] = time.perf_counter() - t
    out["directed_edges"] = box["d"].graph.num_edges
    out["resident_gb"] = _rss_kb("VmRSS") / 2**20
    t = time.perf_counter()
    out["split_peak_extra_gb"] = peak_extra_memory(
        lambda: box.update(s=split_edges(box["d"].graph, 0.05, 0.1)), torch.device("cpu")) / 2**30
    out["split_s"] = time.perf_counter() - t
    out["process_peak_rss_gb"] = _rss_kb("VmHWM") / 2**20  # since the split phase's reset
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, nargs="+", default=[1_000_000])
    p.add_argument("--avg-degree", type=float, default=16)
    p.add_argument("--feature-dim", type=int, default=64)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(_one(a.nodes[0], a.avg_degree, a.feature_dim)))
        return
    rows = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")])}
    for n in a.nodes:
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--nodes", str(n), "--avg-degree",
                            str(a.avg_degree), "--feature-dim", str(a.feature_dim)],
                           capture_output=True, text=True, env=env, check=True)
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| nodes | directed edges | generate + CSR s | peak extra GB | split s | peak extra GB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['nodes']:,} | {r['directed_edges']:,} | {r['gen_s']:.1f} | {r['gen_peak_extra_gb']:.2f} | "
              f"{r['split_s']:.1f} | {r['split_peak_extra_gb']:.2f} |")


if __name__ == "__main__":
    main()
