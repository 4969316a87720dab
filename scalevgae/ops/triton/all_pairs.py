"""Triton kernels of the dense-free all-pairs terms of the VGAE reconstruction loss.

    softplus_pair_sum(z)              -> scalar  sum_{i,j} softplus(<z_i, z_j>)   (all N^2 ordered pairs, i == j too)
    sigmoid_pair_matmul(z)            -> [N, F]  sigmoid(Z Z^T) @ Z
    softplus_pair_sum_and_matmul(z)   -> both in one pass over the pairs

``d/dz softplus_pair_sum(z) = 2 * sigmoid_pair_matmul(z)`` (Z Z^T is symmetric), so the forward and the
backward of the "every pair is a negative" term need nothing of size N x N.

Flash-attention-like: each program owns BLOCK_M rows of Z and walks the column blocks; a tile of
logits S = Z_i Z_j^T comes from ``tl.dot`` (full-precision fp32 products for fp32 z, not tf32: logits
of magnitude 100 must stay exact to ~1e-5), is pushed through a stable softplus / sigmoid and
reduced on the spot. Extra memory: O(N/BLOCK_M) partial sums, never N x N.

* the sum uses symmetry: a row block visits only column blocks jb >= ib, off-diagonal tiles count
  twice. Each program writes one partial (float64) to a small buffer that torch then sums: the
  result is deterministic.
* the matmul cannot use symmetry without atomics (tile (i, j) would feed row blocks i and j), so
  it visits every tile; its grid is (row blocks, output feature blocks) and each program owns its
  output block outright (deterministic, no atomics).
* the fused variant visits every tile once and shares exp(-|s|) between softplus and sigmoid:
  cheaper than the two separate passes when a training step needs both (forward + backward).

z may have any strides; float16/bfloat16 go through tensor-core dots with float32 accumulation;
accumulation is float32 (float64 for float64 z). On CPU tensors the kernels need TRITON_INTERPRET=1.
"""

from __future__ import annotations

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError as e:
    raise ImportError("the triton backend needs the `triton` package (pip install triton)") from e

from scalevgae._util import acc_dtype
from scalevgae.ops.triton.propagate import _interpret, _next_pow2

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# ---------------------------------------------------------------------------------------------
# element-wise math (exp(-|s|) is shared by softplus and sigmoid)
# ---------------------------------------------------------------------------------------------
@triton.jit
def _log1p(t):
    """log(1 + t) for t in [0, 1], accurate for tiny t (Goldberg's trick: the rounding error of
    u = 1 + t cancels in log(u) * t / (u - 1)). Needs a log with small *relative* error near 1:
    tl.log lowers to libdevice's precise logf/log on NVIDIA (not lg2.approx), and numpy's in the
    interpreter. libdevice.log1p itself is not available under TRITON_INTERPRET=1."""
    u = 1.0 + t
    d = u - 1.0
    return tl.where(d == 0.0, t, tl.log(u) * (t / tl.where(d == 0.0, 1.0, d)))


@triton.jit
def _softplus_from(s, e):
    """softplus(s) = max(s, 0) + log1p(exp(-|s|)), given e = exp(-|s|)."""
    return tl.maximum(s, 0.0) + _log1p(e)


@triton.jit
def _sigmoid_from(s, e):
    """sigmoid(s) without overflow, given e = exp(-|s|)."""
    r = 1.0 / (1.0 + e)
    return tl.where(s >= 0, r, e * r)


@triton.jit
def _logits(z_ptr, zi, rows, rmask, cols, cmask, F, stride_r, stride_f,
            ACC: tl.constexpr, DOT_T: tl.constexpr, PREC: tl.constexpr, SINGLE_K: tl.constexpr,
            BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """S[m, n] = <z[rows[m]], z[cols[n]]> in ACC. With SINGLE_K (F <= BLOCK_K) the caller's zi
    [BLOCK_M, BLOCK_K] is the whole row block, loaded once; otherwise the features are walked in
    BLOCK_K slices. Operands are cast to DOT_T; products are exact: ieee fp32 / fp64, fp16 on
    tensor cores into fp32, bf16 as tf32 (every bf16 value is a tf32 value)."""
    if SINGLE_K:
        k = tl.arange(0, BLOCK_K)
        zj = tl.load(z_ptr + cols[:, None] * stride_r + k[None, :] * stride_f,
                     mask=cmask[:, None] & (k < F)[None, :], other=0.0).to(DOT_T)
        s = tl.dot(zi, tl.trans(zj), out_dtype=ACC, input_precision=PREC)
    else:
        s = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC)
        for k0 in range(0, F, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            kmask = k < F
            a = tl.load(z_ptr + rows[:, None] * stride_r + k[None, :] * stride_f,
                        mask=rmask[:, None] & kmask[None, :], other=0.0).to(DOT_T)
            b = tl.load(z_ptr + cols[:, None] * stride_r + k[None, :] * stride_f,
                        mask=cmask[:, None] & kmask[None, :], other=0.0).to(DOT_T)
            s = tl.dot(a, tl.trans(b), s, out_dtype=ACC, input_precision=PREC)
    return s


@triton.jit
def _row_block(z_ptr, F, stride_r, stride_f, pid_m, N, DOT_T: tl.constexpr, SINGLE_K: tl.constexpr,
               BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    """Rows of this program (int64), their mask, and (SINGLE_K) the whole [BLOCK_M, BLOCK_K] row block."""
    rows = pid_m.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < N
    k = tl.arange(0, BLOCK_K)
    if SINGLE_K:
        zi = tl.load(z_ptr + rows[:, None] * stride_r + k[None, :] * stride_f,
                     mask=rmask[:, None] & (k < F)[None, :], other=0.0).to(DOT_T)
    else:
        zi = tl.zeros([BLOCK_M, BLOCK_K], dtype=DOT_T)  # unused
    return rows, rmask, zi


# ---------------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------------
@triton.jit
def _softplus_sum_kernel(z_ptr, part_ptr, N, F, stride_r, stride_f,
                         ACC: tl.constexpr, DOT_T: tl.constexpr, PREC: tl.constexpr, SINGLE_K: tl.constexpr,
                         BLOCK: tl.constexpr, BLOCK_K: tl.constexpr):
    """Program ib: sum over tiles (ib, jb >= ib) of softplus(S), off-diagonal tiles twice -> part[ib] (fp64).
    Square tiles (BLOCK rows = BLOCK cols) so that tile (ib, jb) and its mirror (jb, ib) coincide."""
    ib = tl.program_id(0)
    rows, rmask, zi = _row_block(z_ptr, F, stride_r, stride_f, ib, N, DOT_T, SINGLE_K, BLOCK, BLOCK_K)
    acc = tl.zeros([BLOCK, BLOCK], dtype=ACC)
    for j0 in range(ib * BLOCK, N, BLOCK):
        cols = j0 + tl.arange(0, BLOCK).to(tl.int64)
        cmask = cols < N
        s = _logits(z_ptr, zi, rows, rmask, cols, cmask, F, stride_r, stride_f,
                    ACC, DOT_T, PREC, SINGLE_K, BLOCK, BLOCK, BLOCK_K)
        sp = _softplus_from(s, tl.exp(-tl.abs(s)))
        w = tl.where(j0 == ib * BLOCK, 1.0, 2.0)
        acc += tl.where(rmask[:, None] & cmask[None, :], sp * w, 0.0)
    tl.store(part_ptr + ib, tl.sum(tl.sum(acc, axis=1), axis=0).to(tl.float64))


@triton.jit
def _sigmoid_matmul_kernel(z_ptr, out_ptr, part_ptr, N, F, stride_r, stride_f, stride_or,
                           ACC: tl.constexpr, DOT_T: tl.constexpr, PREC: tl.constexpr,
                           SINGLE_K: tl.constexpr, WITH_SUM: tl.constexpr,
                           BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                           BLOCK_FO: tl.constexpr):
    """Program (ib, fb): out[rows, fb-block] = sum_j sigmoid(S[rows, j]) z[j, fb-block] over every
    column block. WITH_SUM (fused, one feature block only): also part[ib] = sum softplus(S[rows, :])."""
    ib = tl.program_id(0)
    fb = tl.program_id(1)
    rows, rmask, zi = _row_block(z_ptr, F, stride_r, stride_f, ib, N, DOT_T, SINGLE_K, BLOCK_M, BLOCK_K)
    fo = fb * BLOCK_FO + tl.arange(0, BLOCK_FO)
    fomask = fo < F
    out = tl.zeros([BLOCK_M, BLOCK_FO], dtype=ACC)
    if WITH_SUM:
        acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC)
    for j0 in range(0, N, BLOCK_N):
        cols = j0 + tl.arange(0, BLOCK_N).to(tl.int64)
        cmask = cols < N
        s = _logits(z_ptr, zi, rows, rmask, cols, cmask, F, stride_r, stride_f,
                    ACC, DOT_T, PREC, SINGLE_K, BLOCK_M, BLOCK_N, BLOCK_K)
        e = tl.exp(-tl.abs(s))
        # padded columns load zero rows of z below, so their sigmoid(0) adds nothing
        p = _sigmoid_from(s, e)
        zj = tl.load(z_ptr + cols[:, None] * stride_r + fo[None, :] * stride_f,
                     mask=cmask[:, None] & fomask[None, :], other=0.0).to(ACC)
        out = tl.dot(p, zj, out, out_dtype=ACC, input_precision="ieee")
        if WITH_SUM:
            acc += tl.where(rmask[:, None] & cmask[None, :], _softplus_from(s, e), 0.0)
    tl.store(out_ptr + rows[:, None] * stride_or + fo[None, :], out, mask=rmask[:, None] & fomask[None, :])
    if WITH_SUM:
        tl.store(part_ptr + ib, tl.sum(tl.sum(acc, axis=1), axis=0).to(tl.float64))


# ---------------------------------------------------------------------------------------------
# launch configuration and host functions
# ---------------------------------------------------------------------------------------------
def _config(F: int, dtype: torch.dtype) -> tuple[int, int, int]:
    """(BLOCK, BLOCK_K, num_warps): square tiles of logits, the feature slice of the logits dot.
    tl.dot wants every dim >= 16. The interpreter gets small tiles (its cost is per element of
    padding); on a GPU 64 x 64 tiles hold 4096 logits (32 fp32 registers per thread with 4 warps).
    fp32/fp64 dots run on FMA units (exact products, no tf32), so their row block stays in
    registers only up to 32 features; fp16/bf16 dots use tensor cores and take 64."""
    block_k = max(16, min(_next_pow2(F), 64 if dtype in (torch.float16, torch.bfloat16) else 32))
    if _interpret():
        return 16, block_k, 4
    block = 32 if dtype == torch.float64 else 64
    return block, block_k, 4


def _fo_block(F: int, dtype: torch.dtype) -> int:
    """Output feature block of the matmul: the whole F up to 128 (64 for fp64), else several programs per row block."""
    return max(16, min(_next_pow2(F), 64 if dtype == torch.float64 else 128))


def _check(z: Tensor) -> None:
    if z.device.type != "cuda" and not (z.device.type == "cpu" and _interpret()):
        raise RuntimeError(
            f"the triton all-pairs kernels run on CUDA tensors (or on CPU with TRITON_INTERPRET=1), got z on {z.device}")
    if z.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"z must be float16, bfloat16, float32 or float64, got {z.dtype}")
    if z.dim() != 2:
        raise ValueError(f"z must be 2-D [N, F], got shape {tuple(z.shape)}")


def _dot_consts(dtype: torch.dtype) -> dict:
    """ACC (accumulation), DOT_T (dtype of the logits-dot operands) and PREC (its input_precision):
    exact products in every case. bf16 goes through tf32 rather than a native bf16 dot: still tensor
    cores (half the bf16 peak, which this exp/log-bound pass does not reach), and right under
    TRITON_INTERPRET=1, whose bf16 tl.dot returns garbage (triton 3.9)."""
    if dtype == torch.float64:
        return dict(ACC=tl.float64, DOT_T=tl.float64, PREC="ieee")
    if dtype == torch.float16:
        return dict(ACC=tl.float32, DOT_T=tl.float16, PREC="ieee")
    if dtype == torch.bfloat16:
        return dict(ACC=tl.float32, DOT_T=tl.float32, PREC="tf32")
    return dict(ACC=tl.float32, DOT_T=tl.float32, PREC="ieee")


def _empty_sum(z: Tensor, acc: torch.dtype) -> Tensor:
    """N == 0: no pairs, 0. F == 0: every logit is 0, N^2 * log 2."""
    n = z.size(0)
    return torch.full((), float(n) * float(n) * 0.6931471805599453, dtype=acc, device=z.device)


def softplus_pair_sum(z: Tensor) -> Tensor:
    """sum_{i, j} softplus(<z_i, z_j>) over all N^2 ordered pairs (i == j included).

    z [N, F] (float16/bfloat16/float32/float64, any strides) -> 0-d tensor in the accumulation dtype
    (float32; float64 for float64 z). Deterministic (per-row-block partials summed by torch in float64).
    """
    _check(z)
    acc = acc_dtype(z.dtype)
    N, F = z.shape
    if N == 0 or F == 0:
        return _empty_sum(z, acc)
    block, block_k, nw = _config(F, z.dtype)
    nb = triton.cdiv(N, block)
    part = torch.empty(nb, dtype=torch.float64, device=z.device)
    _softplus_sum_kernel[(nb,)](z, part, N, F, z.stride(0), z.stride(1),
                                **_dot_consts(z.dtype), SINGLE_K=F <= block_k, BLOCK=block, BLOCK_K=block_k,
                                num_warps=nw)
    return part.sum().to(acc)


def _matmul_launch(z: Tensor, with_sum: bool) -> tuple[Tensor, Tensor | None]:
    acc = acc_dtype(z.dtype)
    N, F = z.shape
    out = torch.empty(N, F, dtype=acc, device=z.device)
    if N == 0:
        return out, _empty_sum(z, acc) if with_sum else None
    if F == 0:
        return out, _empty_sum(z, acc) if with_sum else None
    block, block_k, nw = _config(F, z.dtype)
    fo = _fo_block(F, z.dtype)
    n_fb = triton.cdiv(F, fo)
    nb = triton.cdiv(N, block)
    # the fused sum needs one program per row block: with several feature blocks only the first sums
    fused = with_sum and n_fb == 1
    part = torch.empty(nb, dtype=torch.float64, device=z.device)
    _sigmoid_matmul_kernel[(nb, n_fb)](z, out, part, N, F, z.stride(0), z.stride(1), out.stride(0),
                                       **_dot_consts(z.dtype), SINGLE_K=F <= block_k, WITH_SUM=fused,
                                       BLOCK_M=block, BLOCK_N=block, BLOCK_K=block_k, BLOCK_FO=fo,
                                       num_warps=nw)
    if not with_sum:
        return out, None
    return out, part.sum().to(acc) if fused else softplus_pair_sum(z)


def sigmoid_pair_matmul(z: Tensor) -> Tensor:
    """sigmoid(Z Z^T) @ Z without forming Z Z^T.

    z [N, F] (float16/bfloat16/float32/float64, any strides) -> [N, F] in the accumulation dtype
    (float32; float64 for float64 z). Deterministic (no atomics). The gradient of
    ``softplus_pair_sum(z)`` with respect to z is ``2 * sigmoid_pair_matmul(z)``.
    """
    _check(z)
    return _matmul_launch(z, with_sum=False)[0]


def softplus_pair_sum_and_matmul(z: Tensor) -> tuple[Tensor, Tensor]:
    """(softplus_pair_sum(z), sigmoid_pair_matmul(z)) in one pass over the N^2 pairs when F fits one
    output feature block (F <= 128; 64 for float64), else the two separate passes.

    z [N, F] -> (0-d tensor, [N, F]), both in the accumulation dtype.
    """
    _check(z)
    out, total = _matmul_launch(z, with_sum=True)
    assert total is not None
    return total, out
