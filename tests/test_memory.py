import ctypes.util

import pytest
import torch

from scalevgae import _ext
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


@pytest.mark.skipif(not _ext.loaded(), reason="compiled extension not built")
def test_release_unmaps_the_samplers_kept_buffers():
    """sample_aggregate's CPU outputs come from recycled buffers (csrc/cpu/recycled_buffer.h); the
    freed ones it keeps (up to 4 of ~30 MB in training) are resident until release_free_memory."""
    from scalevgae import Graph
    from scalevgae.ops.sample import sample_aggregate

    n, f = 30_000, 256  # 30 MB of float32 output per call
    g = Graph.from_edge_index(torch.randint(0, n, (2, 4 * n), generator=torch.Generator().manual_seed(0)),
                              num_nodes=n)
    x, nodes = torch.randn(n, f), torch.arange(n)
    def run(seed: int) -> torch.Tensor:
        return sample_aggregate(g.rowptr, g.col, nodes, x, g.gcn_norm(torch.float32), 3, False, seed, 1, backend="cpu")

    outs = [run(s) for s in range(4)]
    want = outs[0].clone()
    del outs  # four buffers kept, their pages resident
    before = rss_mb()
    release_free_memory()
    assert before - rss_mb() > 60  # most of the 120 MB went back to the OS
    assert torch.equal(run(0), want)  # a fresh mapping works as before
