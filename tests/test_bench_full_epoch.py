"""benchmarks/bench_full_epoch.py times real full-mode epochs of the exact objective."""

from benchmarks import bench_full_epoch


def test_times_one_exact_epoch_per_step():
    times = bench_full_epoch.epoch_times(400, warmup=1, repeat=2, seed=0)
    assert len(times) == 2 and all(0 < t < 60 for t in times)
