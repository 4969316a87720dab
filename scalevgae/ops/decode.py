"""Fused inner-product decoding: edge scores and the BCE loss over sampled pairs.

The kernels are the ops ``edge_dot / edge_bce / edge_grad`` (schemas in csrc/ops.cpp) in the
namespaces ``scalevgae`` (C++ csrc/cpu/decode.cpp and CUDA csrc/cuda/decode.cu, arithmetic in
csrc/decode_math.h), ``scalevgae_cuda_sim`` (the CUDA source on CPU tensors, tests) and
``scalevgae_triton`` (scalevgae/ops/triton/decode.py); the ground truth is in ``reference``.
Fake kernels and autograd are registered here, by one function, for every namespace.
Extra memory is O(E): the forward never gathers E x F rows and the backward scatters
``dloss/dlogit * z[other end]`` straight into dz.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from scalevgae import _ext
from scalevgae._util import acc_dtype
from scalevgae.ops import dispatch, reference
from scalevgae.ops.validate import (
    check_float_tensor,
    check_index_range,
    check_index_tensor,
    check_same_device,
    check_tensor,
)

_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}
KERNELS = ("edge_dot", "edge_bce", "edge_grad")


# ---------------------------------------------------------------------------------------------
# BCE arithmetic in torch (the Triton path and double backward): same formulas as decode_math.h
# ---------------------------------------------------------------------------------------------
def softplus_neg(x: Tensor) -> Tensor:
    """softplus(-x) = log(1 + exp(-x)), exact and finite for any x (no threshold)."""
    return torch.log1p(torch.exp(-x.abs())) + torch.relu(-x)


def bce_from_logits(x: Tensor, label: Tensor, pos_weight: float, reduction: int) -> tuple[Tensor, Tensor]:
    """(loss, dlogit) from logits [E]: the torch twin of the edge_bce kernel's epilogue."""
    lw = 1 + (pos_weight - 1) * label
    loss = (1 - label) * x + lw * softplus_neg(x)
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
# Fake kernels and autograd of the ops (every namespace)
# ---------------------------------------------------------------------------------------------
def _fake_edge_dot(z: Tensor, src: Tensor, dst: Tensor) -> Tensor:
    torch._check(z.dim() == 2, lambda: "z must be 2-D")
    return z.new_empty(src.shape[0], dtype=acc_dtype(z.dtype))


def _fake_edge_bce(z: Tensor, src: Tensor, dst: Tensor, label: Tensor, pos_weight: float, reduction: int):
    torch._check(z.dim() == 2, lambda: "z must be 2-D")
    acc = acc_dtype(z.dtype)
    e = src.shape[0]
    loss = z.new_empty((e,) if reduction == 0 else (), dtype=acc)
    return loss, z.new_empty(e, dtype=acc)


def _fake_edge_grad(coef: Tensor, z: Tensor, src: Tensor, dst: Tensor, deterministic: bool) -> Tensor:
    torch._check(z.dim() == 2, lambda: "z must be 2-D")
    return z.new_empty(z.shape)


def register_decode_ops(ns: str) -> None:
    """Register fake kernels and autograd for ``<ns>::edge_dot / edge_bce / edge_grad``.

    Backward formulas (the indices and labels are constants); each calls the ops of ``ns``:
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
        acc = acc_dtype(z.dtype)
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
            dlogit = bce_from_logits(x, label, ctx.pos_weight, ctx.reduction)[1]
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


for _ns in _ext.namespaces():
    if all(_ext.has_op(k, _ns) for k in KERNELS):
        register_decode_ops(_ns)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def _ops(backend: str) -> Any:
    """``torch.ops.<ns>`` holding the decode kernels of a kernel backend."""
    if backend == "triton":
        from scalevgae.ops.triton import decode as _td  # registers scalevgae_triton::edge_*

        return _td.ops()
    return dispatch.ops_of(backend)


def resolve(op: str, device: torch.device, backend: Optional[str]) -> str:
    """The backend that runs decode op `op` (see ``dispatch.resolve``)."""
    return dispatch.resolve(op, device, backend, kernels=KERNELS)


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
        backend: "reference", "cpu", "cuda", "triton", "cuda_sim" or None (see ``scalevgae.ops.dispatch``).

    Returns:
        ``[E]`` logits in the accumulation dtype (float32; float64 for float64 z). The backward
        scatters ``grad[e] * z[other end]`` into dz without an E x F intermediate.
    """
    src, dst = _check_edges(z, src, dst)
    name = resolve("edge_logits", z.device, backend)
    if name == "reference":
        return reference.edge_logits(z, src, dst)
    return _ops(name).edge_dot(z, src, dst)


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
        backend: "reference", "cpu", "cuda", "triton", "cuda_sim" or None.

    Returns:
        A scalar (mean/sum) or ``[E]`` (none), in the accumulation dtype. Differentiable in z
        (also twice, through the registered ops).
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
    name = resolve("edge_bce_loss", z.device, backend)
    if name == "reference":
        return reference.edge_bce_loss(z, src, dst, label, pos_weight, reduction)
    y = label.to(acc_dtype(z.dtype)).contiguous()
    return _ops(name).edge_bce(z, src, dst, y, pw, _REDUCTIONS[reduction])[0]
