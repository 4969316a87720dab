"""Hand freed heap memory back to the OS (internal).

torch's CPU tensors come from glibc's malloc. Blocks under its (dynamic, up to 32 MB) mmap
threshold live in the heap or a per-thread arena, and glibc keeps their pages after ``free``
unless they sit at the top of the heap: after building and splitting a 10^6-node graph, 221 MB
of freed temporaries stayed resident; the loader thread's arena keeps its batches' pages the same
way. ``malloc_trim(0)`` returns every free page of every arena (a few ms); call it after a phase
that freed many mid-sized tensors, before one that allocates big ones. Lowering the threshold
instead (``MALLOC_MMAP_THRESHOLD_``) cut the peak too but made every allocation a fresh
page-faulted mapping (system time 5 -> 34 s in the training benchmark).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any, Optional

_libc: Optional[Any] = None
_looked_up = False


def _malloc_trim() -> Optional[Any]:
    global _libc, _looked_up
    if not _looked_up:
        _looked_up = True
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc = lib.malloc_trim  # glibc only; musl, macOS and Windows have none
            _libc.argtypes, _libc.restype = [ctypes.c_size_t], ctypes.c_int
        except (OSError, AttributeError, TypeError):
            _libc = None
    return _libc


def release_free_memory() -> bool:
    """Return the allocator's free pages to the OS, and the CPU sampler's kept output buffers;
    True if glibc released anything, False where there is no ``malloc_trim``. Changes no tensor."""
    from scalevgae import _ext  # here: _ext imports torch, this module is imported early

    _ext.release_recycled_buffers()
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
