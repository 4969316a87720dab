"""The link sampler: one minibatch of scored pairs and their computation graph, in named phases.

A batch is built by five phases, each a function over one :class:`LinkBatch`:

    negatives -> seeds -> blocks -> remove_batch_edges -> features

(``negatives`` adds sampled non-edges to the positives, ``seeds`` numbers the pairs' distinct
endpoints, ``blocks`` samples their k-hop computation graph, ``remove_batch_edges`` drops the
scored positives from it, ``features`` gathers the input rows or applies the first layer's
aggregation). :class:`LinkSampler` runs them in order; it is a pure function of the positives
and a generator, so whoever drives it (the :class:`~scalevgae.loader.LinkLoader`, a profiler)
gets the same batch for the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from scalevgae._threads import intra_op_threads
from scalevgae._util import acc_dtype
from scalevgae.data.features import gather_rows
from scalevgae.graph import Graph
from scalevgae.sampling.aggregated import (
    AggregatedBlock,
    aggregate_features,
    aggregates_from,
    input_table,
    precomputes_input,
    sample_aggregated,
    sample_precomputed,
)
from scalevgae.sampling.block import Block
from scalevgae.sampling.negative import negative_pairs
from scalevgae.sampling.neighbor import sample_neighbors

PHASES = ("negatives", "seeds", "blocks", "remove_batch_edges", "features")


@dataclass(repr=False)
class LinkBatch:
    """One minibatch of scored pairs and the sampled computation graph of their endpoints.

    Attributes:
        n_id: ``[M]`` int64 global ids of the input nodes; the first ``num_seeds`` are the
            distinct endpoints of the batch's pairs (the seeds). With ``aggregate_input`` the
            input nodes are the first block's destinations (``M = blocks[0].num_dst``).
        blocks: one :class:`~scalevgae.sampling.Block` per layer, input layer first (with
            ``aggregate_input``, ``blocks[0]`` is an
            :class:`~scalevgae.sampling.aggregated.AggregatedBlock`).
        x: ``[M, F]`` features of ``n_id`` (None if the loader has no features); with
            ``aggregate_input``, ``[blocks[0].num_dst, F]``: the first block's GCN aggregation
            of the features.
        src, dst: ``[P]`` int64 local indices into the seeds (``< num_seeds``) of the scored pairs.
        label: ``[P]`` float32, 1 for the ``num_pos`` positives (first), 0 for the negatives.
        num_pos: number of positive pairs.

    Between the phases of :class:`LinkSampler` a batch is partly built: before ``seeds``,
    ``src``/``dst`` hold global ids and ``n_id`` is empty; before ``blocks``, ``n_id`` holds
    only the seeds.
    """

    n_id: Tensor
    blocks: list[Block]
    x: Optional[Tensor]
    src: Tensor
    dst: Tensor
    label: Tensor
    num_pos: int

    @property
    def num_seeds(self) -> int:
        return self.blocks[-1].num_dst if self.blocks else self.n_id.numel()

    def __repr__(self) -> str:
        xs = None if self.x is None else tuple(self.x.shape)
        return (f"LinkBatch(num_pairs={self.label.numel()}, num_pos={self.num_pos}, num_seeds={self.num_seeds}, "
                f"num_nodes={self.n_id.numel()}, x={xs}, blocks={self.blocks})")

    def to(self, device: torch.device | str, non_blocking: bool = False) -> LinkBatch:
        def mv(t: Optional[Tensor]) -> Optional[Tensor]:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return LinkBatch(mv(self.n_id), [b.to(device, non_blocking) for b in self.blocks], mv(self.x),
                         mv(self.src), mv(self.dst), mv(self.label), self.num_pos)

    def tensors(self) -> list[Tensor]:
        out = [t for t in (self.n_id, self.x, self.src, self.dst, self.label) if t is not None]
        for b in self.blocks:
            out += [getattr(b, f.name) for f in fields(b) if isinstance(getattr(b, f.name), Tensor)]
        return out


# ---- the phases ----
def negatives(graph: Graph, pos: Tensor, neg_ratio: int, *, method: str = "uniform",
              exclude: Sequence[Graph] = (), generator: Optional[torch.Generator] = None) -> LinkBatch:
    """A batch of the positives ``pos`` ``[2, P]`` followed by ``P * neg_ratio`` sampled
    non-edges (:func:`~scalevgae.sampling.negative_pairs`), labelled; ids still global."""
    num_pos = pos.size(1)
    if neg_ratio > 0:
        neg = negative_pairs(graph, num_pos * neg_ratio, method=method, exclude=exclude, generator=generator)
        pairs = torch.cat([pos, neg], 1)
    else:
        pairs = pos
    label = torch.zeros(pairs.size(1), dtype=torch.float32, device=pairs.device)
    label[:num_pos] = 1
    return LinkBatch(pairs.new_empty(0), [], None, pairs[0], pairs[1], label, num_pos)


def seeds(batch: LinkBatch) -> LinkBatch:
    """Number the pairs' distinct endpoints: ``n_id`` becomes the seeds (ascending global id)
    and ``src``/``dst`` local indices into them."""
    m = batch.src.numel()
    n_id, inv = torch.unique(torch.cat([batch.src, batch.dst]), return_inverse=True)
    batch.n_id, batch.src, batch.dst = n_id, inv[:m], inv[m:]
    return batch


def blocks(batch: LinkBatch, graph: Graph, fanouts: Sequence[int], *, replace: bool = False,
           generator: Optional[torch.Generator] = None, backend: Optional[str] = None,
           aggregate_x: Optional[Tensor] = None, aggregate_threads: Optional[int] = None,
           table: Optional[Tensor] = None, unit_norm: Optional[Tensor] = None) -> LinkBatch:
    """Sample the seeds' k-hop blocks (:func:`~scalevgae.sampling.sample_neighbors`); ``n_id``
    grows to every sampled node. With ``aggregate_x`` (the full ``[num_nodes, F]`` features)
    this phase also does the ``features`` phase's aggregation, fused into the last hop's
    sampling (:func:`~scalevgae.sampling.aggregated.sample_aggregated`): the outer hop is then
    only read through ``aggregate_x``, never numbered or gathered, by ``aggregate_threads``
    intra-op threads (None: the calling thread's count). With ``table`` (``fanouts[-1] == -1``:
    :func:`~scalevgae.sampling.aggregated.input_table` of the features) the input hop is not
    sampled at all: its exact aggregation is read from the table
    (:func:`~scalevgae.sampling.aggregated.sample_precomputed`, with ``unit_norm``)."""
    if table is not None:
        sub, batch.x = sample_precomputed(graph, batch.n_id, fanouts, table, replace=replace, generator=generator,
                                          backend=backend, threads=aggregate_threads, unit_norm=unit_norm)
    elif aggregate_x is not None:
        sub, batch.x = sample_aggregated(graph, batch.n_id, fanouts, aggregate_x, replace=replace,
                                         generator=generator, backend=backend, threads=aggregate_threads)
    else:
        sub = sample_neighbors(graph, batch.n_id, fanouts, replace=replace, generator=generator, backend=backend)
    batch.n_id, batch.blocks = sub.n_id, sub.blocks
    return batch


def remove_batch_edges(batch: LinkBatch) -> LinkBatch:
    """Drop the batch's positive pairs (either direction) from every block: no label leakage.

    Scales stay: dropping edges from a uniform sample keeps ``d_i / k_i`` an unbiased
    reweighting of the remaining neighbors (the normalization keeps the graph's degrees)."""
    src, dst = batch.src[: batch.num_pos], batch.dst[: batch.num_pos]
    batch.blocks = [_drop_pairs(b, src, dst, batch.num_seeds) for b in batch.blocks]
    return batch


def features(batch: LinkBatch, x: Any, graph: Graph, *, aggregate: bool = False,
             dtype: Optional[torch.dtype] = None) -> LinkBatch:
    """``batch.x``: the rows ``x[n_id]`` (:func:`~scalevgae.data.gather_rows`, as ``dtype``), or
    with ``aggregate`` the first block's GCN aggregation of x read by global id
    (:func:`~scalevgae.sampling.aggregated.aggregate_features`), the first block then becoming
    an :class:`~scalevgae.sampling.aggregated.AggregatedBlock` and ``n_id`` its destinations."""
    if aggregate and batch.blocks:
        first = batch.blocks[0]
        batch.x = aggregate_features(first, batch.n_id, x, graph)
        batch.blocks = [AggregatedBlock(first.num_dst)] + batch.blocks[1:]
        batch.n_id = batch.n_id[: first.num_dst]  # the model's input nodes
    else:
        batch.x = None if x is None else gather_rows(x, batch.n_id, dtype=dtype)
    return batch


def _drop_pairs(block: Block, src: Tensor, dst: Tensor, num_seeds: int) -> Block:
    """The block without its edges between the seed pairs ``(src[k], dst[k])`` (local seed ids,
    either direction)."""
    if block.num_edges == 0 or src.numel() == 0:
        return block
    rows = torch.repeat_interleave(torch.arange(block.num_dst, device=block.col.device), block.rowptr.diff(),
                                   output_size=block.num_edges)
    # Only edges between two seeds can be batch edges: test just those.
    cand = ((rows < num_seeds) & (block.col < num_seeds)).nonzero().flatten()
    key = rows[cand] * num_seeds + block.col[cand]
    hit = torch.isin(key, torch.cat([src * num_seeds + dst, dst * num_seeds + src]))
    if not bool(hit.any()):
        return block
    keep = torch.ones(block.num_edges, dtype=torch.bool, device=block.col.device)
    keep[cand[hit]] = False
    rowptr = torch.zeros_like(block.rowptr)
    torch.cumsum(torch.bincount(rows[keep], minlength=block.num_dst), 0, out=rowptr[1:])
    return Block(rowptr, block.col[keep], block.num_src, block.num_dst, block.src_scale, block.dst_scale,
                 block.self_scale)


def _torch_dtype(x: Any) -> Optional[torch.dtype]:
    """The tensor dtype of features ``x`` as stored (numpy arrays too), None if torch has none."""
    if x is None or isinstance(x, Tensor):
        return None if x is None else x.dtype
    try:
        return torch.from_numpy(np.zeros(0, dtype=x.dtype.newbyteorder("="))).dtype
    except TypeError:
        return None


class LinkSampler:
    """Builds the :class:`LinkBatch` of a set of positive pairs by running :data:`PHASES`.

    Args:
        graph: the message-passing graph (usually the training graph).
        x: ``[num_nodes, F]`` features (torch tensor, numpy array or memmap; None: no features).
        fanouts: neighbor fanouts, first hop first (see ``sample_neighbors``).
        neg_ratio: negatives per positive, drawn by ``negative_pairs`` (``neg_method``), never an
            edge of ``graph`` nor of any graph in ``exclude``, never a self pair.
        exclude_batch_edges: drop the batch's positive edges from its blocks (see
            :func:`remove_batch_edges`).
        replace, backend: passed to the neighbor sampler.
        aggregate_input: the ``features`` phase applies the first block's GCN aggregation
            instead of gathering ``x[n_id]``; only where x is a floating tensor on the graph's
            device (otherwise this option does nothing, see :attr:`aggregate_input`).
        aggregate_threads: intra-op threads of that aggregation when it is fused into the
            sampling (None: the calling thread's count). The batch does not depend on it.
        table: that table (below) when the caller already has it, e.g. one memory-mapped copy
            shared by a host's ranks; None: computed here when needed.

    With ``aggregate_input`` and fanout -1 at the input layer (``fanouts[-1] == -1``) and
    without ``exclude_batch_edges``, that layer's exact aggregation ``Ã X`` is computed for all
    nodes here, once (:attr:`table`, ``[num_nodes, F]`` in x's dtype: one more copy of the
    features' size, one pass over the edges), and every batch gathers its rows instead of
    reading the outer hop's features: the same batches up to float rounding.

    The batch is a function of ``(pos, generator)`` only: the generator is used by the
    ``negatives`` phase, then by ``blocks``.
    """

    def __init__(self, graph: Graph, x: Any, *, fanouts: Sequence[int], neg_ratio: int = 1,
                 neg_method: str = "uniform", exclude: Optional[Sequence[Graph]] = None,
                 exclude_batch_edges: bool = False, replace: bool = False, backend: Optional[str] = None,
                 aggregate_input: bool = False, aggregate_threads: Optional[int] = None,
                 table: Optional[Tensor] = None):
        if not isinstance(graph, Graph):
            raise TypeError(f"graph must be a scalevgae.Graph, got {type(graph).__name__}")
        if x is not None and (len(x.shape) != 2 or x.shape[0] != graph.num_nodes):
            raise ValueError(f"x must have shape [{graph.num_nodes}, F], got {tuple(x.shape)}")
        if not isinstance(neg_ratio, int) or neg_ratio < 0:
            raise ValueError(f"neg_ratio must be a non-negative int, got {neg_ratio!r}")
        for g in exclude or []:
            if g.num_nodes != graph.num_nodes:
                raise ValueError(f"exclude graphs must have {graph.num_nodes} nodes, got {g.num_nodes}")
        self.graph = graph
        self.x = x
        self.fanouts = list(fanouts)
        self.neg_ratio = neg_ratio
        self.neg_method = neg_method
        self.exclude = [g.to(graph.device) for g in exclude or []]
        self.exclude_batch_edges = exclude_batch_edges
        self.replace = replace
        self.backend = backend
        # The aggregation reads x by global id: a tensor where the sampling runs.
        self.aggregate_input = aggregate_input and aggregates_from(x, graph)
        self._x_dtype = _torch_dtype(x)  # gathered rows keep the stored dtype
        self.aggregate_threads = aggregate_threads
        # The exact input hop is the same for every batch: aggregated once for all nodes. (With
        # exclude_batch_edges a batch's own edges must leave it, so it stays per batch.)
        self.table: Optional[Tensor] = None
        self._unit_norm: Optional[Tensor] = None  # what sample_precomputed's gather reads as norms
        if precomputes_input(graph, x, self.fanouts, aggregate_input=aggregate_input,
                             exclude_batch_edges=exclude_batch_edges):
            if table is None:
                with intra_op_threads(aggregate_threads):
                    table = input_table(graph, x)
            elif tuple(table.shape) != (graph.num_nodes, x.shape[1]) or table.device != graph.device:
                raise ValueError(f"table must be [{graph.num_nodes}, {x.shape[1]}] on {graph.device}, "
                                 f"got {tuple(table.shape)} on {table.device}")
            self.table = table
            self._unit_norm = torch.ones(graph.num_nodes, dtype=acc_dtype(table.dtype), device=graph.device)

    def sample(self, pos: Tensor, generator: Optional[torch.Generator] = None,
               on_phase: Optional[Callable[[str], None]] = None) -> LinkBatch:
        """The batch of positives ``pos`` ``[2, P]`` (int64 on the graph's device).

        ``on_phase(name)`` is called after each phase (a fused or skipped phase is named with
        the one it joins, e.g. ``"blocks + features"``): a profiler's clock."""
        done = on_phase or (lambda name: None)
        batch = negatives(self.graph, pos, self.neg_ratio, method=self.neg_method, exclude=self.exclude,
                          generator=generator)
        done("negatives")
        batch = seeds(batch)
        done("seeds")
        agg = self.aggregate_input and bool(self.fanouts)
        fused = agg and not self.exclude_batch_edges  # aggregation fused into the sampling
        batch = blocks(batch, self.graph, self.fanouts, replace=self.replace, generator=generator,
                       backend=self.backend, aggregate_x=self.x if fused else None,
                       aggregate_threads=self.aggregate_threads, table=self.table,
                       unit_norm=self._unit_norm)
        if fused:
            done("blocks + features")
            return batch
        done("blocks")
        if self.exclude_batch_edges:
            batch = remove_batch_edges(batch)
            done("remove_batch_edges")
        batch = features(batch, self.x, self.graph, aggregate=agg, dtype=self._x_dtype)
        done("features")
        return batch
