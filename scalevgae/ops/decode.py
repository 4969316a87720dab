"""Fused inner-product decoding: edge scores, the BCE loss over sampled pairs, the all-pairs loss.

The C++/CUDA kernels are ``torch.ops.scalevgae.edge_dot / edge_bce / edge_grad``
(csrc/cpu/decode.cpp, csrc/cuda/decode.cu, arithmetic in csrc/decode_math.h), the Triton ones
``edge_dot / edge_grad`` in ``scalevgae.ops.triton.decode`` and the ground truth in
``reference``. Extra memory is O(E): the forward never gathers E x F rows and the backward
scatters ``dloss/dlogit * z[other end]`` straight into dz.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Optional

import torch
from torch import Tensor

from scalevgae import _ext
from scalevgae.ops import dispatch, reference
from scalevgae.ops.validate import (
    check_csr,
    check_float_tensor,
    check_index_range,
    check_index_tensor,
    check_same_device,
    check_tensor,
)

_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


# ---------------------------------------------------------------------------------------------
# BCE arithmetic in torch (the Triton path and double backward): same formulas as decode_math.h
# ---------------------------------------------------------------------------------------------
def _softplus_neg(x: Tensor) -> Tensor:
    """softplus(-x) = log(1 + exp(-x)), exact and finite for any x (no threshold)."""
    return torch.log1p(torch.exp(-x.abs())) + torch.relu(-x)


def _bce_from_logits(x: Tensor, label: Tensor, pos_weight: float, reduction: int) -> tuple[Tensor, Tensor]:
    """(loss, dlogit) from logits [E]: the torch twin of the edge_bce kernel's epilogue."""
    lw = 1 + (pos_weight - 1) * label
    loss = (1 - label) * x + lw * _softplus_neg(x)
    dlogit = (1 - label) - lw * torch.sigmoid(-x)
    n = x.numel()
    if reduction == _REDUCTIONS["none"]:
        return loss, dlogit
    total = loss.sum()
    if reduction == _REDUCTIONS["mean"]:
        total = total / max(n, 1)
        dlogit = dlogit / max(n, 1)
    return total, dlogit


def _deterministic() -> bool:
    return torch.are_deterministic_algorithms_enabled()


# ---------------------------------------------------------------------------------------------
# Fake kernels and autograd of the compiled ops
# ---------------------------------------------------------------------------------------------
def _fake_edge_dot(z: Tensor, src: Tensor, dst: Tensor) -> Tensor:
    torch._check(z.dim() == 2, lambda: "z must be 2-D")
    return z.new_empty(src.shape[0], dtype=reference.acc_dtype(z.dtype))


def _fake_edge_bce(z: Tensor, src: Tensor, dst: Tensor, label: Tensor, pos_weight: float, reduction: int):
    torch._check(z.dim() == 2, lambda: "z must be 2-D")
    acc = reference.acc_dtype(z.dtype)
    e = src.shape[0]
    loss = z.new_empty((e,) if reduction == 0 else (), dtype=acc)
    return loss, z.new_empty(e, dtype=acc)


def _fake_edge_grad(coef: Tensor, z: Tensor, src: Tensor, dst: Tensor, deterministic: bool) -> Tensor:
    torch._check(z.dim() == 2, lambda: "z must be 2-D")
    return z.new_empty(z.shape)


def register_decode_ops(ns: str) -> None:
    """Register fake kernels and autograd for ``<ns>::edge_dot / edge_bce / edge_grad``.

    Backward formulas (the indices and labels are constants):
      edge_dot:  dz = edge_grad(grad, z)
      edge_bce:  dz = edge_grad(grad_loss * dlogit, z)   (dlogit, the op's 2nd output, is not
                 differentiable; under create_graph it is recomputed from differentiable ops)
      edge_grad: linear in coef and in z: dz = S(coef) z with S symmetric, so
                 d z = edge_grad(coef, g) and d coef[e] = <g_s, z_d> + <g_d, z_s>
                 = <(g+z)_s, (g+z)_d> - <g_s, g_d> - <z_s, z_d>  (three edge_dot calls).
    """
    lib = getattr(torch.ops, ns)
    torch.library.register_fake(f"{ns}::edge_dot")(_fake_edge_dot)
    torch.library.register_fake(f"{ns}::edge_bce")(_fake_edge_bce)
    torch.library.register_fake(f"{ns}::edge_grad")(_fake_edge_grad)

    def dot_setup(ctx, inputs, output):
        z, src, dst = inputs
        ctx.save_for_backward(z, src, dst)

    def dot_backward(ctx, grad):
        z, src, dst = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        acc = reference.acc_dtype(z.dtype)
        return lib.edge_grad(grad.to(acc).contiguous(), z, src, dst, _deterministic()), None, None

    torch.library.register_autograd(f"{ns}::edge_dot", dot_backward, setup_context=dot_setup)

    def bce_setup(ctx, inputs, output):
        z, src, dst, label, pos_weight, reduction = inputs
        ctx.save_for_backward(z, src, dst, label, output[1])
        ctx.pos_weight, ctx.reduction = pos_weight, reduction

    def bce_backward(ctx, grad_loss, grad_dlogit):
        z, src, dst, label, dlogit = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None, None
        if torch.is_grad_enabled() and z.requires_grad:
            # create_graph: rebuild dlogit from differentiable pieces so second derivatives hold.
            x = lib.edge_dot(z, src, dst)
            dlogit = _bce_from_logits(x, label, ctx.pos_weight, ctx.reduction)[1]
        coef = (grad_loss.to(dlogit.dtype) * dlogit).contiguous()
        dz = lib.edge_grad(coef, z, src, dst, _deterministic())
        return dz, None, None, None, None, None

    torch.library.register_autograd(f"{ns}::edge_bce", bce_backward, setup_context=bce_setup)

    def grad_setup(ctx, inputs, output):
        coef, z, src, dst, deterministic = inputs
        ctx.save_for_backward(coef, z, src, dst)
        ctx.deterministic = deterministic

    def grad_backward(ctx, g):
        coef, z, src, dst = ctx.saved_tensors
        dcoef = dz = None
        if ctx.needs_input_grad[0]:
            acc = coef.dtype
            ga, za = g.to(acc).contiguous(), z.to(acc)
            dcoef = lib.edge_dot(ga + za, src, dst) - lib.edge_dot(ga, src, dst) - lib.edge_dot(za, src, dst)
        if ctx.needs_input_grad[1]:
            dz = lib.edge_grad(coef, g.contiguous(), src, dst, ctx.deterministic)
        return dcoef, dz, None, None, None

    torch.library.register_autograd(f"{ns}::edge_grad", grad_backward, setup_context=grad_setup)


def _has_compiled_ops() -> bool:
    """Whether the loaded extension has the decode ops (a stale build may not)."""
    if not _ext.loaded():
        return False
    try:
        torch.ops.scalevgae.edge_dot  # noqa: B018
    except (AttributeError, RuntimeError):
        return False
    return True


_COMPILED_OPS = _has_compiled_ops()
if _COMPILED_OPS:
    register_decode_ops("scalevgae")


# ---------------------------------------------------------------------------------------------
# Triton backend (kernels from scalevgae/ops/triton/decode.py, imported lazily)
# ---------------------------------------------------------------------------------------------
_TRITON_MODULE = "scalevgae.ops.triton.decode"


def _triton_decode_status() -> tuple[bool, str]:
    try:
        found = importlib.util.find_spec(_TRITON_MODULE) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return False, f"{_TRITON_MODULE} (the Triton edge kernels) is not present in this install"
    return True, ""


def _triton_module() -> Any:
    try:
        return importlib.import_module(_TRITON_MODULE)
    except ImportError as e:
        raise RuntimeError(
            f"edge decoding: the triton backend is not usable: cannot import {_TRITON_MODULE} ({e})"
        ) from e


class _TritonEdgeDot(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, src: Tensor, dst: Tensor) -> Tensor:
        ctx.save_for_backward(z, src, dst)
        return _triton_module().edge_dot(z, src, dst)

    @staticmethod
    def backward(ctx, grad: Tensor):
        z, src, dst = ctx.saved_tensors
        coef = grad.to(reference.acc_dtype(z.dtype)).contiguous()
        return _triton_module().edge_grad(coef, z, src, dst, _deterministic()), None, None


class _TritonEdgeBCE(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, z: Tensor, src: Tensor, dst: Tensor, label: Tensor, pos_weight: float, reduction: int
    ) -> Tensor:
        x = _triton_module().edge_dot(z, src, dst)
        loss, dlogit = _bce_from_logits(x, label, pos_weight, reduction)
        ctx.save_for_backward(z, src, dst, dlogit)
        return loss

    @staticmethod
    def backward(ctx, grad: Tensor):
        z, src, dst, dlogit = ctx.saved_tensors
        coef = (grad.to(dlogit.dtype) * dlogit).contiguous()
        return _triton_module().edge_grad(coef, z, src, dst, _deterministic()), None, None, None, None, None


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def _resolve(op: str, device: torch.device, backend: Optional[str]) -> str:
    """dispatch.resolve, minus the backends whose decode kernels are absent from this install."""
    requested = backend if backend is not None else os.environ.get("SCALEVGAE_BACKEND") or None
    supported = list(dispatch.BACKENDS)
    ok, why = _triton_decode_status()
    if not ok:
        if requested == "triton":
            raise RuntimeError(f"{op}: backend 'triton' is not usable: {why}")
        supported.remove("triton")
    if _ext.loaded() and not _COMPILED_OPS:
        if requested in ("cpu", "cuda"):
            raise RuntimeError(
                f"{op}: backend {requested!r} is not usable: the compiled extension has no edge decoding "
                "ops (stale build; rebuild it)"
            )
        supported = [b for b in supported if b not in ("cpu", "cuda")]
    return dispatch.resolve(op, device, backend, supported=tuple(supported))


def _check_edges(z: Tensor, src: Tensor, dst: Tensor) -> tuple[Tensor, Tensor]:
    check_float_tensor(z, "z", dim=2)
    check_index_tensor(src, "src")
    check_index_tensor(dst, "dst")
    check_same_device(("z", z), ("src", src), ("dst", dst))
    if src.numel() != dst.numel():
        raise ValueError(f"src and dst must have the same length, got {src.numel()} and {dst.numel()}")
    if src.dtype != dst.dtype:
        src, dst = src.long(), dst.long()
    if not torch.compiler.is_compiling():  # O(E) value checks; data-dependent, skipped when traced
        check_index_range(src, z.size(0), "src")
        check_index_range(dst, z.size(0), "dst")
    return src, dst


def edge_logits(z: Tensor, src: Tensor, dst: Tensor, *, backend: Optional[str] = None) -> Tensor:
    """Inner-product decoder scores ``logits[e] = <z[src[e]], z[dst[e]]>``, differentiable in z.

    Args:
        z: ``[n, F]`` node embeddings (float32/float64; float16/bfloat16 accumulate in float32),
            any strides; ``n >= max(src, dst) + 1``.
        src, dst: ``[E]`` int32/int64 node indices in ``[0, n)`` (repeats and ``src == dst`` allowed).
        backend: "reference", "cpu", "cuda", "triton" or None (see ``scalevgae.ops.dispatch``).

    Returns:
        ``[E]`` logits in the accumulation dtype (float32; float64 for float64 z). The backward
        scatters ``grad[e] * z[other end]`` into dz without an E x F intermediate.
    """
    src, dst = _check_edges(z, src, dst)
    name = _resolve("edge_logits", z.device, backend)
    if name in ("cpu", "cuda"):
        return torch.ops.scalevgae.edge_dot(z, src, dst)
    if name == "triton":
        return _TritonEdgeDot.apply(z.contiguous(), src.contiguous(), dst.contiguous())
    return reference.edge_logits(z, src, dst)


def edge_bce_loss(
    z: Tensor,
    src: Tensor,
    dst: Tensor,
    label: Tensor,
    *,
    pos_weight: Optional[float] = None,
    reduction: str = "mean",
    backend: Optional[str] = None,
) -> Tensor:
    """Binary cross-entropy of the inner-product scores, fused with the dot products.

    ``loss[e] = BCEWithLogits(<z[src[e]], z[dst[e]]>, label[e]; pos_weight)``
    ``= (1 - y) x + (1 + (pos_weight - 1) y) softplus(-x)`` (torch's semantics, finite for any x),
    then reduced. Memory O(E): no gathered E x F rows in the forward or backward.

    Args:
        z: ``[n, F]`` embeddings (see ``edge_logits``). src, dst: ``[E]`` int32/int64 indices.
        label: ``[E]`` targets in [0, 1] (floating or bool; not differentiated).
        pos_weight: weight of the positive term (a Python float; None = 1).
        reduction: "mean" (E = 0 gives 0, not NaN), "sum" or "none".
        backend: "reference", "cpu", "cuda", "triton" or None.

    Returns:
        A scalar (mean/sum) or ``[E]`` (none), in the accumulation dtype. Differentiable in z
        (also twice, through the compiled ops).
    """
    src, dst = _check_edges(z, src, dst)
    check_tensor(label, "label")
    if not (label.is_floating_point() or label.dtype == torch.bool):
        raise TypeError(f"label must be a floating-point or bool tensor, got {label.dtype}")
    if label.dim() != 1 or label.numel() != src.numel():
        raise ValueError(f"label must have shape [{src.numel()}] (one per edge), got {tuple(label.shape)}")
    check_same_device(("z", z), ("label", label))
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {tuple(_REDUCTIONS)}, got {reduction!r}")
    if isinstance(pos_weight, Tensor):
        if pos_weight.numel() != 1:
            raise ValueError(f"pos_weight must be a scalar, got shape {tuple(pos_weight.shape)}")
        pos_weight = float(pos_weight)
    pw = 1.0 if pos_weight is None else float(pos_weight)
    name = _resolve("edge_bce_loss", z.device, backend)
    if name == "reference":
        return reference.edge_bce_loss(z, src, dst, label, pos_weight, reduction)
    acc = reference.acc_dtype(z.dtype)
    y = label.to(acc).contiguous()
    red = _REDUCTIONS[reduction]
    if name == "triton":
        return _TritonEdgeBCE.apply(z.contiguous(), src.contiguous(), dst.contiguous(), y, pw, red)
    return torch.ops.scalevgae.edge_bce(z, src, dst, y, pw, red)[0]


# ---------------------------------------------------------------------------------------------
# All-pairs reconstruction loss
# ---------------------------------------------------------------------------------------------
def _softplus_sum_tile(x: Tensor) -> Tensor:
    """sum softplus(x) (= BCE of every entry against label 0), one fused kernel, as float64."""
    zero = x.new_zeros(()).expand_as(x)
    return torch.nn.functional.binary_cross_entropy_with_logits(x, zero, reduction="sum").double()


class _AllPairsSoftplus(torch.autograd.Function):
    """sum_{i,j} softplus(z_i . z_j) over all N^2 ordered pairs, tile by tile.

    Forward and backward loop over tile pairs (I <= J, off-diagonal tiles counted twice by
    symmetry); the backward recomputes each tile: dz = 2 grad sigmoid(Z Z^T) Z.
    Memory O(N F + tile^2).
    """

    @staticmethod
    def forward(ctx, z: Tensor, tile: int) -> Tensor:
        acc = reference.acc_dtype(z.dtype)
        zs = z.detach().to(acc)
        n = zs.size(0)
        total = torch.zeros((), dtype=torch.float64, device=z.device)
        for i0 in range(0, n, tile):
            zi = zs[i0 : i0 + tile]
            for j0 in range(i0, n, tile):
                s = _softplus_sum_tile(zi @ zs[j0 : j0 + tile].T)
                total += s if j0 == i0 else 2 * s
        ctx.save_for_backward(z)
        ctx.tile = tile
        return total.to(acc)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        (z,) = ctx.saved_tensors
        tile = ctx.tile
        acc = reference.acc_dtype(z.dtype)
        zs = z.detach().to(acc)
        n = zs.size(0)
        g = torch.zeros_like(zs)
        for i0 in range(0, n, tile):
            zi = zs[i0 : i0 + tile]
            for j0 in range(i0, n, tile):
                zj = zs[j0 : j0 + tile]
                s = torch.sigmoid_(zi @ zj.T)
                g[i0 : i0 + tile].addmm_(s, zj)
                if j0 != i0:
                    g[j0 : j0 + tile].addmm_(s.T, zi)
        return (g.mul_(2 * grad.to(acc))).to(z.dtype), None


class _AllPairsSoftplusTriton(torch.autograd.Function):
    """Same value and gradient as ``_AllPairsSoftplus`` from the fused Triton tile kernels
    (scalevgae/ops/triton/all_pairs.py): tiles are reduced in registers, never stored."""

    @staticmethod
    def forward(ctx, z: Tensor) -> Tensor:
        from scalevgae.ops.triton import all_pairs as _tap

        ctx.save_for_backward(z)
        return _tap.softplus_pair_sum(z.detach())

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        from scalevgae.ops.triton import all_pairs as _tap

        (z,) = ctx.saved_tensors
        g = _tap.sigmoid_pair_matmul(z.detach())
        return g.mul_(2 * grad.to(g.dtype)).to(z.dtype)


def _tile_engine(z: Tensor, backend: Optional[str]) -> str:
    """'triton' (fused row kernels) or 'torch' (matmul tiles) for the dense part of the loss."""
    requested = backend if backend is not None else os.environ.get("SCALEVGAE_BACKEND") or None
    fits = z.size(1) > 0
    if requested == "triton":
        return "triton" if fits else "torch"
    if requested is None and z.is_cuda and fits and dispatch._status("triton", "cuda").usable:
        return "triton"
    return "torch"


def positive_pairs(rowptr: Tensor, col: Tensor, add_self_loops: bool = True) -> tuple[Tensor, Tensor]:
    """The distinct positive pairs of ``1[A + I > 0]`` as int64 ``(src [P], dst [P])``."""
    n = rowptr.numel() - 1
    key = reference.csr_rows(rowptr) * n + col.long()
    if add_self_loops:
        key = torch.cat([key, torch.arange(n, device=key.device) * (n + 1)])
    key = torch.unique(key)
    return torch.div(key, max(n, 1), rounding_mode="floor"), key % max(n, 1)


def all_pairs_bce_loss(
    z: Tensor,
    rowptr: Tensor,
    col: Tensor,
    *,
    pos_weight: Optional[float] = None,
    add_self_loops: bool = True,
    tile: int = 2048,
    backend: Optional[str] = None,
) -> Tensor:
    """The exact full-graph VGAE reconstruction term, without the N x N matrix.

    With ``Y = 1[A + I > 0]`` (``I`` only if `add_self_loops`; duplicate entries count once),
    ``P = sum Y`` and ``x_ij = z_i . z_j``, returns

        ``L = (1 / N^2) sum_{i,j} BCEWithLogits(x_ij, Y_ij; pos_weight)``,
        ``pos_weight = (N^2 - P) / P`` by default,

    i.e. ``mean(weighted_cross_entropy_with_logits(logits, labels, pos_weight))`` of tkipf/gae.
    Kipf's cost also multiplies by ``norm = N^2 / (2 (N^2 - P))``; that factor is not applied
    here (multiply by it to reproduce his loss scale exactly).

    Computed as ``sum_{all i,j} softplus(x_ij)`` (every pair as a negative) in tiles of
    ``tile x tile`` pairs scored with a matmul and reduced on the spot (backward recomputes the
    tiles), plus a sparse correction over the P positives through ``edge_logits``:
    ``pos_weight * softplus(-x) - softplus(x)``. Memory O(N F + tile^2 + P).

    Args:
        z: ``[N, F]`` embeddings, N = rowptr.numel() - 1.
        rowptr, col: the adjacency ``A`` as a CSR (``[N + 1]``, ``[nnz]``).
        pos_weight: positive weight (float) or None for ``(N^2 - P) / P``.
        add_self_loops: label the diagonal positive (``A + I``, as in the paper).
        tile: tile edge length of the torch tiles (pairs per tile = tile^2).
        backend: backend of the sparse correction. The dense part runs as torch matmul tiles,
            or as fused Triton row kernels (``scalevgae/ops/triton/all_pairs.py``) when
            backend is "triton", or by default on CUDA when Triton is usable.

    Returns:
        Scalar loss in the accumulation dtype, differentiable in z (first order).
    """
    check_float_tensor(z, "z", dim=2)
    check_same_device(("z", z), ("rowptr", rowptr), ("col", col))
    n = rowptr.numel() - 1 if isinstance(rowptr, Tensor) else -1
    check_csr(rowptr, col, n)
    if z.size(0) != n:
        raise ValueError(f"z must have one row per node: z.size(0) = {z.size(0)} but rowptr has {n} rows")
    if not isinstance(tile, int) or tile <= 0:
        raise ValueError(f"tile must be a positive int, got {tile!r}")
    acc = reference.acc_dtype(z.dtype)
    if n == 0:
        return z.sum(dtype=acc) * 0
    src, dst = positive_pairs(rowptr, col, add_self_loops)
    n2, p = float(n) * n, src.numel()
    if pos_weight is None:
        pos_weight = (n2 - p) / p if p > 0 else 1.0
    pw = float(pos_weight)
    if _tile_engine(z, backend) == "triton":
        neg = _AllPairsSoftplusTriton.apply(z)
    else:
        neg = _AllPairsSoftplus.apply(z, tile)
    x = edge_logits(z, src, dst, backend=backend)
    corr = (pw * _softplus_neg(x) - _softplus_neg(-x)).sum()
    return (neg + corr) / n2
