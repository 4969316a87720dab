"""Triton kernels of the inner-product decoder (the semantics of ``scalevgae::edge_dot / edge_grad``).

    edge_dot(z, src, dst) -> logits [E] (acc dtype):   logits[e] = <z[src[e]], z[dst[e]]>
    edge_grad(coef, z, src, dst, deterministic) -> dz [n, F] (z.dtype):
        dz[src[e]] += coef[e] * z[dst[e]];  dz[dst[e]] += coef[e] * z[src[e]]

Registered as ``torch.ops.scalevgae_triton.edge_dot / edge_bce / edge_grad`` with the schemas of
csrc/ops.cpp; fake kernels and autograd come from ``scalevgae.ops.decode.register_decode_ops``,
the same code as for the compiled ops. (``torch.library.triton_op`` would let torch.compile see
inside the kernels, but under TRITON_INTERPRET=1 -- how Triton runs on GPU-less machines, i.e. how
CI tests it -- torch.compile of a triton_op fails on torch 2.13 ("Cannot access data pointer of
Tensor"), and edge_grad's host-side sort is data-dependent anyway, so these are opaque
``custom_op``s like ``scalevgae_triton::gcn_spmm``.) z may have any strides;
src/dst are int32 or int64; accumulation is float32 (float64 for float64 z); all row * stride
offsets are int64. ``edge_grad`` scatters with atomic adds into an accumulation-dtype buffer;
``deterministic=True`` instead sorts the 2E (target, source, coef) triples by target once and
runs the deterministic weighted-SpMM kernels of ``triton/propagate.py`` (fixed summation order,
hub nodes split into chunks). On CPU tensors they need ``TRITON_INTERPRET=1``.
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
from scalevgae.ops.decode import bce_from_logits, register_decode_ops
from scalevgae.ops.triton.propagate import _interpret, _next_pow2, gcn_spmm_launch

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@triton.jit
def _edge_dot_kernel(z_ptr, src_ptr, dst_ptr, out_ptr, E, F, stride_zr, stride_zf,
                     ACC: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr):
    """One program per BLOCK_E edges; the feature axis is walked in BLOCK_F steps."""
    e = tl.program_id(0).to(tl.int64) * BLOCK_E + tl.arange(0, BLOCK_E)
    emask = e < E
    s = tl.load(src_ptr + e, mask=emask, other=0).to(tl.int64)
    d = tl.load(dst_ptr + e, mask=emask, other=0).to(tl.int64)
    acc = tl.zeros([BLOCK_E, BLOCK_F], dtype=ACC)
    for f0 in range(0, F, BLOCK_F):
        f = f0 + tl.arange(0, BLOCK_F)
        m = emask[:, None] & (f < F)[None, :]
        a = tl.load(z_ptr + s[:, None] * stride_zr + f[None, :] * stride_zf, mask=m, other=0.0).to(ACC)
        b = tl.load(z_ptr + d[:, None] * stride_zr + f[None, :] * stride_zf, mask=m, other=0.0).to(ACC)
        acc += a * b
    tl.store(out_ptr + e, tl.sum(acc, axis=1), mask=emask)


@triton.jit
def _edge_grad_atomic_kernel(coef_ptr, z_ptr, src_ptr, dst_ptr, dz_ptr, E, F, n_fb, stride_zr, stride_zf,
                             ACC: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr):
    """One program per (BLOCK_E edges, feature block): two atomic adds per (edge, feature)."""
    pid = tl.program_id(0).to(tl.int64)
    e = (pid // n_fb) * BLOCK_E + tl.arange(0, BLOCK_E)
    f = (pid % n_fb) * BLOCK_F + tl.arange(0, BLOCK_F)
    emask = e < E
    m = emask[:, None] & (f < F)[None, :]
    s = tl.load(src_ptr + e, mask=emask, other=0).to(tl.int64)
    d = tl.load(dst_ptr + e, mask=emask, other=0).to(tl.int64)
    c = tl.load(coef_ptr + e, mask=emask, other=0.0)[:, None]
    zs = tl.load(z_ptr + s[:, None] * stride_zr + f[None, :] * stride_zf, mask=m, other=0.0).to(ACC)
    zd = tl.load(z_ptr + d[:, None] * stride_zr + f[None, :] * stride_zf, mask=m, other=0.0).to(ACC)
    tl.atomic_add(dz_ptr + s[:, None] * F + f[None, :], c * zd, mask=m, sem="relaxed")
    tl.atomic_add(dz_ptr + d[:, None] * F + f[None, :], c * zs, mask=m, sem="relaxed")


def _dot_config(F: int) -> tuple[int, int]:
    """(BLOCK_F, BLOCK_E) of edge_dot: [BLOCK_E, BLOCK_F] tiles of 1024 products (8 per thread of
    4 warps: two gathered tiles plus their 64-bit addresses stay in registers at high occupancy)."""
    block_f = min(_next_pow2(F), 64)
    return block_f, max(16, 1024 // block_f)


def _grad_config(F: int) -> tuple[int, int]:
    """(BLOCK_F, BLOCK_E) of the atomic edge_grad: 1024-element tiles, as in edge_dot."""
    block_f = min(_next_pow2(F), 128)
    return block_f, max(8, 1024 // block_f)


def _check(z: Tensor, src: Tensor, dst: Tensor) -> None:
    if z.device.type != "cuda" and not (z.device.type == "cpu" and _interpret()):
        raise RuntimeError(
            f"the triton edge kernels run on CUDA tensors (or on CPU with TRITON_INTERPRET=1), got z on {z.device}")
    if z.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"z must be float16, bfloat16, float32 or float64, got {z.dtype}")
    if z.dim() != 2:
        raise ValueError(f"z must be 2-D, got shape {tuple(z.shape)}")
    for name, t in (("src", src), ("dst", dst)):
        if t.dtype not in (torch.int32, torch.int64) or t.dim() != 1:
            raise TypeError(f"{name} must be a 1-D int32 or int64 tensor, got {t.dtype} of shape {tuple(t.shape)}")
        if t.device != z.device:
            raise ValueError(f"{name} is on {t.device} but z is on {z.device}")
    if src.numel() != dst.numel():
        raise ValueError(f"src and dst must have the same length, got {src.numel()} and {dst.numel()}")


def edge_dot(z: Tensor, src: Tensor, dst: Tensor) -> Tensor:
    """logits[e] = <z[src[e]], z[dst[e]]>.

    z [n, F] (float16/bfloat16/float32/float64, any strides), src/dst [E] int32/int64 in [0, n)
    (not range-checked here) -> [E] in the accumulation dtype (float32; float64 for float64 z).
    """
    _check(z, src, dst)
    acc = acc_dtype(z.dtype)
    E, F = src.numel(), z.size(1)
    out = torch.empty(E, dtype=acc, device=z.device)
    if E == 0:
        return out
    if F == 0:
        return out.zero_()
    block_f, block_e = _dot_config(F)
    _edge_dot_kernel[(triton.cdiv(E, block_e),)](
        z, src.contiguous(), dst.contiguous(), out, E, F, z.stride(0), z.stride(1),
        ACC=tl.float64 if acc == torch.float64 else tl.float32, BLOCK_E=block_e, BLOCK_F=block_f,
        num_warps=4)
    return out


def edge_grad(coef: Tensor, z: Tensor, src: Tensor, dst: Tensor, deterministic: bool) -> Tensor:
    """dz[src[e]] += coef[e] * z[dst[e]] and dz[dst[e]] += coef[e] * z[src[e]] (src == dst counts twice).

    coef [E] (accumulation dtype of z), z [n, F], src/dst [E] int32/int64 -> dz [n, F] (z.dtype).
    deterministic=False: atomic adds (fast, summation order varies between runs).
    deterministic=True: sort by target, then a segmented sum in a fixed order (bitwise reproducible).
    """
    _check(z, src, dst)
    acc = acc_dtype(z.dtype)
    if coef.dtype != acc or coef.dim() != 1 or coef.numel() != src.numel():
        raise TypeError(f"coef must be [{src.numel()}] of {acc} (the accumulation dtype of z), "
                        f"got {tuple(coef.shape)} {coef.dtype}")
    if coef.device != z.device:
        raise ValueError(f"coef is on {coef.device} but z is on {z.device}")
    n, F = z.shape
    E = src.numel()
    if E == 0 or F == 0 or n == 0:
        return torch.zeros(n, F, dtype=z.dtype, device=z.device)
    if deterministic:
        return _edge_grad_sorted(coef, z, src, dst)
    dz = torch.zeros(n, F, dtype=acc, device=z.device)
    block_f, block_e = _grad_config(F)
    n_fb = triton.cdiv(F, block_f)
    _edge_grad_atomic_kernel[(triton.cdiv(E, block_e) * n_fb,)](
        coef.contiguous(), z, src.contiguous(), dst.contiguous(), dz, E, F, n_fb, z.stride(0), z.stride(1),
        ACC=tl.float64 if acc == torch.float64 else tl.float32, BLOCK_E=block_e, BLOCK_F=block_f, num_warps=4)
    return dz if dz.dtype == z.dtype else dz.to(z.dtype)


def _edge_grad_sorted(coef: Tensor, z: Tensor, src: Tensor, dst: Tensor) -> Tensor:
    """Deterministic edge_grad: the 2E (target, other, coef) triples as a CSR sorted by target
    (stable sort: ties keep edge order), then dz = W z with the weighted SpMM kernels."""
    n = z.size(0)
    idx = torch.int64 if src.dtype == torch.int64 or dst.dtype == torch.int64 else torch.int32
    target = torch.cat([src, dst]).to(idx)
    other = torch.cat([dst, src]).to(idx)
    order = torch.sort(target, stable=True).indices
    counts = torch.bincount(target, minlength=n)
    rowptr = torch.zeros(n + 1, dtype=idx, device=z.device)
    torch.cumsum(counts, 0, out=rowptr[1:])
    w = torch.cat([coef, coef])[order]
    return gcn_spmm_launch(rowptr, other[order], z, None, None, False, None, False, edge_weight=w)


# ---------------------------------------------------------------------------------------------
# the ops
# ---------------------------------------------------------------------------------------------
NAMESPACE = "scalevgae_triton"


@torch.library.custom_op(f"{NAMESPACE}::edge_dot", mutates_args=(), device_types=("cpu", "cuda"))
def _edge_dot_op(z: Tensor, src: Tensor, dst: Tensor) -> Tensor:
    return edge_dot(z, src, dst)


@torch.library.custom_op(f"{NAMESPACE}::edge_bce", mutates_args=(), device_types=("cpu", "cuda"))
def _edge_bce_op(z: Tensor, src: Tensor, dst: Tensor, label: Tensor, pos_weight: float,
                 reduction: int) -> tuple[Tensor, Tensor]:
    # the logits from the Triton kernel, the BCE epilogue in torch (O(E), same formulas as the C++)
    return bce_from_logits(edge_dot(z, src, dst), label, pos_weight, reduction)


@torch.library.custom_op(f"{NAMESPACE}::edge_grad", mutates_args=(), device_types=("cpu", "cuda"))
def _edge_grad_op(coef: Tensor, z: Tensor, src: Tensor, dst: Tensor, deterministic: bool) -> Tensor:
    return edge_grad(coef, z, src, dst, deterministic)


register_decode_ops(NAMESPACE)


def ops():
    """``torch.ops.scalevgae_triton``: the registered Triton decode (and propagation) ops."""
    return getattr(torch.ops, NAMESPACE)
