"""The sampling ops: ``sample_adj`` (one hop of per-row sampling), ``neighbor_sample`` (the whole
k-hop sample, CPU only) and ``csr_has_pairs`` (edge membership by binary search).

Kernels: csrc/cpu/sample.cpp and csrc/cuda/sample.cu (schemas in csrc/ops.cpp), registered in the
namespace ``scalevgae`` and, for the CUDA sources on CPU tensors, ``scalevgae_cuda_sim``. The
outputs are integer or bool (nothing to differentiate), so only fake kernels are registered here,
for every namespace. The user-facing samplers are in ``scalevgae.sampling``; ground truth in
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


for _name, _fake in (("sample_adj", _fake_sample_adj), ("neighbor_sample", _fake_neighbor_sample),
                     ("csr_has_pairs", _fake_csr_has_pairs)):
    for _op in _ext.qualified_ops(_name):
        torch.library.register_fake(_op)(_fake)


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
