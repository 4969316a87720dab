"""The first layer's feature aggregation, done where the batch is made.

A GCN's first layer is ``Â_0 X W_0``: the aggregation ``Â_0 X`` of the (gradient-free) input
features has no parameters, so the loader can compute it while the trainer is busy with the
previous batch, straight from the full feature matrix: the ``[num_src, F]`` gather of the
outer hop's features (the largest array of a batch) is never made, and the first block is
replaced by an :class:`AggregatedBlock` that only adds the bias and the activation.

With fanout -1 at the input layer (every neighbor) that aggregation is the same for every
batch that reaches a node: :func:`input_table` computes it for all nodes once (``Ã X``), and
:func:`sample_precomputed` then samples only the inner hops and gathers the table's rows, so
no batch reads the outer hop's features at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

from scalevgae._threads import intra_op_threads
from scalevgae._util import acc_dtype
from scalevgae.graph import Graph
from scalevgae.ops import sample
from scalevgae.ops.propagate import gcn_propagate
from scalevgae.sampling.block import Block, SampledSubgraph
from scalevgae.sampling.neighbor import _make_blocks, _prepare, _sample_hops


@dataclass(repr=False)
class AggregatedBlock:
    """Stands in for a block whose aggregation was already applied to its input.

    ``propagate(h)`` with h ``[>= num_dst, F]`` (the aggregated rows) returns
    ``act(h[:num_dst] + bias)``. Because the aggregation is linear, ``propagate(h @ W)`` is
    ``(Â h_raw) W`` too, so :class:`~scalevgae.nn.GCNLayer` gives the same result whichever
    side of the aggregation it puts the weight on.
    """

    num_dst: int

    @property
    def num_src(self) -> int:
        return self.num_dst

    @property
    def num_edges(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"AggregatedBlock(num_dst={self.num_dst})"

    def to(self, device: torch.device | str, non_blocking: bool = False) -> AggregatedBlock:
        return self

    def propagate(self, x: Tensor, *, bias: Optional[Tensor] = None, activation: Optional[str] = None,
                  backend: Optional[str] = None) -> Tensor:
        if x.dim() != 2 or x.size(0) < self.num_dst:
            raise ValueError(f"x must have shape [>= {self.num_dst}, F] (num_dst rows), got {tuple(x.shape)}")
        y = x[: self.num_dst]
        if bias is not None:
            y = y + bias.to(y.dtype)
        if activation == "relu":
            y = torch.relu(y)
        elif activation is not None:
            raise ValueError(f"activation must be None or 'relu', got {activation!r}")
        return y


def aggregate_features(block: Block, n_id: Tensor, x: Tensor, graph: Graph) -> Tensor:
    """``block.propagate(x[n_id])`` ``[block.num_dst, F]`` without gathering ``x[n_id]``.

    x ``[num_nodes, F]`` float features of the whole graph (on the graph's device); n_id ``[M]``
    the sample's global ids (``block``'s local ids index it); ``graph`` the sampled graph, whose
    normalization ``c = (deg + 1)^-1/2`` the block uses. The sampled edges read the rows of x
    directly by global id: ``y_i = c_i^2 x_i + dst_scale_i sum_{j in S_i} c_j x_j``.
    """
    acc = acc_dtype(x.dtype)
    dst = n_id[: block.num_dst]
    y = gcn_propagate(block.rowptr, n_id[block.col], x, src_scale=graph.gcn_norm(acc),
                      dst_scale=block.dst_scale.to(acc), add_self_loops=False, validate=False)
    y = y.to(acc).addcmul_(block.self_scale.to(acc)[:, None], x.index_select(0, dst).to(acc))
    return y.to(x.dtype)


def aggregates_from(x: object, graph: Graph) -> bool:
    """Whether the input layer's aggregation can read ``x`` by global id where ``graph`` is: a
    floating tensor on the graph's device (numpy / memmap features are gathered instead)."""
    return isinstance(x, Tensor) and x.device == graph.device and x.is_floating_point()


def precomputes_input(graph: Graph, x: object, fanouts: Sequence[int], *, aggregate_input: bool,
                      exclude_batch_edges: bool = False) -> bool:
    """Whether a loader with these settings aggregates its input hop once for all nodes
    (:func:`input_table`): it aggregates the input (``aggregate_input``, x a tensor where the
    graph is), the input hop takes every neighbor (``fanouts[-1] == -1``), and no batch removes
    its own edges from it (``exclude_batch_edges``, which makes the aggregation per batch)."""
    return (aggregate_input and aggregates_from(x, graph) and len(fanouts) > 0 and fanouts[-1] == -1
            and not exclude_batch_edges)


def input_table(graph: Graph, x: Tensor) -> Tensor:
    """``Ã X`` ``[num_nodes, F]`` in x's dtype (accumulated in float32 or float64): the input
    layer's aggregation with every neighbor, for every node of ``graph`` at once. Row i is what
    ``sample_aggregated`` with fanout -1 at the input layer computes for node i (up to the
    order of the sum). One pass over the graph's edges; no gradient (x is fixed)."""
    if not aggregates_from(x, graph) or x.dim() != 2 or x.size(0) != graph.num_nodes:
        raise ValueError(f"x must be a floating [{graph.num_nodes}, F] tensor on {graph.device}")
    norm = graph.gcn_norm(acc_dtype(x.dtype))
    with torch.no_grad():
        y = gcn_propagate(graph.rowptr, graph.col, x, src_scale=norm, dst_scale=norm, add_self_loops=True,
                          validate=False)
    return y.to(x.dtype)


def sample_precomputed(graph: Graph, seeds: Tensor, fanouts: Sequence[int], table: Tensor, *,
                       replace: bool = False, generator: Optional[torch.Generator] = None,
                       backend: Optional[str] = None, threads: Optional[int] = None,
                       unit_norm: Optional[Tensor] = None) -> tuple[SampledSubgraph, Tensor]:
    """:func:`sample_aggregated` for ``fanouts[-1] == -1``, reading the input layer's exact
    aggregation from ``table`` (:func:`input_table` of the same graph and features).

    The same subgraph as ``sample_aggregated(graph, seeds, fanouts, x, ...)`` with the same
    generator (the same seed is drawn; the input hop samples nothing at random) and the same
    features up to float rounding: ``table[n_id]`` ``[blocks[0].num_dst, F]``. ``threads``:
    intra-op threads of that gather in the calling thread (None: its current count);
    ``unit_norm``: ``[num_nodes]`` ones in the table's accumulation dtype, kept by a caller that
    gathers often (None: made here).
    """
    graph, seeds, fanouts, seed, name = _prepare(graph, seeds, fanouts, generator, backend)
    if not fanouts or fanouts[-1] != -1:
        raise ValueError(f"sample_precomputed needs fanout -1 at the input layer, got {fanouts}")
    if table.dim() != 2 or table.size(0) != graph.num_nodes or table.device != graph.device:
        raise ValueError(f"table must be [{graph.num_nodes}, F] on {graph.device}, got {tuple(table.shape)}")
    n_id, hop_ptr, rowptrs, cols = _sample_hops(graph, seeds, fanouts[:-1], replace, seed, name)
    blocks = [AggregatedBlock(n_id.numel())] + _make_blocks(graph, n_id, hop_ptr, rowptrs, cols)
    # The gather is sample_aggregate with fanout 0 and unit norms: row i is 1 * table[v], the
    # row exactly, read with that kernel's prefetching into its recycled output. A fresh ~30 MB
    # index_select result per batch, made in the loader thread and freed by the trainer's,
    # fragmented glibc's arena instead (peak RSS +0.2 GiB over 200 steps at 10^6 nodes; see
    # csrc/cpu/recycled_buffer.h).
    if unit_norm is None:
        unit_norm = torch.ones(graph.num_nodes, dtype=acc_dtype(table.dtype), device=table.device)
    with intra_op_threads(threads):
        y = sample.sample_aggregate(graph.rowptr, graph.col, n_id, table, unit_norm, 0, False, 0, 0, backend=name)
    return SampledSubgraph(n_id, blocks), y


def sample_aggregated(graph: Graph, seeds: Tensor, fanouts: Sequence[int], x: Tensor, *, replace: bool = False,
                      generator: Optional[torch.Generator] = None, backend: Optional[str] = None,
                      threads: Optional[int] = None) -> tuple[SampledSubgraph, Tensor]:
    """``sample_neighbors`` followed by :func:`aggregate_features` on its first block, without
    ever numbering the outermost hop's new nodes.

    The same sample as ``sample_neighbors(graph, seeds, fanouts, ...)`` with the same generator
    (every row's neighbors depend only on (seed, hop, node)), but the input layer's sampled
    edges keep their global ids: they only read rows of ``x``. Returns the subgraph, whose
    ``n_id`` ends at the input layer's destinations and whose ``blocks[0]`` is an
    :class:`AggregatedBlock`, and the aggregated features ``[blocks[0].num_dst, F]``.
    ``threads``: intra-op threads of the fused pass in the calling thread (None: its current
    count); the result does not depend on it.
    """
    graph, seeds, fanouts, seed, name = _prepare(graph, seeds, fanouts, generator, backend)
    if not fanouts:
        raise ValueError("sample_aggregated needs at least one fanout")
    n_id, hop_ptr, rowptrs, cols = _sample_hops(graph, seeds, fanouts[:-1], replace, seed, name)
    # The input layer's hop is sampled and aggregated in one pass: its edges are never stored.
    with intra_op_threads(threads):
        y = sample.sample_aggregate(graph.rowptr, graph.col, n_id, x, graph.gcn_norm(acc_dtype(x.dtype)),
                                    fanouts[-1], replace, seed, len(fanouts) - 1, backend=name)
    blocks = [AggregatedBlock(n_id.numel())] + _make_blocks(graph, n_id, hop_ptr, rowptrs, cols)
    return SampledSubgraph(n_id, blocks), y
