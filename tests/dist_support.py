"""Helpers for the process-group tests."""

from __future__ import annotations

import os
import time


def _gloo_thread_names() -> list[str]:
    names = []
    if os.path.isdir("/proc/self/task"):
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/comm") as f:
                    names.append(f.read().strip())
            except OSError:  # the thread ended meanwhile
                pass
    return sorted(n for n in names if "gloo" in n)


def gloo_threads(settle: float = 2.0) -> list[str]:
    """Names of this process's gloo threads still alive after up to ``settle`` seconds (Linux;
    empty where /proc is missing).

    gloo names its worker threads ``pt_gloo_runloop`` and its socket loop ``gloo_tcp_loop``;
    both must be gone once the process group is destroyed. gloo joins them there, but a joined
    thread can still be listed under /proc/self/task for a moment: pthread_join returns when the
    kernel clears the thread's tid, which comes before the thread leaves the list (seen in 1 of
    ~10 teardowns, gone within 2 ms). A thread the group still holds never leaves (gloo's loop
    polls every 10 ms until its device is destroyed), so waiting does not hide a leak.
    """
    deadline = time.monotonic() + settle
    names = _gloo_thread_names()
    while names and time.monotonic() < deadline:
        time.sleep(0.005)
        names = _gloo_thread_names()
    return names
