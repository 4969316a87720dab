"""Node orders for memory locality: a permutation of a graph's nodes, and graphs, pairs and
feature rows relabelled by it.

Convention everywhere: ``perm[new_id] = old_id`` (node ``new_id`` of the reordered graph is node
``perm[new_id]`` of the original), and ``inv = inverse(perm)`` maps the other way,
``inv[old_id] = new_id``. So ``x_new = x[perm]``, ``pairs_new = inv[pairs]`` and an output
computed on the reordered graph returns to the original order as ``out_new[inv]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from scalevgae.csr import row_blocks

if TYPE_CHECKING:
    from scalevgae.graph import Graph

METHODS = ("degree", "rcm")
_ROW_BLOCK = 1 << 16  # feature rows per block when permuting a memory-mapped array


def _index_dtype(n: int) -> torch.dtype:
    return torch.int32 if n <= torch.iinfo(torch.int32).max else torch.int64


def degree_order(graph: Graph) -> Tensor:
    """``perm [N]``: nodes by descending degree, ties by ascending id (stable). Hubs come first,
    so their rows and feature rows, the ones most gathered, share pages and cache lines."""
    perm = torch.sort(graph.degree().cpu(), descending=True, stable=True).indices
    return perm.to(_index_dtype(graph.num_nodes))


def rcm_order(graph: Graph) -> Tensor:
    """``perm [N]``: reverse Cuthill-McKee (scipy's, breadth-first from a low-degree node of each
    component, neighbours by ascending degree, reversed): neighbours get nearby ids, so the
    bandwidth of the adjacency shrinks and a row's gathers hit nearby feature rows. A directed
    graph is ordered by the pattern of ``A + A^T``."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    n = graph.num_nodes
    if n == 0:
        return torch.zeros(0, dtype=torch.int32)
    idx = np.int32 if graph.num_edges <= np.iinfo(np.int32).max and n <= np.iinfo(np.int32).max else np.int64
    rowptr = graph.rowptr.cpu().numpy().astype(idx, copy=False)
    col = graph.col.cpu().numpy().astype(idx, copy=False)
    # The values are never read; int8 keeps the matrix small.
    mat = sp.csr_matrix((np.ones(col.size, dtype=np.int8), col, rowptr), shape=(n, n))
    perm = reverse_cuthill_mckee(mat, symmetric_mode=bool(graph.is_symmetric))
    return torch.from_numpy(np.ascontiguousarray(perm)).to(_index_dtype(n))


def node_order(graph: Graph, method: str) -> Tensor:
    """``perm [N]`` (int32 where it fits) with ``perm[new_id] = old_id`` for ``method`` in
    :data:`METHODS`. Deterministic: the same graph gives the same order."""
    if method == "degree":
        return degree_order(graph)
    if method == "rcm":
        return rcm_order(graph)
    raise ValueError(f"reorder method must be one of {METHODS}, got {method!r}")


def inverse(perm: Tensor) -> Tensor:
    """``inv [N]`` with ``inv[perm[i]] = i`` (same dtype and device as ``perm``)."""
    inv = torch.empty_like(perm)
    inv[perm.long()] = torch.arange(perm.numel(), dtype=perm.dtype, device=perm.device)
    return inv


def check_permutation(perm: Tensor, n: int, name: str = "perm") -> None:
    """ValueError unless ``perm`` is a 1-D integer tensor holding each of ``0..n-1`` once."""
    if perm.dim() != 1 or perm.numel() != n or perm.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"{name} must be a 1-D int32/int64 tensor of {n} entries, got {perm.dtype} "
                         f"{tuple(perm.shape)}")
    if n and (int(perm.min()) < 0 or int(perm.max()) >= n
              or not bool((torch.bincount(perm.long(), minlength=n) == 1).all())):
        raise ValueError(f"{name} is not a permutation of 0..{n - 1}")


def permute_graph(graph: Graph, perm: Tensor) -> Graph:
    """The graph with node ``perm[i]`` renamed ``i``: edge ``(u, v)`` becomes ``(inv[u], inv[v])``.

    Row ``i`` of the result is old row ``perm[i]`` with relabelled columns (gathered a block of
    about ``CHUNK`` entries at a time), then sorted within rows by scipy's ``sort_indices`` (a
    per-row sort in C++, faster here than a sort of 64-bit keys). The cached symmetry flag
    carries over (relabelling keeps it)."""
    import scipy.sparse as sp

    from scalevgae.graph import Graph

    n, dev = graph.num_nodes, graph.device
    p = perm.cpu().long()
    inv = inverse(p)
    rowptr_in, col_in = graph.rowptr.cpu(), graph.col.cpu()
    deg = rowptr_in.diff()[p]
    rowptr = torch.zeros(n + 1, dtype=torch.long)
    torch.cumsum(deg, 0, out=rowptr[1:])
    start = rowptr_in[:-1][p]  # where new row i's entries begin in the old col
    col = torch.empty_like(col_in)
    for r0, r1 in row_blocks(rowptr):
        lo, hi = int(rowptr[r0]), int(rowptr[r1])
        rows = torch.repeat_interleave(torch.arange(r1 - r0), deg[r0:r1], output_size=hi - lo)
        src = (start[r0:r1] - rowptr[r0:r1])[rows] + torch.arange(lo, hi)
        col[lo:hi] = inv[col_in[src].long()].to(col.dtype)
    if col.numel():
        m = sp.csr_matrix((np.ones(col.numel(), dtype=np.int8), col.numpy(), rowptr.numpy()), shape=(n, n))
        m.sort_indices()  # in place, unless scipy chose narrower index arrays (then on its copy)
        col = torch.from_numpy(m.indices).to(col.dtype)
    g = Graph(rowptr.to(dev), col.to(dev), n, validate=False)
    g._symmetric = graph._symmetric
    return g


def relabel(pairs: Tensor, inv: Tensor) -> Tensor:
    """Node ids of ``pairs`` (any shape) in the new order: ``inv[pairs]``, same dtype and device."""
    return inv.to(pairs.device).long()[pairs.long()].to(pairs.dtype)


def permute_rows(x: Any, perm: Tensor) -> Any:
    """``x[perm]``: a tensor for a tensor; for a numpy array or memmap a read-only memmap of the
    permuted rows, written ``_ROW_BLOCK`` rows at a time into a temporary file (in ``TMPDIR``)
    unlinked once mapped (so RAM holds one block, the page cache the rest, and the disk space is
    freed with the mapping)."""
    if isinstance(x, Tensor):
        return x.index_select(0, perm.to(x.device).long())
    import os
    import tempfile

    src = x if isinstance(x, np.ndarray) else np.asarray(x)
    fd, path = tempfile.mkstemp(prefix="scalevgae-reordered-", suffix=".npy")
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(path, mode="w+", dtype=src.dtype, shape=src.shape)
        p = perm.cpu().numpy()
        for a in range(0, p.size, _ROW_BLOCK):  # stored dtype kept; fancy indexing reads just these rows
            out[a:a + _ROW_BLOCK] = src[p[a:a + _ROW_BLOCK]]
        out.flush()
        del out
        return np.load(path, mmap_mode="r")
    finally:
        os.remove(path)  # the mapping keeps the data until it is dropped


def permute_split(split: Any, perm: Tensor) -> Any:
    """A :class:`~scalevgae.data.split.LinkSplit` in the new order: the training graph permuted,
    every pair relabelled (column order kept, so pair ``k`` is the same pair; undirected
    training pairs keep their smaller id first)."""
    import dataclasses

    inv = inverse(perm.cpu())
    train_graph = permute_graph(split.train_graph, perm)
    train_pos = relabel(split.train_pos, inv)
    if train_graph.is_symmetric:
        train_pos = train_pos.sort(0).values
    return dataclasses.replace(
        split, train_graph=train_graph, train_pos=train_pos,
        **{k: relabel(getattr(split, k), inv) for k in ("val_pos", "val_neg", "test_pos", "test_neg")})
