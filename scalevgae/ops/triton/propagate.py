"""Triton kernels of gcn_spmm: y = act(dst_scale * ((A + I)(src_scale * x)) + bias) over a CSR.

Registered as ``torch.ops.scalevgae_triton.gcn_spmm`` with the schema of ``scalevgae::gcn_spmm``
(csrc/ops.cpp); fake kernel and autograd come from ``scalevgae.ops.propagate.register_gcn_spmm``,
so the backward runs this same op on the transposed CSR.

Work split (load balance on a GPU):
  * short rows: one program per (row, feature block); the row's neighbours are gathered in
    ``[BLOCK_E, BLOCK_F]`` tiles (coalesced feature loads, the col-index load shared by the tile)
    and reduced once at the end.
  * long rows (degree > ``long_row_threshold``): cut into chunks of ``chunk`` edges; one program
    per (chunk, feature block) writes a partial sum to a small ``[n_chunks, F]`` buffer, and a
    second kernel adds each long row's partials and applies the epilogue. A hub with 10^5
    neighbours becomes ~100 parallel programs instead of one serial one, and no atomics are used,
    so the result is deterministic.

Indices may be int32 or int64; every row * stride offset is computed in int64. Accumulation is
float32 for float16/bfloat16/float32 inputs and float64 for float64 inputs.

On CPU tensors the kernels only run in Triton's interpreter (``TRITON_INTERPRET=1`` set before
triton is imported); that is how the tests run on GPU-less machines.
"""

from __future__ import annotations

import os
from typing import Optional

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError as e:  # the dispatcher only imports this module when triton is importable
    raise ImportError("the triton backend needs the `triton` package (pip install triton)") from e

from scalevgae._util import acc_dtype
from scalevgae.ops.propagate import register_gcn_spmm

OP_NAME = "scalevgae_triton::gcn_spmm"
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

# Tunables of the split path (edges). Rows longer than LONG_ROW_THRESHOLD are split into chunks
# of CHUNK edges; each chunk is CHUNK / BLOCK_E loop iterations of one program.
CHUNK = 1024
LONG_ROW_THRESHOLD = 2048


# ---------------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------------
@triton.jit
def _item_tile(F, n_fb, BLOCK_F: tl.constexpr):
    """(item, f, fmask) of this program: programs are (item, feature block) pairs, item-major."""
    pid = tl.program_id(0).to(tl.int64)
    f = (pid % n_fb) * BLOCK_F + tl.arange(0, BLOCK_F)
    return pid // n_fb, f, f < F


@triton.jit
def _gather_sum(col_ptr, x_ptr, cs_ptr, w_ptr, start, end, f, fmask, stride_xr, stride_xf,
                HAS_CS: tl.constexpr, HAS_W: tl.constexpr, ACC: tl.constexpr,
                BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr):
    """sum_{e in [start, end)} [w[e]] * src_scale[col[e]] * x[col[e], f] -> [BLOCK_F] in ACC."""
    acc = tl.zeros([BLOCK_E, BLOCK_F], dtype=ACC)
    for e0 in range(start, end, BLOCK_E):
        e = e0 + tl.arange(0, BLOCK_E)
        emask = e < end
        c = tl.load(col_ptr + e, mask=emask, other=0).to(tl.int64)
        v = tl.load(x_ptr + c[:, None] * stride_xr + f[None, :] * stride_xf,
                    mask=emask[:, None] & fmask[None, :], other=0.0).to(ACC)
        if HAS_CS:
            v = v * tl.load(cs_ptr + c, mask=emask, other=0.0)[:, None]
        if HAS_W:
            v = v * tl.load(w_ptr + e, mask=emask, other=0.0)[:, None]
        acc += v
    # one reduction across the edge axis per row, not one per tile
    return tl.sum(acc, axis=0)


@triton.jit
def _finish_row(s, row, f, fmask, smask, x_ptr, rs_ptr, cs_ptr, ss_ptr, bias_ptr, y_ptr,
                n_x, stride_xr, stride_xf, stride_yr,
                SELF_LOOPS: tl.constexpr, HAS_RS: tl.constexpr, HAS_CS: tl.constexpr, HAS_SS: tl.constexpr,
                HAS_BIAS: tl.constexpr, RELU: tl.constexpr, ACC: tl.constexpr):
    """Epilogue of row `row` (int64): + self loop, * dst_scale, + bias, relu, store where smask.

    With a self_scale (HAS_SS) the self loop is self_scale[row] * x[row], added after dst_scale."""
    if SELF_LOOPS:
        # the transposed (backward) CSR may have more rows than x; the row test is made a vector
        # because the interpreter mis-types (vector bool & scalar bool)
        has_self = (tl.zeros_like(f) + row) < n_x
        xi = tl.load(x_ptr + row * stride_xr + f * stride_xf, mask=fmask & has_self, other=0.0).to(ACC)
        if HAS_SS:
            if HAS_RS:
                s = s * tl.load(rs_ptr + row)
            s = s + xi * tl.load(ss_ptr + row, mask=row < n_x, other=0.0)
        else:
            if HAS_CS:
                xi = xi * tl.load(cs_ptr + row, mask=row < n_x, other=0.0)
            s = s + xi
            if HAS_RS:
                s = s * tl.load(rs_ptr + row)
    elif HAS_RS:
        s = s * tl.load(rs_ptr + row)
    if HAS_BIAS:
        s = s + tl.load(bias_ptr + f, mask=fmask, other=0.0)
    if RELU:
        s = tl.maximum(s, 0.0)
    tl.store(y_ptr + row * stride_yr + f, s.to(y_ptr.dtype.element_ty), mask=smask)


@triton.jit
def _rows_kernel(rowptr_ptr, col_ptr, x_ptr, rs_ptr, cs_ptr, ss_ptr, w_ptr, bias_ptr, y_ptr,
                 n_x, F, n_fb, long_thresh, stride_xr, stride_xf, stride_yr,
                 SELF_LOOPS: tl.constexpr, HAS_RS: tl.constexpr, HAS_CS: tl.constexpr, HAS_SS: tl.constexpr,
                 HAS_W: tl.constexpr,
                 HAS_BIAS: tl.constexpr, RELU: tl.constexpr, ACC: tl.constexpr,
                 BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr):
    """One program per (row, feature block). Rows longer than long_thresh are left to the split path."""
    row, f, fmask = _item_tile(F, n_fb, BLOCK_F)
    start = tl.load(rowptr_ptr + row).to(tl.int64)
    end = tl.load(rowptr_ptr + row + 1).to(tl.int64)
    short = (end - start) <= long_thresh
    end = tl.where(short, end, start)  # a long row runs no iteration here and stores nothing
    s = _gather_sum(col_ptr, x_ptr, cs_ptr, w_ptr, start, end, f, fmask, stride_xr, stride_xf,
                    HAS_CS, HAS_W, ACC, BLOCK_E, BLOCK_F)
    smask = fmask & ((tl.zeros_like(f) + short.to(tl.int32)) != 0)
    _finish_row(s, row, f, fmask, smask, x_ptr, rs_ptr, cs_ptr, ss_ptr, bias_ptr, y_ptr,
                n_x, stride_xr, stride_xf, stride_yr, SELF_LOOPS, HAS_RS, HAS_CS, HAS_SS, HAS_BIAS, RELU, ACC)


@triton.jit
def _chunk_kernel(chunk_start_ptr, chunk_end_ptr, col_ptr, x_ptr, cs_ptr, w_ptr, part_ptr,
                  F, n_fb, stride_xr, stride_xf,
                  HAS_CS: tl.constexpr, HAS_W: tl.constexpr, ACC: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr):
    """One program per (chunk of a long row, feature block): partial[chunk, f] = sum over the chunk."""
    chunk, f, fmask = _item_tile(F, n_fb, BLOCK_F)
    start = tl.load(chunk_start_ptr + chunk)
    end = tl.load(chunk_end_ptr + chunk)
    s = _gather_sum(col_ptr, x_ptr, cs_ptr, w_ptr, start, end, f, fmask, stride_xr, stride_xf,
                    HAS_CS, HAS_W, ACC, BLOCK_E, BLOCK_F)
    tl.store(part_ptr + chunk * F + f, s, mask=fmask)


@triton.jit
def _long_rows_kernel(long_rows_ptr, cptr_ptr, part_ptr, x_ptr, rs_ptr, cs_ptr, ss_ptr, bias_ptr, y_ptr,
                      n_x, F, n_fb, stride_xr, stride_xf, stride_yr,
                      SELF_LOOPS: tl.constexpr, HAS_RS: tl.constexpr, HAS_CS: tl.constexpr, HAS_SS: tl.constexpr,
                      HAS_BIAS: tl.constexpr, RELU: tl.constexpr, ACC: tl.constexpr,
                      BLOCK_C: tl.constexpr, BLOCK_F: tl.constexpr):
    """One program per (long row, feature block): add the row's chunk partials, then the epilogue."""
    lr, f, fmask = _item_tile(F, n_fb, BLOCK_F)
    row = tl.load(long_rows_ptr + lr)
    c_begin = tl.load(cptr_ptr + lr)
    c_end = tl.load(cptr_ptr + lr + 1)
    acc = tl.zeros([BLOCK_C, BLOCK_F], dtype=ACC)
    for c0 in range(c_begin, c_end, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        cmask = c < c_end
        acc += tl.load(part_ptr + c[:, None] * F + f[None, :], mask=cmask[:, None] & fmask[None, :], other=0.0)
    s = tl.sum(acc, axis=0)
    _finish_row(s, row, f, fmask, fmask, x_ptr, rs_ptr, cs_ptr, ss_ptr, bias_ptr, y_ptr,
                n_x, stride_xr, stride_xf, stride_yr, SELF_LOOPS, HAS_RS, HAS_CS, HAS_SS, HAS_BIAS, RELU, ACC)


# ---------------------------------------------------------------------------------------------
# host side
# ---------------------------------------------------------------------------------------------
def _interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _next_pow2(v: int) -> int:
    return 1 << max(0, int(v) - 1).bit_length()


def _check_args(rowptr: Tensor, col: Tensor, x: Tensor, dst_scale: Optional[Tensor],
                src_scale: Optional[Tensor], bias: Optional[Tensor], self_loops: bool = True,
                self_scale: Optional[Tensor] = None) -> None:
    """Cheap structural checks (no device sync); value checks are done by the public function."""
    if x.device.type != "cuda" and not (x.device.type == "cpu" and _interpret()):
        raise RuntimeError(
            f"the triton gcn_spmm runs on CUDA tensors (or on CPU with TRITON_INTERPRET=1), got x on {x.device}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"x must be float16, bfloat16, float32 or float64, got {x.dtype}")
    if x.dim() != 2:
        raise ValueError(f"x must be 2-D, got shape {tuple(x.shape)}")
    if rowptr.dtype not in (torch.int32, torch.int64) or col.dtype != rowptr.dtype:
        raise TypeError(f"rowptr and col must both be int32 or both int64, got {rowptr.dtype} and {col.dtype}")
    if rowptr.dim() != 1 or col.dim() != 1 or rowptr.numel() < 1:
        raise ValueError("rowptr must be 1-D with at least one entry and col 1-D")
    n_rows = rowptr.numel() - 1
    acc = acc_dtype(x.dtype)
    if self_scale is not None and not self_loops:
        raise ValueError("self_scale needs self_loops=True")
    for name, t, n in (("dst_scale", dst_scale, n_rows), ("src_scale", src_scale, x.size(0)),
                       ("bias", bias, x.size(1)), ("self_scale", self_scale, min(n_rows, x.size(0)))):
        if t is None:
            continue
        if t.dtype != acc:
            raise TypeError(f"{name} must have the accumulation dtype {acc} for x of {x.dtype}, got {t.dtype}")
        if t.dim() != 1 or t.numel() != n:
            raise ValueError(f"{name} must have shape [{n}], got {tuple(t.shape)}")
    for name, t in (("rowptr", rowptr), ("col", col), ("dst_scale", dst_scale), ("src_scale", src_scale),
                    ("bias", bias), ("self_scale", self_scale)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}")


def _launch_config(F: int, avg_deg: float, elem_size: int) -> tuple[int, int, int]:
    """(BLOCK_F, BLOCK_E, num_warps): a tile of <= 4096 elements (8 KB of fp16, 32 KB of fp64)."""
    block_f = min(_next_pow2(max(F, 1)), 256 if elem_size <= 4 else 128)
    block_e = min(max(_next_pow2(int(avg_deg) + 1), 8), max(8, 4096 // block_f), 64)
    num_warps = max(1, min(8, block_e * block_f // 512))  # ~16 elements of the tile per thread
    return block_f, block_e, num_warps


def gcn_spmm_launch(
    rowptr: Tensor,
    col: Tensor,
    x: Tensor,
    dst_scale: Optional[Tensor],
    src_scale: Optional[Tensor],
    self_loops: bool,
    bias: Optional[Tensor],
    relu: bool,
    *,
    self_scale: Optional[Tensor] = None,
    edge_weight: Optional[Tensor] = None,
    chunk: Optional[int] = None,
    long_row_threshold: Optional[int] = None,
) -> Tensor:
    """Run the kernels (no autograd). rowptr [R+1], col [nnz], x [C, F] -> y [R, F] (x.dtype).

    ``self_scale`` [min(R, C)] (acc dtype, needs self_loops): row i's self loop is
    ``self_scale[i] * x[i]`` added after dst_scale (csrc/ops.cpp).

    ``edge_weight`` [nnz] (acc dtype) multiplies each stored entry (the decoder's deterministic
    edge_grad is this weighted SpMM). ``chunk`` / ``long_row_threshold`` override the split-path
    tunables (tests use small ones). The result is deterministic (no atomics).
    """
    _check_args(rowptr, col, x, dst_scale, src_scale, bias, self_loops, self_scale)
    if edge_weight is not None and (edge_weight.dtype != acc_dtype(x.dtype) or edge_weight.shape != col.shape):
        raise TypeError(f"edge_weight must be [{col.numel()}] of {acc_dtype(x.dtype)}, got "
                        f"{tuple(edge_weight.shape)} {edge_weight.dtype}")
    chunk = CHUNK if chunk is None else int(chunk)
    thresh = LONG_ROW_THRESHOLD if long_row_threshold is None else int(long_row_threshold)
    if chunk < 1 or thresh < 0:
        raise ValueError(f"chunk must be >= 1 and long_row_threshold >= 0, got {chunk}, {thresh}")
    n_rows, F = rowptr.numel() - 1, x.size(1)
    y = torch.empty(n_rows, F, dtype=x.dtype, device=x.device)
    if n_rows == 0 or F == 0:
        return y
    rowptr, col = rowptr.contiguous(), col.contiguous()
    acc = acc_dtype(x.dtype)
    ACC = tl.float64 if acc == torch.float64 else tl.float32
    dummy = torch.empty(1, dtype=acc, device=x.device)  # stands for an absent vector (never read)
    rs, cs, b, ss, w = (dummy if t is None else t.contiguous()
                        for t in (dst_scale, src_scale, bias, self_scale, edge_weight))
    flags = dict(SELF_LOOPS=bool(self_loops), HAS_RS=dst_scale is not None, HAS_CS=src_scale is not None,
                 HAS_SS=self_scale is not None, HAS_BIAS=bias is not None, RELU=bool(relu), ACC=ACC)

    deg = rowptr[1:] - rowptr[:-1]
    max_deg = int(deg.max()) if col.numel() else 0  # one sync: decides whether the split path runs
    split = max_deg > thresh
    block_f, block_e, num_warps = _launch_config(F, col.numel() / n_rows, x.element_size())
    n_fb = triton.cdiv(F, block_f)
    if n_rows * n_fb >= 2**31:  # grid axis 0 limit of one launch
        raise ValueError(f"{n_rows} rows x {n_fb} feature blocks exceed one Triton launch (2^31 programs)")
    sxr, sxf = x.stride()

    _rows_kernel[(n_rows * n_fb,)](
        rowptr, col, x, rs, cs, ss, w, b, y, x.size(0), F, n_fb, thresh, sxr, sxf, y.stride(0),
        HAS_W=edge_weight is not None, BLOCK_E=block_e, BLOCK_F=block_f, num_warps=num_warps, **flags)
    if not split:
        return y

    # Long rows: chunk list built with a few O(n_long + n_chunks) torch ops.
    long_rows = torch.nonzero(deg > thresh).flatten()
    n_long = long_rows.numel()
    start = rowptr[long_rows].long()
    end = rowptr[long_rows + 1].long()
    n_ch = (end - start + chunk - 1) // chunk
    cptr = torch.zeros(n_long + 1, dtype=torch.long, device=x.device)
    torch.cumsum(n_ch, 0, out=cptr[1:])
    n_chunks = int(cptr[-1])
    owner = torch.repeat_interleave(torch.arange(n_long, device=x.device), n_ch, output_size=n_chunks)
    chunk_start = start[owner] + (torch.arange(n_chunks, device=x.device) - cptr[owner]) * chunk
    chunk_end = torch.minimum(chunk_start + chunk, end[owner])
    part = torch.empty(n_chunks, F, dtype=acc, device=x.device)
    ce = max(block_e, min(64, 4096 // block_f)) if chunk >= 64 else block_e  # longer edge tiles
    cw = max(1, min(8, ce * block_f // 512))
    _chunk_kernel[(n_chunks * n_fb,)](
        chunk_start, chunk_end, col, x, cs, w, part, F, n_fb, sxr, sxf,
        HAS_CS=src_scale is not None, HAS_W=edge_weight is not None, ACC=ACC, BLOCK_E=ce, BLOCK_F=block_f,
        num_warps=cw)
    block_c = min(_next_pow2(int(n_ch.max())), 32)
    _long_rows_kernel[(n_long * n_fb,)](
        long_rows, cptr, part, x, rs, cs, ss, b, y, x.size(0), F, n_fb, sxr, sxf, y.stride(0),
        BLOCK_C=block_c, BLOCK_F=block_f, num_warps=num_warps, **flags)
    return y


# ---------------------------------------------------------------------------------------------
# the op
# ---------------------------------------------------------------------------------------------
@torch.library.custom_op(OP_NAME, mutates_args=(), device_types=("cpu", "cuda"))
def _gcn_spmm_op(
    rowptr: Tensor,
    col: Tensor,
    x: Tensor,
    dst_scale: Optional[Tensor],
    src_scale: Optional[Tensor],
    self_loops: bool,
    bias: Optional[Tensor],
    relu: bool,
    t_rowptr: Optional[Tensor],
    t_col: Optional[Tensor],
    self_scale: Optional[Tensor] = None,
) -> Tensor:
    # t_rowptr / t_col are read by the backward only (register_gcn_spmm)
    return gcn_spmm_launch(rowptr, col, x, dst_scale, src_scale, self_loops, bias, relu, self_scale=self_scale)


register_gcn_spmm(OP_NAME)


def gcn_spmm(
    rowptr: Tensor,
    col: Tensor,
    x: Tensor,
    dst_scale: Optional[Tensor],
    src_scale: Optional[Tensor],
    self_loops: bool,
    bias: Optional[Tensor],
    relu: bool,
    t_rowptr: Optional[Tensor] = None,
    t_col: Optional[Tensor] = None,
    self_scale: Optional[Tensor] = None,
) -> Tensor:
    """``torch.ops.scalevgae_triton.gcn_spmm`` (differentiable in x and bias).

    rowptr [R+1], col [nnz] (same int dtype), x [C, F] with C >= R; dst_scale [R], src_scale [C],
    bias [F] in the accumulation dtype (or None); t_rowptr [C+1] / t_col [nnz]: the transposed
    CSR for the backward, if cached; self_scale [min(R, C)] (acc dtype, needs self_loops): per-row
    self-loop weight added after dst_scale. Returns y [R, F] of x.dtype.
    """
    return torch.ops.scalevgae_triton.gcn_spmm(rowptr, col, x, dst_scale, src_scale, self_loops, bias, relu,
                                               t_rowptr, t_col, self_scale)
