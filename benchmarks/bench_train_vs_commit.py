"""End-to-end training throughput of this checkout against an earlier commit, on the same machine,
in one run.

    python benchmarks/bench_train_vs_commit.py --commit 8bd7d12 --nodes 1000000 --steps 200 --runs 3

This machine's speed drifts by 10-20% within minutes and by more between sessions, so a figure
recorded in another session is no baseline. This checks the commit out into a temporary git
worktree, builds its C++ extension there with this venv's Python, then alternates ``bench_train.py
--worker ours`` of the commit and of this checkout (same arguments, same environment, each in its
own process so each has its own peak RSS), ``--runs`` times each. Reported per run: pairs/s
(positive + negative training pairs per second of training) and peak RSS; then the medians and
the ratio of the medians. Writes ``benchmarks/results/train-vs-<commit>-<nodes>-cpu.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from benchmarks.bench_train import _worker_env  # noqa: E402
from benchmarks.common import write_results  # noqa: E402


def _build(tree: str) -> None:
    """The commit's extension, in place (CPU only: no CUDA emulator, no GPU code)."""
    env = {k: v for k, v in os.environ.items() if k != "SCALEVGAE_CUDA_SIM"}
    subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tree, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _run(tree: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, os.path.join(tree, "benchmarks", "bench_train.py"), "--worker", "ours", "--nodes",
           str(args.nodes), "--steps", str(args.steps), "--batch-size", str(args.batch_size)]
    proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, env=_worker_env())
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"bench_train.py in {tree} failed (exit {proc.returncode})")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--commit", required=True, help="the baseline commit (any git revision)")
    p.add_argument("--nodes", type=int, default=1_000_000)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--runs", type=int, default=3, help="runs of each side, alternating")
    args = p.parse_args()
    if min(args.nodes, args.steps, args.batch_size, args.runs) < 1:
        p.error("--nodes, --steps, --batch-size and --runs must be positive")
    rev = subprocess.run(["git", "rev-parse", "--short", args.commit], cwd=REPO, capture_output=True, text=True)
    if rev.returncode != 0:
        p.error(f"--commit {args.commit}: not a revision of {REPO} ({rev.stderr.strip()})")
    short = rev.stdout.strip()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="scalevgae-baseline-") as tmp:
        tree = os.path.join(tmp, short)
        subprocess.run(["git", "worktree", "add", "--detach", "-q", tree, short], cwd=REPO, check=True)
        try:
            print(f"building {short} in {tree} ...", flush=True)
            _build(tree)
            rows = []
            for i in range(args.runs):
                for side, where in ((short, tree), ("this checkout", REPO)):
                    r = _run(where, args)
                    rows.append(dict(run=i + 1, code=side, pairs_per_s=r["pairs_per_s"],
                                     peak_rss_gb=r["peak_rss_gb"], test_auc=r["test_auc"], test_ap=r["test_ap"],
                                     loadavg=os.getloadavg()[0]))
                    print(f"run {i + 1} {side}: {r['pairs_per_s']:.4g} pairs/s, peak RSS {r['peak_rss_gb']:.3f} GiB",
                          flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", tree], cwd=REPO)
    med = {side: statistics.median(r["pairs_per_s"] for r in rows if r["code"] == side)
           for side in (short, "this checkout")}
    ratios = [b["pairs_per_s"] / a["pairs_per_s"] for a, b in zip(rows[::2], rows[1::2])]
    summary = (f"Medians: {short} {med[short]:.4g} pairs/s, this checkout ({head}) {med['this checkout']:.4g} "
               f"pairs/s: {med['this checkout'] / med[short]:.2f}x (per run pair: "
               f"{', '.join(f'{x:.2f}' for x in ratios)}x).")
    cmd = "python benchmarks/bench_train_vs_commit.py " + " ".join(sys.argv[1:])
    meta = dict(command=cmd, commit=short, head=head, nodes=args.nodes, steps=args.steps, batch_size=args.batch_size,
                runs=args.runs, medians=med, ratio_of_medians=med["this checkout"] / med[short], pair_ratios=ratios)
    write_results(f"train-vs-{short}-{args.nodes}", torch.device("cpu"), rows,
                  ["run", "code", "pairs_per_s", "peak_rss_gb", "test_auc", "test_ap", "loadavg"], meta, summary + "\n")
    print(summary)


if __name__ == "__main__":
    main()
