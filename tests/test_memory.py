import ctypes.util

import pytest
import torch

from scalevgae._memory import release_free_memory


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def is_glibc() -> bool:
    try:
        return bool(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").gnu_get_libc_version)
    except (OSError, AttributeError):
        return False


@pytest.mark.skipif(not is_glibc(), reason="malloc_trim is glibc's")
def test_release_returns_freed_heap_pages():
    # 1024 tensors of 64 KB (below glibc's mmap threshold: heap pages); every 64th stays alive,
    # so the 63 MB freed between them are holes inside the heap that free() keeps resident.
    chunks = [torch.full((16384,), float(i)) for i in range(1024)]
    keep = chunks[63::64]
    del chunks
    before = rss_mb()
    assert release_free_memory()
    assert before - rss_mb() > 32  # most of the 63 MB went back to the OS
    assert all(torch.equal(t, torch.full((16384,), float(64 * k + 63))) for k, t in enumerate(keep))  # untouched
