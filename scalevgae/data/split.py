"""Link-prediction splits: held-out positive edges and matching sampled non-edges."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import torch
from torch import Tensor

from scalevgae._memory import release_free_memory
from scalevgae.csr import row_blocks
from scalevgae.graph import Graph
from scalevgae.sampling.negative import negative_pairs


@dataclass
class LinkSplit:
    """Edges split for link prediction.

    Attributes:
        train_graph: the graph of the training edges only (both directions if undirected).
        train_pos: ``[2, E_train]`` training edges, one direction each (i < j if undirected), in
            CSR order (the loader shuffles them).
        val_pos/val_neg, test_pos/test_neg: ``[2, k]`` held-out edges (random order) and as many sampled pairs
            that are not edges of the full graph (no self pairs; the negatives of the two sets
            are disjoint as unordered pairs).
        metric: the dataset's official ranking metric, or None (random splits): ``"hits@K"``
            ranks every positive against the shared negatives; ``"mrr"`` ranks positive ``i``
            against its own ``Q`` negatives, which are then ``val_neg[:, i*Q:(i+1)*Q]``
            (``val_neg`` is ``[2, P*Q]``, source-major; likewise ``test_neg``). See
            :func:`scalevgae.metrics.ranking_metric`.
    """

    train_graph: Graph
    train_pos: Tensor
    val_pos: Tensor
    val_neg: Tensor
    test_pos: Tensor
    test_neg: Tensor
    metric: Optional[str] = None


_MASK31 = (1 << 31) - 1


def _signed(c: int) -> int:
    return c - (1 << 64) if c >= 1 << 63 else c


def _fmix64(x: Tensor) -> Tensor:
    """MurmurHash3's 64-bit finalizer on an int64 tensor, IN PLACE (wrapping multiplies, logical
    shifts; in place because fresh E-sized buffers cost more than the arithmetic): a bijection,
    so distinct keys get distinct hashes."""
    t = torch.empty_like(x)

    def xorshift33() -> None:
        torch.bitwise_right_shift(x, 33, out=t)
        x.bitwise_xor_(t.bitwise_and_(_MASK31))

    xorshift33()
    x.mul_(_signed(0xFF51AFD7ED558CCD))
    xorshift33()
    x.mul_(_signed(0xC4CEB9FE1A85EC53))
    xorshift33()
    return x


def _seed_key(seed: int) -> int:
    x = torch.tensor([seed & ((1 << 62) - 1)], dtype=torch.long)
    return int(_fmix64(_fmix64(x).add_(0x2545F4914F6CDD1D)))


def split_edges(graph: Graph, val: float = 0.05, test: float = 0.1, *, seed: int = 0) -> LinkSplit:
    """Split the edges of ``graph`` into train/val/test (Kipf's 85/5/10 by default).

    Undirected (symmetric) graphs are split by unordered edge, directed ones by directed edge:
    ``int(m * val)`` and ``int(m * test)`` of the ``m`` edges are held out. Each edge gets a
    seeded 64-bit hash of its (unordered) endpoint pair; the ``n_val`` smallest hashes go to
    validation, the next ``n_test`` to test. Both directions of an edge share the hash, so the
    training graph is the input CSR with a mask applied: no sort, O(E) time, on the graph's
    device. Hashes are computed in blocks of entries, so besides the outputs the memory is one
    byte per entry plus the 64-bit hashes of one direction (for the two thresholds).
    Reproducible for a seed. Every edge list has the graph's index dtype (int32 below 2^31 nodes).
    """
    out = _split_edges(graph, val, test, seed)
    # Its per-block hashes, masks and row ids are freed now, but glibc keeps their pages for the
    # rest of the run unless told (221 MB at 10^6 nodes, with the graph builder's): hand them back.
    release_free_memory()
    return out


def _split_edges(graph: Graph, val: float, test: float, seed: int) -> LinkSplit:
    if not (0 <= val and 0 <= test and val + test < 1):
        raise ValueError(f"need 0 <= val, 0 <= test and val + test < 1, got val={val}, test={test}")
    n = graph.num_nodes
    dev = graph.device
    col = graph.col
    undirected = graph.is_symmetric
    key = _seed_key(seed)

    def blocks() -> Iterator[tuple[slice, Tensor, Tensor, Tensor]]:
        """(entries, row, hash, unit) per block of CSR entries; unit: the entry that stands for its edge."""
        deg = graph.degree()
        for r0, r1 in row_blocks(graph.rowptr):
            sl = slice(int(graph.rowptr[r0]), int(graph.rowptr[r1]))
            row = torch.repeat_interleave(torch.arange(r0, r1, device=dev), deg[r0:r1], output_size=sl.stop - sl.start)
            c = col[sl]
            if undirected:
                h = torch.minimum(row, c).mul_(n).add_(torch.maximum(row, c))
            else:
                h = row * n + c
            yield sl, row, _fmix64(h.bitwise_xor_(key)), (row < c if undirected else torch.ones_like(c, dtype=torch.bool))

    hu = torch.cat([h[unit] for _, _, h, unit in blocks()]) if graph.num_edges else col.new_zeros(0)
    m = hu.numel()
    n_val, n_test = int(m * val), int(m * test)
    t1 = t2 = None
    if n_val + n_test > 0:
        t2 = hu.kthvalue(n_val + n_test).values
        if n_val > 0:
            t1 = hu.kthvalue(n_val).values
    del hu
    part = torch.zeros(graph.num_edges, dtype=torch.int8, device=dev)  # 0 train, 1 val, 2 test
    train_counts = torch.zeros(n, dtype=torch.long, device=dev)
    rows: dict[int, list[Tensor]] = {0: [], 1: [], 2: []}  # one direction of every edge, per part
    for sl, row, h, unit in blocks():
        p = part[sl]
        if t2 is not None:
            p[h <= t2] = 2
            if t1 is not None:
                p[h <= t1] = 1
        train_counts += torch.bincount(row[p == 0], minlength=n)
        for k in rows:
            mask = unit & (p == k)
            rows[k].append(torch.stack([row[mask].to(col.dtype), col[sl][mask]]))
    rowptr = torch.zeros(n + 1, dtype=torch.long, device=dev)
    torch.cumsum(train_counts, 0, out=rowptr[1:])
    train_graph = Graph(rowptr, col[part == 0], n, validate=False)
    train_graph._symmetric = undirected
    del part
    gen = torch.Generator().manual_seed(seed)

    def pairs(k: int) -> Tensor:
        return torch.cat(rows[k], 1) if rows[k] else torch.empty(2, 0, dtype=col.dtype, device=dev)

    neg = _distinct_negatives(graph, n_val + n_test, gen, undirected)

    def held_out(k: int) -> Tensor:  # in random order, not CSR order (prefixes are unbiased)
        e = pairs(k)
        return e[:, torch.randperm(e.size(1), generator=gen).to(dev)]

    return LinkSplit(
        train_graph=train_graph,
        train_pos=pairs(0),
        val_pos=held_out(1),
        val_neg=neg[:, :n_val],
        test_pos=held_out(2),
        test_neg=neg[:, n_val:],
    )


def _distinct_negatives(graph: Graph, num: int, gen: torch.Generator, undirected: bool) -> Tensor:
    """``num`` non-edge pairs, distinct as (unordered, if undirected) pairs."""
    n = graph.num_nodes
    have = torch.empty(2, 0, dtype=torch.long, device=graph.device)
    while have.size(1) < num:
        cand = torch.cat([have, negative_pairs(graph, num - have.size(1) + 16, generator=gen)], 1)
        a, b = (cand.min(0).values, cand.max(0).values) if undirected else (cand[0], cand[1])
        _, first = _first_occurrence(a * n + b)
        have = cand[:, first]
    return have[:, :num].to(graph.col.dtype)


def _first_occurrence(key: Tensor) -> tuple[Tensor, Tensor]:
    """Unique keys and the index of each key's first occurrence, in order of first occurrence."""
    uniq, inv = torch.unique(key, return_inverse=True)
    first = torch.full((uniq.numel(),), key.numel(), dtype=torch.long, device=key.device)
    first.scatter_reduce_(0, inv, torch.arange(key.numel(), device=key.device), reduce="amin")
    return uniq, first.sort().values
