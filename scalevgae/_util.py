"""Small tensor helpers shared by the ops, the graph and the samplers (internal).

Kept apart from ``scalevgae.ops.reference`` (the ground truth the kernels are tested against) so
production code never depends on the reference module, and at the package top so that
``scalevgae.csr`` can use it without importing ``scalevgae.ops``.
"""

from __future__ import annotations

from typing import Optional

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
