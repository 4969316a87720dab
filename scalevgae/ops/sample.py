"""The sampling ops: ``sample_adj`` (one hop of per-row sampling), ``neighbor_sample`` (the whole
k-hop sample, CPU only), ``csr_has_pairs`` (edge membership by binary search) and
``sample_aggregate`` (the input layer's sample and its feature aggregation in one pass).

Kernels: csrc/cpu/sample.cpp and csrc/cuda/sample.cu (schemas in csrc/ops.cpp), registered in the
namespace ``scalevgae`` and, for the CUDA sources on CPU tensors, ``scalevgae_cuda_sim``. The
outputs are integer or bool (nothing to differentiate), so only fake kernels are registered here,
for every namespace, but for ``sample_aggregate``, which also gets its autograd formula. The user-facing samplers are in ``scalevgae.sampling``; ground truth in
``reference`` (the same random numbers, so every backend returns identical samples).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from scalevgae import _ext
from scalevgae.ops import dispatch, reference

# The backends with sampling kernels (no Triton sampler).
BACKENDS = ("reference", "cpu", "cuda", "cuda_sim")


def _fake_sample_adj(rowptr, col, nodes, fanout, replace, seed, hop):
    ctx = torch.library.get_ctx()
    return nodes.new_empty(nodes.size(0) + 1), nodes.new_empty(ctx.new_dynamic_size())


def _fake_neighbor_sample(rowptr, col, seeds, fanouts, replace, seed):
    ctx = torch.library.get_ctx()
    n_id = seeds.new_empty(ctx.new_dynamic_size())
    hop_ptr = seeds.new_empty(len(fanouts) + 1)
    rowptrs = [seeds.new_empty(ctx.new_dynamic_size()) for _ in fanouts]
    cols = [seeds.new_empty(ctx.new_dynamic_size()) for _ in fanouts]
    return n_id, hop_ptr, rowptrs, cols


def _fake_csr_has_pairs(rowptr, col, src, dst):
    return src.new_empty(src.shape, dtype=torch.bool)


def _fake_sample_aggregate(rowptr, col, nodes, x, norm, fanout, replace, seed, hop):
    torch._check(x.dim() == 2, lambda: "x must be 2-D")
    return x.new_empty(nodes.size(0), x.size(1))


for _name, _fake in (("sample_adj", _fake_sample_adj), ("neighbor_sample", _fake_neighbor_sample),
                     ("csr_has_pairs", _fake_csr_has_pairs), ("sample_aggregate", _fake_sample_aggregate)):
    for _op in _ext.qualified_ops(_name):
        torch.library.register_fake(_op)(_fake)


def _register_sample_aggregate_autograd(op_name: str) -> None:
    """Backward of a sample_aggregate-schema op with respect to x (the graph and norm are constants).

    The sample is not kept: the same namespace's ``sample_adj`` draws it again (the RNG is
    counter-based, so it is the same sample). With g = grad [n, F]:
    ``dx[v_i] += c_v^2 g[i]`` and ``dx[u] += c_u scale_i g[i]`` for every u in S_i.
    """
    ns = op_name.split("::")[0]

    def setup_context(ctx, inputs, output):
        rowptr, col, nodes, x, norm, fanout, replace, seed, hop = inputs
        ctx.save_for_backward(rowptr, col, nodes, norm)
        ctx.args = (fanout, replace, seed, hop)
        ctx.n_src = x.size(0)

    def backward(ctx, grad):
        rowptr, col, nodes, norm = ctx.saved_tensors
        dx = None
        if ctx.needs_input_grad[3]:
            out_rp, gcol = getattr(torch.ops, ns).sample_adj(rowptr, col, nodes, *ctx.args)
            self_w, scale = reference.sample_aggregate_weights(rowptr, nodes, out_rp, norm)
            g = grad.to(norm.dtype)
            rows = reference.csr_rows(out_rp)
            dx = torch.zeros(ctx.n_src, grad.size(1), dtype=norm.dtype, device=grad.device)
            dx.index_add_(0, nodes, self_w[:, None] * g)
            dx.index_add_(0, gcol, (norm[gcol] * scale[rows])[:, None] * g[rows])
            dx = dx.to(grad.dtype)
        return None, None, None, dx, None, None, None, None, None

    torch.library.register_autograd(op_name, backward, setup_context=setup_context)


for _op in _ext.qualified_ops("sample_aggregate"):
    _register_sample_aggregate_autograd(_op)


def sample_adj(rowptr: Tensor, col: Tensor, nodes: Tensor, fanout: int, replace: bool, seed: int, hop: int,
               *, backend: str) -> tuple[Tensor, Tensor]:
    """One hop: row i samples node ``nodes[i]`` with the RNG stream (seed, hop, nodes[i]).

    rowptr [N+1], col [nnz] (int32/int64), nodes [n] int64 -> (out_rowptr [n+1] int64,
    out_col [k] int64 global neighbor ids). ``backend`` is an already resolved name.
    """
    if backend == "reference":
        return reference.sample_adj(rowptr, col, nodes, fanout, replace, seed, hop)
    return dispatch.ops_of(backend).sample_adj(rowptr, col, nodes, fanout, replace, seed, hop)


def neighbor_sample(rowptr: Tensor, col: Tensor, seeds: Tensor, fanouts: Sequence[int], replace: bool,
                    seed: int) -> tuple[Tensor, Tensor, list[Tensor], list[Tensor]]:
    """The whole k-hop sample in one CPU kernel: (n_id [M], hop_ptr [H+1], rowptrs, cols local)."""
    n_id, hop_ptr, rowptrs, cols = dispatch.ops_of("cpu").neighbor_sample(rowptr, col, seeds, list(fanouts),
                                                                         replace, seed)
    return n_id, hop_ptr, list(rowptrs), list(cols)


def csr_has_pairs(rowptr: Tensor, col: Tensor, src: Tensor, dst: Tensor, *, backend: str) -> Tensor:
    """[K] bool: (src[k], dst[k]) is a stored entry of the CSR with sorted rows (values unchecked)."""
    if backend == "reference":
        return reference.csr_has_pairs(rowptr, col, src, dst)
    return dispatch.ops_of(backend).csr_has_pairs(rowptr, col, src.long(), dst.long())


def sample_aggregate(rowptr: Tensor, col: Tensor, nodes: Tensor, x: Tensor, norm: Tensor, fanout: int,
                     replace: bool, seed: int, hop: int, *, backend: str) -> Tensor:
    """The input layer's sample and aggregation in one pass (the sampled edges are never stored):
    row i samples v = nodes[i] as :func:`sample_adj` does (S_i, k_i entries) and is
    ``c_v^2 x[v] + c_v (d_v / k_i) sum_{u in S_i} c_u x[u]`` with c = norm.

    rowptr [N+1], col [nnz] (int32/int64), nodes [n] int64, x [N, F] floating, norm [N] in x's
    accumulation dtype -> [n, F] x.dtype. Differentiable in x. ``backend`` is an already resolved
    name.
    """
    if backend == "reference":
        return reference.sample_aggregate(rowptr, col, nodes, x, norm, fanout, replace, seed, hop)
    return dispatch.ops_of(backend).sample_aggregate(rowptr, col, nodes, x, norm, fanout, replace, seed, hop)
