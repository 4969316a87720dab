"""Bipartite message-passing blocks of a sampled subgraph and their GCN aggregation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor

from scalevgae._util import acc_dtype
from scalevgae.ops.propagate import gcn_propagate


@dataclass(repr=False)
class Block:
    """One layer of a sampled subgraph: edges from ``num_src`` sources into ``num_dst``
    destinations, the destinations being the first ``num_dst`` sources.

    Attributes:
        rowptr: ``[num_dst + 1]`` int64 CSR row pointers over the destinations.
        col: ``[num_edges]`` int64 LOCAL source indices in ``[0, num_src)``; local index j is
            global node ``n_id[j]`` of the owning :class:`SampledSubgraph`.
        num_src, num_dst: sizes of the two sides.
        src_scale: ``[num_src]`` float64 ``c_j = (deg_j + 1)^-1/2`` (global degrees).
        dst_scale: ``[num_dst]`` float64 ``c_i * d_i / k_i`` (``c_i`` if the row kept all of
            its ``d_i`` neighbors or has none): the reweighting of a sampled row.
        self_scale: ``[num_dst]`` float64 ``c_i^2``: the weight of the self loop.

    Scales are kept in float64 and cast to the accumulation dtype of ``x`` in :meth:`propagate`.
    """

    rowptr: Tensor
    col: Tensor
    num_src: int
    num_dst: int
    src_scale: Tensor
    dst_scale: Tensor
    self_scale: Tensor
    _cast: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_edges(self) -> int:
        return self.col.numel()

    def __repr__(self) -> str:
        return (f"Block(num_src={self.num_src}, num_dst={self.num_dst}, num_edges={self.num_edges}, "
                f"device={self.device})")

    @property
    def device(self) -> torch.device:
        return self.rowptr.device

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Block:
        def mv(t: Tensor) -> Tensor:
            return t.to(device, non_blocking=non_blocking)

        return Block(mv(self.rowptr), mv(self.col), self.num_src, self.num_dst, mv(self.src_scale),
                     mv(self.dst_scale), mv(self.self_scale))

    def _scales(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        if dtype not in self._cast:
            self._cast[dtype] = (self.src_scale.to(dtype), self.dst_scale.to(dtype), self.self_scale.to(dtype))
        return self._cast[dtype]

    def propagate(
        self,
        x: Tensor,
        *,
        bias: Optional[Tensor] = None,
        activation: Optional[str] = None,
        backend: Optional[str] = None,
    ) -> Tensor:
        """Sampled GCN aggregation ``act(y + bias)``: x ``[num_src, F]`` -> ``[num_dst, F]``.

        The full-graph GCN row is ``y_i = c_i^2 x_i + sum_{j in N(i)} c_i c_j x_j`` with
        ``c = (deg + 1)^-1/2`` on global degrees. A row that kept ``k_i`` of its ``d_i``
        neighbors uniformly at random (without replacement, or ``k_i`` draws with replacement)
        is estimated without bias by

            ``y_i = c_i^2 x_i + (d_i / k_i) sum_{j in S_i} c_i c_j x_j``,

        since every neighbor is in ``S_i`` with probability ``k_i / d_i`` (its expected
        multiplicity is ``k_i / d_i`` with replacement). Rows that kept everything (fanout -1
        or ``d_i <= fanout``) are exact, so with fanout -1 the blocks reproduce the full-graph
        GCN layer. Extra rows of ``x`` beyond ``num_src`` are ignored.
        """
        if x.dim() != 2 or x.size(0) < self.num_src:
            raise ValueError(f"x must have shape [>= {self.num_src}, F] (num_src rows), got {tuple(x.shape)}")
        if activation not in (None, "relu"):
            raise ValueError(f"activation must be None or 'relu', got {activation!r}")
        xs = x[: self.num_src]
        src_scale, dst_scale, self_scale = self._scales(acc_dtype(x.dtype))
        # One fused pass: the self loop's weight c_i^2 is the op's per-row self_scale.
        return gcn_propagate(self.rowptr, self.col, xs, src_scale=src_scale, dst_scale=dst_scale,
                             self_scale=self_scale, add_self_loops=True, bias=bias, activation=activation,
                             backend=backend, validate=False)


@dataclass(repr=False)
class SampledSubgraph:
    """The k-hop sample around a set of seed nodes.

    Attributes:
        n_id: ``[M]`` int64 global ids of every node touched: the seeds first (in their given
            order), then the nodes first reached at hop 1, hop 2, ... (ascending id within a
            hop). Local index j in any block is global node ``n_id[j]``.
        blocks: one :class:`Block` per layer, INPUT layer first; ``blocks[-1]`` has the seeds as
            destinations and used ``fanouts[0]``; ``blocks[l].num_dst == blocks[l+1].num_src``.
    """

    n_id: Tensor
    blocks: list[Block]

    @property
    def num_seeds(self) -> int:
        return self.blocks[-1].num_dst if self.blocks else self.n_id.numel()

    @property
    def num_edges(self) -> int:
        """Sampled edges over all blocks."""
        return sum(b.num_edges for b in self.blocks)

    def __repr__(self) -> str:
        return f"SampledSubgraph(num_nodes={self.n_id.numel()}, num_seeds={self.num_seeds}, blocks={self.blocks})"

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SampledSubgraph:
        return SampledSubgraph(self.n_id.to(device, non_blocking=non_blocking),
                               [b.to(device, non_blocking) for b in self.blocks])
