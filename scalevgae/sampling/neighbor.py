"""k-hop neighbor sampling into bipartite GCN blocks.

Kernels (scalevgae/ops/sample.py): ``neighbor_sample`` (the whole sample on CPU; relabel through
a per-thread dense array, or a hash map on graphs over 2^25 nodes) and ``sample_adj`` (one hop of
per-row sampling, CPU and CUDA; the cuda and cuda_sim backends relabel with sort-based torch
ops). The reference (``reference.sample_adj`` + the same torch relabel) draws the very same random numbers, so all backends return identical samples.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from scalevgae.graph import Graph
from scalevgae.ops import dispatch, sample
from scalevgae.ops.validate import check_index_range, check_index_tensor
from scalevgae.sampling.block import Block, SampledSubgraph


def draw_seed(generator: Optional[torch.Generator] = None) -> int:
    """A 63-bit sample seed from `generator` (the global RNG if None)."""
    dev = generator.device if generator is not None else torch.device("cpu")
    return int(torch.randint(0, 2**63 - 1, (1,), generator=generator, device=dev).item())


def _relabel_hops(
    rowptr: Tensor, col: Tensor, seeds: Tensor, fanouts: Sequence[int], replace: bool, seed: int,
    adj: Callable[..., tuple[Tensor, Tensor]],
) -> tuple[Tensor, list[int], list[Tensor], list[Tensor]]:
    """Hop by hop: sample every node reached so far, append the new nodes (ascending id) and
    map the sampled global ids to local ones with sorts and binary searches (device-agnostic)."""
    n_id = seeds
    hop_ptr = [seeds.numel()]
    rowptrs, cols = [], []
    for h, f in enumerate(fanouts):
        n_dst = n_id.numel()
        rp, g = adj(rowptr, col, n_id, int(f), replace, seed, h)
        if n_dst == 0 or g.numel() == 0:
            local = g.new_empty(0)
        else:
            uniq = torch.unique(g)
            sorted_nid = torch.sort(n_id).values
            pos = torch.searchsorted(sorted_nid, uniq).clamp_(max=n_dst - 1)
            n_id = torch.cat([n_id, uniq[sorted_nid[pos] != uniq]])
            sorted_all, perm = torch.sort(n_id)
            local = perm[torch.searchsorted(sorted_all, g)]
        hop_ptr.append(n_id.numel())
        rowptrs.append(rp)
        cols.append(local)
    return n_id, hop_ptr, rowptrs, cols


def _check_seeds(graph: Graph, seeds: object) -> Tensor:
    seeds = check_index_tensor(seeds, "seeds")
    if seeds.device != graph.device:
        raise ValueError(f"seeds is on {seeds.device} but the graph is on {graph.device}")
    seeds = seeds.long()
    check_index_range(seeds, graph.num_nodes, "seeds")
    if seeds.numel() > 1 and torch.unique(seeds).numel() != seeds.numel():
        raise ValueError("seeds must be distinct (each node once)")
    return seeds.contiguous()


def _check_fanouts(fanouts: Sequence[int]) -> list[int]:
    if isinstance(fanouts, (int, Tensor)) or not all(isinstance(f, int) for f in fanouts):
        raise TypeError(f"fanouts must be a sequence of ints, got {fanouts!r}")
    if any(f < -1 for f in fanouts):
        raise ValueError(f"fanouts must be >= -1 (-1: all neighbors), got {list(fanouts)}")
    return list(fanouts)


def sample_neighbors(
    graph: Graph,
    seeds: Tensor,
    fanouts: Sequence[int],
    *,
    replace: bool = False,
    generator: Optional[torch.Generator] = None,
    backend: Optional[str] = None,
) -> SampledSubgraph:
    """Sample the ``len(fanouts)``-hop neighborhood of ``seeds`` into GCN blocks.

    Hop ``h`` samples up to ``fanouts[h]`` neighbors (``-1``: all) of EVERY node reached so far
    (the seeds at hop 0), i.e. the destinations of the block of hop ``h``; so ``fanouts[0]`` is
    the first hop out of the seeds and is used by the LAST block (PyG's ``num_neighbors``).
    Without replacement a row keeps ``min(deg, fanout)`` distinct neighbors; with replacement
    it draws ``fanout`` (possibly repeated) neighbors.

    Each row's neighbors depend only on (a seed drawn from ``generator``, hop, node): the result
    is the same for any number of threads and for every backend.

    Estimator (see :meth:`Block.propagate`): ``y_i = c_i^2 x_i + (d_i/k_i) sum_{j in S_i}
    c_i c_j x_j`` with ``c = (deg + 1)^-1/2`` on the graph's degrees, an unbiased estimate of
    the full-graph GCN row; with fanout -1 it is exact.

    Args:
        graph: the graph (CPU or CUDA).
        seeds: ``[B]`` int32/int64 distinct node ids on the graph's device.
        fanouts: ints >= -1, first hop first.
        backend: "cpu", "cuda", "reference", "cuda_sim" or None (see ``scalevgae.ops.dispatch``).

    Returns:
        :class:`SampledSubgraph` with ``n_id`` (seeds first) and the blocks, input layer first.
    """
    graph, seeds, fanouts, seed, name = _prepare(graph, seeds, fanouts, generator, backend)
    n_id, hop_ptr, rowptrs, cols = _sample_hops(graph, seeds, fanouts, replace, seed, name)
    return SampledSubgraph(n_id, _make_blocks(graph, n_id, hop_ptr, rowptrs, cols))


def _prepare(graph: Graph, seeds: Tensor, fanouts: Sequence[int], generator: Optional[torch.Generator],
             backend: Optional[str]) -> tuple[Graph, Tensor, list[int], int, str]:
    """Checked arguments, the sample seed drawn from ``generator`` and the backend's name."""
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a scalevgae.Graph, got {type(graph).__name__}")
    fanouts = _check_fanouts(fanouts)
    seeds = _check_seeds(graph, seeds)
    seed = draw_seed(generator)
    # the cpu backend runs neighbor_sample, the others sample_adj hop by hop (a cpu build has both)
    name = dispatch.resolve("sample_neighbors", graph.device, backend, supported=sample.BACKENDS,
                            kernels=("sample_adj", "neighbor_sample"))
    return graph, seeds, fanouts, seed, name


def _sample_hops(graph: Graph, seeds: Tensor, fanouts: list[int], replace: bool, seed: int,
                 name: str) -> tuple[Tensor, list[int], list[Tensor], list[Tensor]]:
    """(n_id, hop_ptr, rowptrs, cols) of the hops ``fanouts`` (local columns) on backend ``name``."""
    if not fanouts:
        return seeds, [seeds.numel()], [], []
    if name == "cpu":
        n_id, hop_t, rowptrs, cols = sample.neighbor_sample(graph.rowptr, graph.col, seeds, fanouts, replace, seed)
        return n_id, hop_t.tolist(), rowptrs, cols
    return _relabel_hops(graph.rowptr, graph.col, seeds, fanouts, replace, seed,
                         partial(sample.sample_adj, backend=name))


def _make_blocks(graph: Graph, n_id: Tensor, hop_ptr: list[int], rowptrs: list[Tensor],
                 cols: list[Tensor]) -> list[Block]:
    # One gather of the global normalization and degree for every touched node.
    c = graph.gcn_norm(torch.float64)[n_id]
    # Degrees only of the nodes that are some block's destination (the outer hop is ~3x larger).
    dst_id = n_id[: hop_ptr[-2]] if len(hop_ptr) > 1 else n_id[:0]
    deg = (graph.rowptr[dst_id + 1] - graph.rowptr[dst_id]).double()
    blocks = []
    for h in reversed(range(len(rowptrs))):
        n_dst, n_src = hop_ptr[h], hop_ptr[h + 1]
        k = rowptrs[h].diff().double()
        c_dst = c[:n_dst]
        ratio = torch.where(k > 0, deg[:n_dst] / k.clamp(min=1), 1.0)
        blocks.append(Block(rowptrs[h], cols[h], n_src, n_dst, c[:n_src], c_dst * ratio, c_dst * c_dst))
    return blocks
