"""Edge membership of node pairs: a binary search per CSR row, never a dense mask.

Kernel: the op ``csr_has_pairs`` (scalevgae/ops/sample.py; CPU and CUDA); the reference
(``reference.csr_has_pairs``) is a vectorized binary search in torch that only keeps the
still-unresolved queries each round.
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor

from scalevgae.graph import Graph
from scalevgae.ops import dispatch, sample
from scalevgae.ops.reference import csr_has_pairs as has_pairs_reference  # noqa: F401  (kept for callers)
from scalevgae.ops.validate import check_index_range, check_index_tensor


def _has_pairs(graph: Graph, src: Tensor, dst: Tensor, backend: Optional[str] = None) -> Tensor:
    name = dispatch.resolve("has_pairs", graph.device, backend, supported=sample.BACKENDS,
                            kernels=("csr_has_pairs",))
    return sample.csr_has_pairs(graph.rowptr, graph.col, src, dst, backend=name)


def has_pairs(graph: Graph, src: Tensor, dst: Tensor, *, backend: Optional[str] = None) -> Tensor:
    """Whether each pair ``(src[k], dst[k])`` is an edge of ``graph``: ``[K]`` bool.

    src, dst: ``[K]`` int32/int64 node ids on the graph's device.
    """
    check_index_tensor(src, "src")
    check_index_tensor(dst, "dst")
    if src.numel() != dst.numel():
        raise ValueError(f"src and dst must have the same length, got {src.numel()} and {dst.numel()}")
    for name, t in (("src", src), ("dst", dst)):
        if t.device != graph.device:
            raise ValueError(f"{name} is on {t.device} but the graph is on {graph.device}")
        check_index_range(t, graph.num_nodes, name)
    return _has_pairs(graph, src, dst, backend)
