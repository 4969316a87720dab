"""Value checks run once at the public boundary (ops, Graph, loaders), never in kernels.

Each raises TypeError / ValueError / IndexError naming the offending argument.
"""

from __future__ import annotations

import torch

_INDEX_DTYPES = (torch.int32, torch.int64)


def check_tensor(t: object, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    return t


def check_index_tensor(t: object, name: str) -> torch.Tensor:
    t = check_tensor(t, name)
    if t.dtype not in _INDEX_DTYPES:
        raise TypeError(f"{name} must be int32 or int64, got {t.dtype}")
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    return t


def check_float_tensor(t: object, name: str, dim: int | None = None) -> torch.Tensor:
    t = check_tensor(t, name)
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if dim is not None and t.dim() != dim:
        raise ValueError(f"{name} must be {dim}-D, got shape {tuple(t.shape)}")
    return t


def check_same_device(*named: tuple[str, torch.Tensor | None]) -> None:
    present = [(n, t) for n, t in named if t is not None]
    if not present:
        return
    n0, t0 = present[0]
    for n, t in present[1:]:
        if t.device != t0.device:
            raise ValueError(f"{n} is on {t.device} but {n0} is on {t0.device}")


def check_index_range(idx: torch.Tensor, n: int, name: str) -> None:
    """All entries of `idx` lie in [0, n)."""
    if idx.numel() == 0:
        return
    lo, hi = torch.aminmax(idx)
    lo, hi = int(lo), int(hi)
    if lo < 0:
        raise IndexError(f"{name} has a negative index ({lo})")
    if hi >= n:
        raise IndexError(f"{name} has index {hi} out of range for {n} rows")


def check_csr(rowptr: torch.Tensor, col: torch.Tensor, num_cols: int, prefix: str = "") -> None:
    """(rowptr, col) is a well-formed CSR with column indices in [0, num_cols)."""
    rp, cn = f"{prefix}rowptr", f"{prefix}col"
    check_index_tensor(rowptr, rp)
    check_index_tensor(col, cn)
    if rowptr.dtype != col.dtype:
        raise TypeError(f"{rp} ({rowptr.dtype}) and {cn} ({col.dtype}) must have the same dtype")
    check_same_device((rp, rowptr), (cn, col))
    if rowptr.numel() < 1:
        raise ValueError(f"{rp} must have at least one entry (rowptr[0] == 0)")
    first, last = int(rowptr[0]), int(rowptr[-1])
    if first != 0:
        raise ValueError(f"{rp}[0] must be 0, got {first}")
    if last != col.numel():
        raise ValueError(f"{rp}[-1] = {last} does not match {cn}.numel() = {col.numel()}")
    if rowptr.numel() > 1 and bool((rowptr[1:] < rowptr[:-1]).any()):
        raise ValueError(f"{rp} must be non-decreasing")
    check_index_range(col, num_cols, cn)


def check_finite(x: torch.Tensor, name: str) -> None:
    if x.is_floating_point() and x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
