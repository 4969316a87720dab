"""Triton tile kernels of the all-pairs decoder loss (``scalevgae.ops.decode.all_pairs_bce_loss``).

    softplus_row_sums(z) -> [N] float32:  r[i] = sum_j softplus(z_i . z_j)
    sigmoid_row_matmul(z) -> [N, F] float32:  g[i] = sum_j sigmoid(z_i . z_j) z_j

Flash-attention style: one program owns BLOCK_I rows, walks all column blocks, scores each
[BLOCK_I, BLOCK_J] tile with tl.dot (IEEE fp32, no TF32) and reduces it in registers; nothing of
size N x N or tile^2 reaches memory. Each row is summed by one program in a fixed order
(deterministic, no atomics). z is read as float32 (float16/bfloat16/float32 inputs).
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError as e:
    raise ImportError("the triton backend needs the `triton` package (pip install triton)") from e


@triton.jit
def _softplus_rows_kernel(z_ptr, out_ptr, N, F, stride_r, stride_f,
                          BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_F: tl.constexpr):  # fmt: skip
    ri = tl.program_id(0).to(tl.int64) * BLOCK_I + tl.arange(0, BLOCK_I)
    rf = tl.arange(0, BLOCK_F)
    fmask = rf < F
    zi = tl.load(z_ptr + ri[:, None] * stride_r + rf[None, :] * stride_f,
                 mask=(ri < N)[:, None] & fmask[None, :], other=0.0).to(tl.float32)  # fmt: skip
    acc = tl.zeros((BLOCK_I,), dtype=tl.float32)
    for j0 in range(0, N, BLOCK_J):
        rj = j0 + tl.arange(0, BLOCK_J).to(tl.int64)
        zj = tl.load(z_ptr + rj[:, None] * stride_r + rf[None, :] * stride_f,
                     mask=(rj < N)[:, None] & fmask[None, :], other=0.0).to(tl.float32)  # fmt: skip
        x = tl.dot(zi, tl.trans(zj), input_precision="ieee")
        sp = tl.maximum(x, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(x)))
        sp = tl.where((rj < N)[None, :], sp, 0.0)
        acc += tl.sum(sp, axis=1)
    tl.store(out_ptr + ri, acc, mask=ri < N)


@triton.jit
def _sigmoid_rows_kernel(z_ptr, out_ptr, N, F, stride_r, stride_f,
                         BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_F: tl.constexpr):  # fmt: skip
    ri = tl.program_id(0).to(tl.int64) * BLOCK_I + tl.arange(0, BLOCK_I)
    rf = tl.arange(0, BLOCK_F)
    fmask = rf < F
    zi = tl.load(z_ptr + ri[:, None] * stride_r + rf[None, :] * stride_f,
                 mask=(ri < N)[:, None] & fmask[None, :], other=0.0).to(tl.float32)  # fmt: skip
    acc = tl.zeros((BLOCK_I, BLOCK_F), dtype=tl.float32)
    for j0 in range(0, N, BLOCK_J):
        rj = j0 + tl.arange(0, BLOCK_J).to(tl.int64)
        zj = tl.load(z_ptr + rj[:, None] * stride_r + rf[None, :] * stride_f,
                     mask=(rj < N)[:, None] & fmask[None, :], other=0.0).to(tl.float32)  # fmt: skip
        x = tl.dot(zi, tl.trans(zj), input_precision="ieee")
        s = tl.where((rj < N)[None, :], tl.sigmoid(x), 0.0)
        acc += tl.dot(s, zj, input_precision="ieee")
    tl.store(out_ptr + ri[:, None] * F + rf[None, :], acc, mask=(ri < N)[:, None] & fmask[None, :])


def _blocks(F: int) -> tuple[int, int, int]:
    block_f = max(16, triton.next_power_of_2(F))
    small = os.environ.get("TRITON_INTERPRET", "0") == "1"  # the interpreter is slow: small tiles
    block = 16 if small else (64 if block_f <= 64 else 32)
    return block, block, block_f


def _check(z: Tensor) -> None:
    if z.dim() != 2:
        raise ValueError(f"z must be 2-D, got shape {tuple(z.shape)}")
    if z.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(f"the Triton all-pairs kernels take float16/bfloat16/float32 z, got {z.dtype}")
    if z.size(1) > 256:
        raise ValueError(f"the Triton all-pairs kernels support F <= 256, got {z.size(1)}")


def softplus_row_sums(z: Tensor) -> Tensor:
    """``[N]`` float32: ``sum_j softplus(z_i . z_j)`` for every row i."""
    _check(z)
    n, f = z.shape
    out = torch.empty(n, dtype=torch.float32, device=z.device)
    if n == 0:
        return out
    bi, bj, bf = _blocks(f)
    _softplus_rows_kernel[(triton.cdiv(n, bi),)](z, out, n, f, z.stride(0), z.stride(1), BLOCK_I=bi, BLOCK_J=bj, BLOCK_F=bf)
    return out


def sigmoid_row_matmul(z: Tensor) -> Tensor:
    """``[N, F]`` float32: ``sum_j sigmoid(z_i . z_j) z_j`` for every row i."""
    _check(z)
    n, f = z.shape
    out = torch.empty(n, f, dtype=torch.float32, device=z.device)
    if n == 0:
        return out
    bi, bj, bf = _blocks(f)
    _sigmoid_rows_kernel[(triton.cdiv(n, bi),)](z, out, n, f, z.stride(0), z.stride(1), BLOCK_I=bi, BLOCK_J=bj, BLOCK_F=bf)
    return out
