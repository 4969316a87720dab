"""GraphData: what every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from torch import Tensor

from scalevgae.graph import Graph

if TYPE_CHECKING:
    from scalevgae.data.split import LinkSplit


@dataclass
class GraphData:
    """A graph with optional node features and labels.

    Attributes:
        graph: the adjacency (undirected graphs store both directions).
        x: ``[num_nodes, F]`` float features, or None (a numpy memmap is allowed for large graphs).
        y: ``[num_nodes]`` int64 labels, or None.
        name: a short name for logs and outputs.
        node_ids: the user's original id of every node when the input ids were remapped
            (``node_ids[i]`` is the id of node ``i``), else None.
        meta: anything else a loader wants to keep (e.g. the generator's parameters).
        split: the dataset's official link split (OGB directories), which training then uses
            instead of a random one; None for graphs without one.
    """

    graph: Graph
    x: Optional[Any] = None
    y: Optional[Tensor] = None
    name: str = "graph"
    node_ids: Optional[Any] = None
    meta: dict = field(default_factory=dict)
    split: Optional[LinkSplit] = None

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes

    def __repr__(self) -> str:
        xs = None if self.x is None else tuple(self.x.shape)
        return f"GraphData(name={self.name!r}, num_nodes={self.num_nodes}, num_edges={self.graph.num_edges}, x={xs})"
