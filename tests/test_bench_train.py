"""benchmarks/bench_train.py's worker at toy size: it trains, scores and reports; ``--x-dtype``
stores the features narrower for our system; ``--fanouts`` reaches the trainer."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("dtype,fanouts", [("float32", "10,5"), ("bfloat16", "10,5"), ("float32", "10,-1")])
def test_worker_reports_a_trained_run(dtype, fanouts):
    cmd = [sys.executable, os.path.join(REPO, "benchmarks", "bench_train.py"), "--worker", "ours", "--nodes", "2000",
           "--steps", "3", "--batch-size", "64", "--x-dtype", dtype, "--fanouts", fanouts]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")][-1][len("RESULT "):])
    assert out["fanouts"] == [int(f) for f in fanouts.split(",")]
    assert out["input_table"] is fanouts.endswith("-1")  # the exact input hop is precomputed
    assert out["x_dtype"] == dtype and out["steps"] == 3 and out["num_nodes"] == 2000
    assert out["pairs_per_s"] > 0 and 0.0 <= out["test_auc"] <= 1.0 and 0.0 <= out["test_ap"] <= 1.0


def test_fanouts_option_rejects_bad_values():
    r = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "bench_train.py"), "--fanouts", "10,x"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--fanouts" in r.stderr and "Traceback" not in r.stderr
