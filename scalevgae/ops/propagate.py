"""gcn_propagate: fused normalized propagation y = act(D_dst (A + I) D_src x + bias).

The C++/CUDA kernels are ``torch.ops.scalevgae.gcn_spmm`` (csrc/*/propagate.*; the CUDA sources
also as ``torch.ops.scalevgae_cuda_sim.gcn_spmm`` on CPU tensors), the Triton kernel
``torch.ops.scalevgae_triton.gcn_spmm`` (ops/triton/propagate.py) and the ground truth
``reference.gcn_spmm``. Autograd and fake kernels are registered here, by one function, for each.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from scalevgae import _ext
from scalevgae._util import acc_dtype
from scalevgae.csr import csr_transpose, gcn_norm
from scalevgae.ops import dispatch, reference
from scalevgae.ops.validate import (
    check_csr,
    check_float_tensor,
    check_index_tensor,
    check_same_device,
)

_ACTIVATIONS = (None, "relu")


def _fake_gcn_spmm(rowptr, col, x, dst_scale, src_scale, self_loops, bias, relu, t_rowptr, t_col, self_scale=None):
    torch._check(x.dim() == 2, lambda: "x must be 2-D")
    torch._check(self_scale is None or self_loops, lambda: "self_scale needs self_loops=True")
    return x.new_empty(rowptr.size(0) - 1, x.size(1))


def register_gcn_spmm(op_name: str) -> None:
    """Register the fake kernel and the autograd formula of a gcn_spmm-schema op.

    Backward (the graph and the scales are constants):
      g = grad * (y > 0) if relu (one fused pass, no mask tensor);  dbias = sum_i g[i];
      dx = D_src (A + I)^T D_dst g  -- the same op on the transposed CSR with the scales swapped;
      with a self_scale S: dx = D_src A^T D_dst g + S g, i.e. the same self_scale on the transpose
      (whose rows are the sources; source j < n_dst gets S[j] g[j]).
    """
    op = getattr(getattr(torch.ops, op_name.split("::")[0]), op_name.split("::")[1])
    torch.library.register_fake(op_name)(_fake_gcn_spmm)

    def setup_context(ctx, inputs, output):
        rowptr, col, x, dst_scale, src_scale, self_loops, bias, relu, t_rowptr, t_col, self_scale = inputs
        # relu: the output itself is the mask (y > 0); a GCN keeps it alive for the next layer anyway.
        ctx.save_for_backward(rowptr, col, dst_scale, src_scale, t_rowptr, t_col, self_scale,
                              output if relu else None)
        ctx.self_loops, ctx.relu, ctx.n_src = self_loops, relu, x.size(0)

    def backward(ctx, grad):
        rowptr, col, dst_scale, src_scale, t_rowptr, t_col, self_scale, out = ctx.saved_tensors
        # relu'(y) applied in one pass without a bool mask tensor (what torch.relu's backward runs).
        g = torch.ops.aten.threshold_backward(grad, out, 0) if ctx.relu else grad
        dx = dbias = None
        if ctx.needs_input_grad[2]:
            if t_rowptr is None or t_col is None:
                t_rowptr, t_col = csr_transpose(rowptr, col, ctx.n_src)
            # the transpose's destinations are the sources: the scales swap roles
            dx = op(t_rowptr, t_col, g.contiguous(), src_scale, dst_scale, ctx.self_loops, None, False, rowptr, col,
                    self_scale)
        if ctx.needs_input_grad[6]:
            dbias = g.sum(0, dtype=acc_dtype(g.dtype))
        grads = (None, None, dx, None, None, None, dbias, None, None, None, None)
        # The dispatcher drops a trailing self_scale=None (its default) from the inputs.
        return grads[: len(ctx.needs_input_grad)]

    torch.library.register_autograd(op_name, backward, setup_context=setup_context)


for _op in _ext.qualified_ops("gcn_spmm"):
    register_gcn_spmm(_op)


def _impl(backend: str) -> Callable[..., Tensor]:
    if backend in dispatch.COMPILED:
        return dispatch.ops_of(backend).gcn_spmm
    if backend == "triton":
        from scalevgae.ops.triton import propagate as _tp  # registers scalevgae_triton::gcn_spmm

        return _tp.gcn_spmm
    return lambda rp, c, x, rs, cs, sl, b, r, trp, tc, ss=None: reference.gcn_spmm(rp, c, x, rs, cs, sl, b, r, ss)


def _acc_vector(t: Optional[Tensor], name: str, n: int, what: str, acc: torch.dtype) -> Optional[Tensor]:
    """A scale or bias argument: a 1-D float tensor of ``n`` entries (``what`` says which size),
    returned in the accumulation dtype ``acc``, contiguous, as the kernels take it. None stays None."""
    if t is None:
        return None
    check_float_tensor(t, name, dim=1)
    if t.numel() != n:
        raise ValueError(f"{name} must have shape [{n}] ({what}), got {tuple(t.shape)}")
    return t.to(acc).contiguous()


def gcn_propagate(
    rowptr: Tensor,
    col: Tensor,
    x: Tensor,
    *,
    src_scale: Optional[Tensor] = None,
    dst_scale: Optional[Tensor] = None,
    self_scale: Optional[Tensor] = None,
    add_self_loops: bool = True,
    bias: Optional[Tensor] = None,
    activation: Optional[str] = None,
    backend: Optional[str] = None,
    transpose: Optional[tuple[Tensor, Tensor]] = None,
    symmetric: bool = False,
    validate: bool = True,
) -> Tensor:
    """Normalized GCN propagation, fused: one pass over the CSR, no E x F intermediate.

    ``y[i] = act(dst_scale[i] * (sum_{e in row i} src_scale[col[e]] * x[col[e]]
    + [add_self_loops] src_scale[i] * x[i]) + bias)``, or with a per-row self-loop weight
    ``y[i] = act(dst_scale[i] * sum_{e in row i} src_scale[col[e]] * x[col[e]]
    + self_scale[i] * x[i] + bias)`` (sampled blocks: ``self_scale = c_i^2``).

    Args:
        rowptr: ``[n_dst + 1]`` int32/int64 CSR row pointers (destinations).
        col: ``[nnz]`` source indices, same dtype as ``rowptr``, each in ``[0, n_src)``.
        x: ``[n_src, F]`` features, ``n_src >= n_dst``; destination ``i`` is source ``i``
            (sampled blocks list their destinations first among the sources).
        src_scale: ``[n_src]`` per-source scale. dst_scale: ``[n_dst]`` per-destination scale.
            Both None on a square graph: ``(deg + 1)^-1/2`` from the CSR, i.e. Kipf's
            ``D̃^-1/2 (A + I) D̃^-1/2 x``. A bipartite input needs them explicitly.
        self_scale: ``[n_dst]`` weight of row i's self loop, added after ``dst_scale`` (fused; no
            extra pass or ``[n_dst, F]`` tensor). Needs ``add_self_loops=True``. Default None:
            the self loop weighs ``dst_scale[i] * src_scale[i]``.
        add_self_loops: add the ``i -> i`` term.
        bias: ``[F]`` added after scaling. activation: None or ``"relu"``.
        backend: "reference", "cpu", "cuda", "triton", "cuda_sim" or None (see ``dispatch``).
        transpose: the transposed CSR ``(rowptr_t [n_src+1], col_t [nnz])`` for the backward,
            if the caller has it cached. symmetric: the caller declares ``A`` symmetric (square),
            so the backward reuses ``(rowptr, col)`` itself.
        validate: run the O(nnz) value checks (ranges, monotone rowptr). Graph passes False for
            graphs it already validated.

    Returns:
        ``[n_dst, F]`` tensor of ``x.dtype`` (accumulated in float32, float64 for float64).
    """
    check_index_tensor(rowptr, "rowptr")
    check_index_tensor(col, "col")
    check_float_tensor(x, "x", dim=2)
    check_same_device(("x", x), ("rowptr", rowptr), ("col", col), ("src_scale", src_scale),
                      ("dst_scale", dst_scale), ("self_scale", self_scale), ("bias", bias))
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
    n_dst, n_src = rowptr.numel() - 1, x.size(0)
    if n_src < n_dst:
        raise ValueError(f"x has {n_src} rows but the CSR has {n_dst} destination rows (need n_src >= n_dst)")
    # The value checks read tensor data: skipped while torch.compile traces (fullgraph-safe).
    validate = validate and not torch.compiler.is_compiling()
    if validate:
        check_csr(rowptr, col, n_src)
    acc = acc_dtype(x.dtype)
    if src_scale is None and dst_scale is None:
        if n_src != n_dst:
            raise ValueError("a bipartite input (x.size(0) > rowptr.numel() - 1) needs src_scale and dst_scale")
        src_scale = dst_scale = gcn_norm(rowptr, acc)
    src_scale = _acc_vector(src_scale, "src_scale", n_src, "x.size(0)", acc)
    dst_scale = _acc_vector(dst_scale, "dst_scale", n_dst, "rowptr.numel() - 1", acc)
    if self_scale is not None and not add_self_loops:
        raise ValueError("self_scale needs add_self_loops=True (it is the weight of the self loop)")
    self_scale = _acc_vector(self_scale, "self_scale", n_dst, "rowptr.numel() - 1", acc)
    bias = _acc_vector(bias, "bias", x.size(1), "x.size(1)", acc)
    t_rowptr = t_col = None
    if transpose is not None:
        t_rowptr, t_col = transpose
        check_index_tensor(t_rowptr, "transpose rowptr")
        check_index_tensor(t_col, "transpose col")
        if t_rowptr.numel() != n_src + 1 or t_col.numel() != col.numel():
            raise ValueError(
                f"transpose must be (rowptr [{n_src + 1}], col [{col.numel()}]), got "
                f"({tuple(t_rowptr.shape)}, {tuple(t_col.shape)})"
            )
        if validate:
            check_csr(t_rowptr, t_col, n_dst, prefix="transpose ")
    elif symmetric:
        if n_src != n_dst:
            raise ValueError("symmetric=True needs a square graph")
        t_rowptr, t_col = rowptr, col
    name = dispatch.resolve("gcn_propagate", x.device, backend, kernels=("gcn_spmm",))
    return _impl(name)(rowptr, col, x.contiguous(), dst_scale, src_scale, add_self_loops, bias,
                       activation == "relu", t_rowptr, t_col, self_scale)
