"""Shared benchmark helpers: timing, peak memory (process RSS from /proc), copy bandwidth,
result tables and files. Every script in ``benchmarks/`` uses these and nothing else of its kind.

Every benchmark writes ``benchmarks/results/<name>-<device>.json`` and prints a markdown table.
Times are medians over repeats after warm-up; on CUDA the device is synchronized around each call.
Peers compared in one table are timed round-robin (``time_interleaved``), so that a slow spell of
a shared machine falls on all of them alike rather than on one peer's block of repeats.

Run a benchmark as ``python -m benchmarks.bench_x`` from the repository root, or as
``python benchmarks/bench_x.py`` from anywhere (each script then puts the root on ``sys.path``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], Any], device: torch.device, *, warmup: int = 1, repeat: int = 5) -> dict:
    """Median / min wall time of ``fn()`` in seconds."""
    return time_interleaved({"fn": fn}, device, warmup=warmup, repeat=repeat)["fn"]


def time_interleaved(jobs: dict[str, Callable[[], Any]], device: torch.device, *, warmup: int = 1,
                     repeat: int = 5) -> dict[str, dict]:
    """``time_fn`` for peers: {name: median / min wall time}, one call of each job per round.

    Timed one after another in blocks, a peer whose block met a slow spell of this shared VM (its
    speed swings by 15-50 % within minutes) came out up to 1.5x off in one run; round-robin, such
    a spell hits every peer alike and the ratios between them hold.
    """
    for fn in jobs.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in jobs}
    for _ in range(repeat):
        for k, fn in jobs.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: {"median_s": statistics.median(v), "min_s": min(v), "repeat": repeat} for k, v in times.items()}


class Stopwatch:
    """Wall-clock seconds since creation, leaving out the intervals spent in :meth:`paused`
    (e.g. scoring the model during a timed training run)."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter()
        self._paused = 0.0

    @contextmanager
    def paused(self) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - t

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0 - self._paused


# ---- process memory (Linux /proc) ----
def status_kb(field: str) -> int:
    """A ``/proc/self/status`` field in kB (``VmRSS``, ``VmHWM``: peak RSS); 0 where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss() -> bool:
    """Restart the peak-RSS count (``VmHWM``) at the current RSS; False where /proc does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_gb() -> float:
    """The process's peak RSS (since start or the last :func:`reset_peak_rss`) in GiB."""
    return status_kb("VmHWM") / 2**20


def peak_extra_memory(fn: Callable[[], Any], device: torch.device) -> Optional[int]:
    """Peak memory above the starting level while ``fn()`` runs, in bytes.

    CUDA: the caching allocator's peak. CPU: the process's peak RSS (VmHWM, reset through
    /proc/self/clear_refs) minus the RSS before; None where /proc does not allow it.
    """
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    if not reset_peak_rss():
        return None
    base = status_kb("VmRSS")
    fn()
    return max(0, (status_kb("VmHWM") - base) * 1024)


def copy_bandwidth(device: torch.device, nbytes: int = 1 << 28) -> float:
    """Measured device copy bandwidth in bytes/s (bytes read + bytes written per second)."""
    a = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    b = torch.empty_like(a)
    t = time_fn(lambda: b.copy_(a), device, warmup=2, repeat=5)["min_s"]
    return 2 * nbytes / t


def matmul_flops(device: torch.device, n: int = 2048) -> float:
    """Measured float32 matmul rate in flop/s (an n x n x n product): the compute limit that
    flop models are reported against."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    t = time_fn(lambda: a @ b, device, warmup=2, repeat=5)["min_s"]
    return 2 * n**3 / t


def device_tag(device: torch.device) -> str:
    """'cpu' or a slug of the GPU name, e.g. 'nvidia-h100-80gb-hbm3'."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device).lower().replace(" ", "-")
    return "cpu"


def environment(device: torch.device) -> dict:
    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "device": device_tag(device),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
    return env


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    def fmt(v: Any) -> str:
        if v is None:
            return "—"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_files(name: str, blob: dict, markdown: str) -> str:
    """Write ``results/<name>.json`` (``blob``) and ``results/<name>.md``; return the path stem."""
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, name)
    with open(path + ".json", "w") as f:
        json.dump(blob, f, indent=1)
    with open(path + ".md", "w") as f:
        f.write(markdown)
    return path


def write_results(name: str, device: torch.device, rows: list[dict], columns: Sequence[str], meta: dict,
                  extra_md: str = "") -> str:
    """Write ``results/<name>-<device>.json`` and ``.md`` (the table, then ``extra_md``); print and
    return the markdown table."""
    table = markdown_table(rows, columns)
    path = write_files(f"{name}-{device_tag(device)}", {"meta": meta, "environment": environment(device), "rows": rows},
                       f"<!-- regenerate: {meta.get('command', '')} -->\n{table}\n{extra_md}")
    print(table)
    print(f"\nwrote {path}.json and {path}.md")
    return table
