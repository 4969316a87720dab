"""benchmarks/time_to_quality.py's analysis of recorded curves: the stopping-rule replay and the
oracle bound (the most any stopping rule can get within end/t_q <= 1.5)."""

import itertools
import json
import os
import random
import subprocess
import sys

import pytest

from benchmarks import time_to_quality as ttq

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _curve(aucs, aps, test_aps, every=10):
    return [dict(step=every * (i + 1), seconds=0.1 * (i + 1), cpu_seconds=0.2 * (i + 1), epoch=0, val_auc=a,
                 val_ap=p, test_auc=a, test_ap=t) for i, (a, p, t) in enumerate(zip(aucs, aps, test_aps))]


def test_oracle_on_a_hand_worked_curve():
    # AUC within 0.005 of 0.90 from step 20; the best test AP is at step 50 (bound 50 / 20 = 2.5);
    # among steps with bound <= 1.5 (step 30: 30 / 20) the best test AP is step 30's.
    c = _curve([0.880, 0.897, 0.900, 0.899, 0.898], [0.90] * 5, [0.910, 0.915, 0.918, 0.917, 0.925])
    o = ttq.oracle(c)
    assert (o["best_step"], o["best_test_ap"]) == (50, 0.925)
    assert o["best_bound"] == pytest.approx(50 / 20)
    assert (o["feasible_step"], o["feasible_test_ap"]) == (30, 0.918)
    assert o["feasible_bound"] == pytest.approx(1.5)
    # A tighter bound leaves steps 10 and 20 (each its own t_q): the better test AP is step 20's.
    assert ttq.oracle(c, bound=1.2)["feasible_step"] == 20


def test_no_replayed_rule_beats_the_oracle():
    rng = random.Random(0)
    for _ in range(30):
        n = rng.randint(3, 25)
        c = _curve([0.85 + 0.05 * rng.random() for _ in range(n)], [0.9 + 0.05 * rng.random() for _ in range(n)],
                   [0.9 + 0.05 * rng.random() for _ in range(n)])
        o = ttq.oracle(c)
        for pat, dl, mon in itertools.product([1, 2, 3, 5, 0], [0.0, 0.003], ["auc", "ap", "auc+ap"]):
            r = ttq.replay(c, pat, dl, mon)
            assert r["test_ap"] <= o["best_test_ap"]
            if r["end_over_t_q_steps"] <= 1.5:  # a rule inside the bound gets at most the feasible AP
                assert r["test_ap"] <= o["feasible_test_ap"]


def test_oracle_cli_reads_results_files(tmp_path):
    path = tmp_path / "time-to-quality-x.json"
    # Best test AP at step 40 (bound 40 / 10); only step 10 is within 1.5x its t_q.
    c = _curve([0.895, 0.897, 0.900, 0.899], [0.9] * 4, [0.91, 0.92, 0.915, 0.93])
    path.write_text(json.dumps(dict(meta={}, runs=[dict(system="scalevgae minibatch", seed=0, curve=c)])))
    r = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "time_to_quality.py"), "--oracle", str(path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    row = r.stdout.strip().splitlines()[-1].split("|")
    assert row[1].strip() == "time-to-quality-x.json" and row[5].strip() == "40" and row[9].strip() == "10"
