"""Small tensor helpers shared by the ops, the graph and the samplers (internal).

Kept apart from ``scalevgae.ops.reference`` (the ground truth the kernels are tested against) so
production code never depends on the reference module, and at the package top so that
``scalevgae.csr`` can use it without importing ``scalevgae.ops``.
"""

from __future__ import annotations

import functools
import sys
import warnings
from typing import Any, Callable, Optional

import torch
from torch import Tensor


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype: float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def csr_rows(rowptr: Tensor, nnz: Optional[int] = None, dtype: torch.dtype = torch.int64) -> Tensor:
    """Row index of every stored entry of a CSR: ``[nnz]`` of ``dtype``.

    ``nnz`` (= ``rowptr[-1]``), if the caller knows it, saves a device sync on CUDA.
    """
    n_rows = rowptr.numel() - 1
    rows = torch.arange(n_rows, device=rowptr.device, dtype=dtype)
    return torch.repeat_interleave(rows, rowptr.diff().long(), output_size=nnz)


def eager_under_compile(fn: Callable) -> Callable:
    """``torch.compiler.disable(fn)`` without importing ``torch._dynamo`` when the module loads.

    That import costs ~1.9 s and ~145 MB of RSS (triton with it) in every process, also in those
    that never compile. Until something has imported dynamo nothing can be compiling, so ``fn``
    runs as is; after that, calls go through the disabled version (made once)."""

    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        if "torch._dynamo" not in sys.modules:
            return fn(*args, **kwargs)
        disabled = fn.__dict__.get("_eager_under_compile")
        if disabled is None:
            disabled = fn._eager_under_compile = torch.compiler.disable(fn)
        return disabled(*args, **kwargs)

    return inner


def load_tensors_file(path: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` (no code runs) without torch's warnings: on a
    damaged file they come before the error (e.g. "Detected pickle protocol 176 ... weights_only
    Unpickler"), and callers turn the error into one line of their own."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location=map_location, weights_only=True)
