"""Pure-PyTorch ground truth for every op: readable, differentiable by autograd, slow.

Every kernel (C++ CPU, CUDA, Triton) is tested against these functions.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype: float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def csr_rows(rowptr: Tensor) -> Tensor:
    """Row index of every stored entry of a CSR: [nnz] int64."""
    n_rows = rowptr.numel() - 1
    return torch.repeat_interleave(torch.arange(n_rows, device=rowptr.device), rowptr.diff().long())


def gcn_spmm(
    rowptr: Tensor,
    col: Tensor,
    x: Tensor,
    row_scale: Optional[Tensor],
    col_scale: Optional[Tensor],
    self_loops: bool,
    bias: Optional[Tensor],
    relu: bool,
) -> Tensor:
    """y = act(row_scale * ((A + I) (col_scale * x)) + bias), A the CSR (rowptr, col).

    rowptr [R+1], col [nnz], x [C, F] -> y [R, F] (x.dtype). The self loop adds x[i] to row i
    for i < min(R, C). Computed in the accumulation dtype.
    """
    acc = acc_dtype(x.dtype)
    n_rows = rowptr.numel() - 1
    xs = x.to(acc)
    if col_scale is not None:
        xs = xs * col_scale.to(acc)[:, None]
    y = torch.zeros(n_rows, x.size(1), dtype=acc, device=x.device)
    y = y.index_add(0, csr_rows(rowptr), xs[col.long()])
    if self_loops:
        k = min(n_rows, x.size(0))
        y = y + torch.cat([xs[:k], xs.new_zeros(n_rows - k, x.size(1))])
    if row_scale is not None:
        y = y * row_scale.to(acc)[:, None]
    if bias is not None:
        y = y + bias.to(acc)
    if relu:
        y = torch.relu(y)
    return y.to(x.dtype)
