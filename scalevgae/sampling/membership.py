"""Edge membership of node pairs: a binary search per CSR row, never a dense mask.

Kernel: ``torch.ops.scalevgae.csr_has_pairs`` (CPU and CUDA); the reference is a vectorized
binary search in torch that only keeps the still-unresolved queries each round.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from scalevgae import _ext
from scalevgae.graph import Graph
from scalevgae.ops import dispatch
from scalevgae.ops.validate import check_index_range, check_index_tensor


def _has_op(name: str) -> bool:
    """The compiled extension is loaded and has `name` (a stale build may not)."""
    return _ext.loaded() and hasattr(torch.ops.scalevgae, name)


if _has_op("csr_has_pairs"):
    torch.library.register_fake("scalevgae::csr_has_pairs")(
        lambda rowptr, col, src, dst: src.new_empty(src.shape, dtype=torch.bool))


def has_pairs_reference(rowptr: Tensor, col: Tensor, src: Tensor, dst: Tensor) -> Tensor:
    """[K] bool: (src[k], dst[k]) is a stored entry of the CSR (rows sorted). O(K log deg)."""
    src, dst = src.long(), dst.long()
    found = torch.zeros(src.numel(), dtype=torch.bool, device=src.device)
    idx = torch.arange(src.numel(), device=src.device)
    lo, hi, want = rowptr[src].long(), rowptr[src + 1].long(), dst
    colx = col.long()
    while idx.numel():
        act = lo < hi
        idx, lo, hi, want = idx[act], lo[act], hi[act], want[act]
        if not idx.numel():
            break
        mid = (lo + hi) // 2
        v = colx[mid]
        eq = v == want
        found[idx[eq]] = True
        go = ~eq
        less = v < want
        lo = torch.where(less, mid + 1, lo)[go]
        hi = torch.where(less, hi, mid)[go]
        idx, want = idx[go], want[go]
    return found


def _has_pairs(graph: Graph, src: Tensor, dst: Tensor, backend: Optional[str] = None) -> Tensor:
    name = dispatch.resolve("has_pairs", graph.device, backend, supported=("reference", "cpu", "cuda"))
    if name == "reference" or not _has_op("csr_has_pairs"):
        return has_pairs_reference(graph.rowptr, graph.col, src, dst)
    return torch.ops.scalevgae.csr_has_pairs(graph.rowptr, graph.col, src.long(), dst.long())


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
