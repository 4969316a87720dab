"""Per-thread intra-op (OpenMP) thread counts (internal).

``torch.set_num_threads`` is process-wide; these set only the CALLING thread's team size, so a
loader thread can run its many small ops on one core while the training thread keeps all of them,
and still spread one long op (the input layer's fused sample-and-aggregate) over every core.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import threading
from typing import Any, Callable, Iterator, Optional

import torch

_initialised = threading.local()


def _lazy_init_here() -> None:
    """Run, in the calling thread, the lazy thread-count initialisation of libtorch and of our
    extension, so neither undoes a count set afterwards. ATen's ``lazy_init_num_threads`` is an
    inline function with a thread_local flag, so our ``_C`` has its own copy: its first
    ``parallel_for`` in a thread resets the thread to ``torch.set_num_threads``'s value (when that
    was ever called), which silently gave a 1-thread loader thread 2 threads again."""
    if getattr(_initialised, "done", False):
        return
    torch.get_num_threads()  # libtorch's copy
    from scalevgae import _ext

    _ext.init_num_threads_here()  # ours (_C_cuda_sim runs no parallel_for: it has none)
    _initialised.done = True


@functools.cache
def _omp_set_num_threads() -> Optional[Callable[[Any], Any]]:
    """libgomp's ``omp_set_num_threads`` as torch loaded it, looked up once (it is called twice per
    loader batch); None under another OpenMP runtime."""
    try:
        return ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libgomp.so.1")).omp_set_num_threads
    except (OSError, AttributeError):
        return None


def set_intra_op_threads(n: int) -> None:
    """Give the calling thread ``n`` OpenMP threads for torch's (and our kernels') intra-op work,
    leaving every other thread alone. A loader thread that spreads each small op over all cores
    stalls in OpenMP barriers whenever the training thread holds them."""
    _lazy_init_here()
    set_threads = _omp_set_num_threads()
    if set_threads is not None:  # another OpenMP runtime: leave the default
        set_threads(ctypes.c_int(n))


@contextlib.contextmanager
def intra_op_threads(n: Optional[int]) -> Iterator[None]:
    """The calling thread runs its intra-op work on ``n`` threads inside the block (None: as it
    is), then returns to its previous count."""
    prev = torch.get_num_threads()
    if n is None or n == prev:
        yield
        return
    set_intra_op_threads(n)
    try:
        yield
    finally:
        set_intra_op_threads(prev)
