"""The exact full-graph VGAE reconstruction loss over all N^2 pairs, without the N x N matrix.

The dense part (every pair as a negative) is the op ``all_pairs_softplus`` (schema in
csrc/ops.cpp; C++ csrc/cpu/all_pairs.cpp, CUDA csrc/cuda/all_pairs.cu, one pass over the pairs
that returns the loss and its gradient), the fused Triton row kernels of
``scalevgae/ops/triton/all_pairs.py`` (the default on GPU), or torch matmul tiles (the
``reference`` backend); the sparse correction over the positives goes through
``decode.edge_logits``. Ground truth: ``reference.all_pairs_bce_loss_dense``.
"""

from __future__ import annotations

import os
from typing import Optional

import torch
from torch import Tensor

from scalevgae import _ext
from scalevgae._util import acc_dtype, csr_rows
from scalevgae.ops import dispatch
from scalevgae.ops.decode import edge_logits, softplus_neg
from scalevgae.ops.validate import check_csr, check_float_tensor, check_same_device


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
        acc = acc_dtype(z.dtype)
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
        acc = acc_dtype(z.dtype)
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


KERNELS = ("all_pairs_softplus",)


def _fake_all_pairs_softplus(z: Tensor, need_grad: bool) -> tuple[Tensor, Tensor]:
    torch._check(z.dim() == 2, lambda: "z must be 2-D")
    acc = acc_dtype(z.dtype)
    grad = z.new_empty(z.shape if need_grad else (0, z.shape[1]), dtype=acc)
    return z.new_empty((), dtype=torch.float64), grad


def register_all_pairs_op(ns: str) -> None:
    """Fake kernel and autograd of ``<ns>::all_pairs_softplus``: the forward already returns the
    gradient (it is computed in the same pass over the pairs), so the backward only scales it."""
    torch.library.register_fake(f"{ns}::all_pairs_softplus")(_fake_all_pairs_softplus)

    def setup(ctx, inputs, output):
        z, need_grad = inputs
        ctx.need_grad, ctx.z_dtype = need_grad, z.dtype
        ctx.save_for_backward(output[1])

    def backward(ctx, grad_loss, grad_grad):
        if not ctx.needs_input_grad[0]:
            return None, None
        if not ctx.need_grad:
            raise RuntimeError("all_pairs_softplus was called with need_grad=False; call it with need_grad=True "
                               "to differentiate it")
        (g,) = ctx.saved_tensors
        return (g * grad_loss.to(g.dtype)).to(ctx.z_dtype), None

    torch.library.register_autograd(f"{ns}::all_pairs_softplus", backward, setup_context=setup)


for _ns in _ext.namespaces():
    if all(_ext.has_op(k, _ns) for k in KERNELS):
        register_all_pairs_op(_ns)


def _tile_engine(z: Tensor, backend: Optional[str]) -> str:
    """What computes the dense part of the loss: "triton" (fused row kernels), a compiled backend
    ("cpu", "cuda", "cuda_sim": the all_pairs_softplus op) or "torch" (matmul tiles, the
    reference backend and the fallback of a build without the op)."""
    requested = backend if backend is not None else os.environ.get("SCALEVGAE_BACKEND") or None
    fits = z.size(1) > 0
    if requested == "triton" or (requested is None and z.is_cuda and dispatch._status("triton", "cuda").usable):
        return "triton" if fits else "torch"
    if requested is not None and requested not in dispatch.COMPILED:
        return "torch"
    name = dispatch.resolve("all_pairs_bce_loss", z.device, requested, kernels=KERNELS)
    return "torch" if name == "reference" else name


def positive_pairs(rowptr: Tensor, col: Tensor, add_self_loops: bool = True) -> tuple[Tensor, Tensor]:
    """The distinct positive pairs of ``1[A + I > 0]`` as int64 ``(src [P], dst [P])``."""
    n = rowptr.numel() - 1
    key = csr_rows(rowptr) * n + col.long()
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

    Computed as ``sum_{all i,j} softplus(x_ij)`` (every pair as a negative) plus a sparse
    correction over the P positives through ``edge_logits``: ``pos_weight * softplus(-x) -
    softplus(x)``. The dense sum runs, by backend: "cpu"/"cuda"/"cuda_sim" (the default on CPU)
    as the ``all_pairs_softplus`` op, one pass over the pairs that also returns the gradient;
    "triton" (the default on CUDA when Triton is usable) as fused row kernels; "reference" as
    ``tile x tile`` torch matmul tiles reduced on the spot (the backward recomputes them).
    Memory O(N F + P) (+ tile^2 for the torch tiles).

    Args:
        z: ``[N, F]`` embeddings, N = rowptr.numel() - 1.
        rowptr, col: the adjacency ``A`` as a CSR (``[N + 1]``, ``[nnz]``).
        pos_weight: positive weight (float) or None for ``(N^2 - P) / P``.
        add_self_loops: label the diagonal positive (``A + I``, as in the paper).
        tile: tile edge length of the torch tiles (pairs per tile = tile^2); only the torch
            tiles use it.
        backend: "reference", "cpu", "cuda", "triton", "cuda_sim" or None (the dense part as
            above; the sparse correction through ``edge_logits`` with the same backend).

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
    acc = acc_dtype(z.dtype)
    if n == 0:
        return z.sum(dtype=acc) * 0
    src, dst = positive_pairs(rowptr, col, add_self_loops)
    n2, p = float(n) * n, src.numel()
    if pos_weight is None:
        pos_weight = (n2 - p) / p if p > 0 else 1.0
    pw = float(pos_weight)
    engine = _tile_engine(z, backend)
    if engine == "triton":
        neg = _AllPairsSoftplusTriton.apply(z)
    elif engine == "torch":
        neg = _AllPairsSoftplus.apply(z, tile)
    else:
        need_grad = z.requires_grad and torch.is_grad_enabled()
        neg = dispatch.ops_of(engine).all_pairs_softplus(z, need_grad)[0].to(acc)
    x = edge_logits(z, src, dst, backend=backend)
    corr = (pw * softplus_neg(x) - softplus_neg(-x)).sum()
    return (neg + corr) / n2
