"""CSR building blocks in plain torch: COO -> CSR, transpose, degrees.

Edge membership lives in scalevgae.sampling.membership (a kernel plus its reference)."""

from __future__ import annotations

import torch
from torch import Tensor

from scalevgae._util import csr_rows


def coo_to_csr(
    row: Tensor, col: Tensor, num_rows: int, num_cols: int, *, dedup: bool = True, drop_self_loops: bool = False
) -> tuple[Tensor, Tensor]:
    """Sorted CSR (rowptr [num_rows+1], col [nnz], both int64) from COO entries.

    Columns are sorted within each row; with `dedup` repeated (row, col) pairs are kept once.
    O(nnz log nnz) time through one sort of the int64 key row * num_cols + col.
    """
    row = row.long()
    col = col.long()
    if drop_self_loops:
        keep = row != col
        row, col = row[keep], col[keep]
    key = row * num_cols + col
    key = torch.unique(key, sorted=True) if dedup else torch.sort(key).values
    row = torch.div(key, num_cols, rounding_mode="floor") if num_cols > 0 else key
    col = key - row * num_cols
    counts = torch.bincount(row, minlength=num_rows)
    rowptr = torch.zeros(num_rows + 1, dtype=torch.long, device=row.device)
    torch.cumsum(counts, 0, out=rowptr[1:])
    return rowptr, col


def csr_transpose(rowptr: Tensor, col: Tensor, num_cols: int) -> tuple[Tensor, Tensor]:
    """Transpose of a CSR with `num_cols` columns: (rowptr_t [num_cols+1], col_t [nnz]).

    Columns of the result are sorted within each row (stable sort), index dtype preserved.
    """
    row = csr_rows(rowptr, col.numel(), col.dtype)
    perm = torch.sort(col, stable=True).indices
    col_t = row[perm]
    counts = torch.bincount(col.long(), minlength=num_cols)
    rowptr_t = torch.zeros(num_cols + 1, dtype=rowptr.dtype, device=col.device)
    torch.cumsum(counts, 0, out=rowptr_t[1:])
    return rowptr_t, col_t


def gcn_norm(rowptr: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """(deg + 1)^-1/2 per row: the symmetric GCN normalization with self loops."""
    return (rowptr.diff().to(dtype) + 1).rsqrt()
