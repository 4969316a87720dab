"""benchmarks/common.py: the peer timing that the benchmark tables' ratios come from."""

import types

import torch

from benchmarks import common


def test_time_interleaved_keeps_the_ratio_through_a_slow_spell(monkeypatch):
    """Peers are called round-robin, so a slow spell of the machine stretches every peer alike.

    Fake clock: job a costs 1, job b costs 3, and calls 3-6 (the first two timed rounds) run 2x
    slow. Round-robin, both medians come from the unstretched rounds and b / a stays 3; timed in
    blocks (a's five repeats, then b's) the spell would fall on a alone (median 2, ratio 1.5).
    """
    now, calls = [0.0], []

    def job(name, cost):
        def run():
            calls.append(name)
            now[0] += cost * (2.0 if 3 <= len(calls) <= 6 else 1.0)

        return run

    monkeypatch.setattr(common, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    out = common.time_interleaved({"a": job("a", 1.0), "b": job("b", 3.0)}, torch.device("cpu"), warmup=1, repeat=5)
    assert calls == ["a", "b"] * 6  # one warm-up call each, then five rounds of one call each
    assert out["a"]["median_s"] == 1.0 and out["b"]["median_s"] == 3.0
    assert out["a"]["min_s"] == 1.0 and out["b"]["repeat"] == 5
    assert out["b"]["median_s"] / out["a"]["median_s"] == 3.0
