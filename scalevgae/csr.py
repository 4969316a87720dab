"""CSR building blocks in plain torch: COO -> CSR, transpose, degrees.

Edge membership lives in scalevgae.sampling.membership (a kernel plus its reference)."""

from __future__ import annotations

from typing import Iterator, Optional

import torch
from torch import Tensor

from scalevgae._util import csr_rows

CHUNK = 1 << 20  # entries per block in coo_to_csr and the generator: bounds their temporaries (~50 MB)
INT32_MAX = (1 << 31) - 1


def index_dtype(num_nodes: int, nnz: int) -> torch.dtype:
    """The index dtype of a CSR with ``num_nodes`` rows/columns and ``nnz`` entries: int32 when
    every node id and every row pointer fits (half the memory of int64), int64 otherwise.

    rowptr and col share it because every kernel takes one index dtype for both.
    """
    return torch.int32 if max(num_nodes, nnz) <= INT32_MAX else torch.int64


def row_blocks(rowptr: Tensor, chunk: int = CHUNK) -> Iterator[tuple[int, int]]:
    """Consecutive row ranges ``[r0, r1)`` covering all rows, each holding about ``chunk``
    entries (at least one row, so a hub row larger than ``chunk`` is a block of its own)."""
    n = rowptr.numel() - 1
    r0 = 0
    while r0 < n:
        r1 = int(torch.searchsorted(rowptr, rowptr[r0] + chunk, right=True)) - 1
        r1 = min(max(r1, r0 + 1), n)
        yield r0, r1
        r0 = r1


def coo_to_csr(
    row: Tensor, col: Tensor, num_rows: int, num_cols: int, *, dedup: bool = True, drop_self_loops: bool = False,
    symmetric: bool = False, dtype: Optional[torch.dtype] = None, chunk: int = CHUNK,
) -> tuple[Tensor, Tensor]:
    """Sorted CSR (rowptr ``[num_rows+1]``, col ``[nnz]``, both ``dtype``; None: :func:`index_dtype`
    of the result) from COO entries.

    Columns are sorted within each row; with ``dedup`` repeated (row, col) pairs are kept once;
    ``symmetric`` also stores (col, row) for every entry (an undirected graph from one direction,
    without concatenating both). Bounded extra memory: a counting sort by row (one pass to count,
    one to place, ``chunk`` entries at a time) writes the columns straight into the output, then
    row blocks of about ``chunk`` entries are sorted and deduplicated in place. Peak extra memory
    is the output plus O(num_rows + chunk), never a 64-bit key per entry of the whole list.
    """
    if row.shape != col.shape or row.dim() != 1:
        raise ValueError(f"row and col must be 1-D of equal length, got {tuple(row.shape)} and {tuple(col.shape)}")
    dev = row.device
    passes = [(row, col), (col, row)] if symmetric else [(row, col)]

    def blocks():  # (rows, cols) int64 chunks of every pass, self loops dropped if asked
        for r, c in passes:
            for a in range(0, r.numel(), chunk):
                rr, cc = r[a:a + chunk].long(), c[a:a + chunk].long()
                if drop_self_loops:
                    keep = rr != cc
                    rr, cc = rr[keep], cc[keep]
                yield rr, cc

    counts = torch.zeros(num_rows, dtype=torch.long, device=dev)
    for rr, _ in blocks():
        counts += torch.bincount(rr, minlength=num_rows)
    rowptr = torch.zeros(num_rows + 1, dtype=torch.long, device=dev)
    torch.cumsum(counts, 0, out=rowptr[1:])
    # The columns are written straight in their final dtype (an int64 copy would double the output).
    if dtype is None:
        dtype = index_dtype(max(num_rows, num_cols), int(rowptr[-1]))
    out = torch.empty(int(rowptr[-1]), dtype=dtype, device=dev)
    cursor = rowptr[:-1].clone()
    small = num_rows <= torch.iinfo(torch.int32).max
    for rr, cc in blocks():  # place: each entry at its row's cursor + its rank among the block's same-row entries
        # Any order within a row will do (rows are sorted below): unstable, and 32-bit keys sort faster.
        rr, order = torch.sort(rr.int() if small else rr)
        rr = rr.long()
        uniq, cnt = torch.unique_consecutive(rr, return_counts=True)
        first = torch.repeat_interleave(torch.cumsum(cnt, 0) - cnt, cnt, output_size=rr.numel())
        out[cursor[rr] + torch.arange(rr.numel(), device=dev) - first] = cc[order].to(dtype)
        cursor[uniq] += cnt
    del cursor
    # Sort (and dedup) within rows, a block of whole rows at a time, compacting in place.
    written = 0
    for r0, r1 in row_blocks(rowptr, chunk):
        lo, hi = int(rowptr[r0]), int(rowptr[r1])
        if hi > lo:
            rows = torch.repeat_interleave(torch.arange(r1 - r0, device=dev), counts[r0:r1], output_size=hi - lo)
            key = rows.mul_(num_cols).add_(out[lo:hi].long())
            key = torch.unique(key, sorted=True) if dedup else torch.sort(key).values
            rows = torch.div(key, num_cols, rounding_mode="floor") if num_cols > 0 else key
            out[written:written + key.numel()] = (key - rows * num_cols).to(dtype)
            counts[r0:r1] = torch.bincount(rows, minlength=r1 - r0)
            written += key.numel()
    torch.cumsum(counts, 0, out=rowptr[1:])
    if written < out.numel():
        out = out[:written].clone()
    return rowptr.to(dtype), out


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
