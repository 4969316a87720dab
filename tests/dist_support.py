"""Helpers for the process-group tests."""

from __future__ import annotations

import os


def gloo_threads() -> list[str]:
    """Names of this process's gloo threads (Linux; empty where /proc is missing).

    gloo names its worker threads ``pt_gloo_runloop`` and its socket loop ``gloo_tcp_loop``;
    both must be gone once the process group is destroyed.
    """
    names = []
    if os.path.isdir("/proc/self/task"):
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/comm") as f:
                    names.append(f.read().strip())
            except OSError:  # the thread ended meanwhile
                pass
    return sorted(n for n in names if "gloo" in n)
