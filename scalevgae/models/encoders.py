"""GCN encoders (Kipf & Welling's VGAE): run on a full Graph or on a list of sampled blocks."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scalevgae.graph import Graph
from scalevgae.nn.adjacency import AdjacencyCache, is_adjacency
from scalevgae.nn.gcn_layer import GCNLayer, gcn_layer

GraphOrBlocks = Union[Graph, Sequence[Any]]


def _layer_graphs(x: Any, edge_index: Any, adj: AdjacencyCache, num_layers: int) -> list:
    """The graph each layer propagates on: ``blocks[l]`` (input layer first), or the same graph for
    every layer (a Graph or a block as it is; an edge_index, SparseTensor or torch.sparse adj_t
    normalized like PyG's GCNConv and cached in ``adj``)."""
    if isinstance(x, Graph) or (isinstance(x, (list, tuple)) and not isinstance(edge_index, (list, tuple))):
        raise TypeError(f"the encoder takes (x, edge_index) in PyG's order, got ({type(x).__name__}, "
                        f"{type(edge_index).__name__})")
    if isinstance(edge_index, (list, tuple)):
        if len(edge_index) != num_layers:
            raise ValueError(f"this encoder has {num_layers} GCN layers and needs {num_layers} blocks, "
                             f"got {len(edge_index)} (check the loader's fanouts)")
        return list(edge_index)
    if isinstance(edge_index, Graph) or (hasattr(edge_index, "propagate") and not is_adjacency(edge_index)):
        return [edge_index] * num_layers
    return [adj.get(edge_index, x.size(0))] * num_layers


class GCNEncoder(nn.Module):
    """Two GCN layers: ``z = Ã relu(Ã X W0) W1`` (the GAE encoder).

    ``forward(x, edge_index)`` (PyG's order): x ``[num_nodes, in]`` (or ``[blocks[0] sources, in]``)
    -> z ``[num_nodes, out]`` (or ``[blocks[-1].num_dst, out]``). ``edge_index``: a
    :class:`~scalevgae.Graph`, a list of sampled blocks (one per layer), or any adjacency
    :class:`scalevgae.nn.GCNConv` takes (``[2, E]`` tensor, SparseTensor, torch.sparse ``adj_t``),
    normalized as PyG's GCNConv does and cached while the same object is passed.
    """

    def __init__(self, in_channels: int, hidden_channels: int = 32, out_channels: int = 16,
                 dropout: float = 0.0, bias: bool = False):
        super().__init__()
        self.conv1 = GCNLayer(in_channels, hidden_channels, bias=bias)
        self.conv2 = GCNLayer(hidden_channels, out_channels, bias=bias)
        self.dropout = dropout
        self._adj = AdjacencyCache()

    def reset_parameters(self) -> None:
        self.conv1.reset_parameters()
        self.conv2.reset_parameters()

    def forward(self, x: Tensor, edge_index: GraphOrBlocks) -> Tensor:
        g1, g2 = _layer_graphs(x, edge_index, self._adj, 2)
        h = self.conv1(F.dropout(x, self.dropout, self.training), g1, activation="relu")
        return self.conv2(F.dropout(h, self.dropout, self.training), g2)

    @torch.no_grad()
    def inference(self, x: Any, graph: Graph, *, batch_size: int = 65536,
                  device: Optional[torch.device] = None) -> Tensor:
        """Full-graph z layer by layer in row chunks (eval mode: no dropout)."""
        h = self.conv1.inference(x, graph, batch_size=batch_size, activation="relu", device=device)
        return self.conv2.inference(h, graph, batch_size=batch_size, device=device)


class VGAEEncoder(nn.Module):
    """Shared first GCN layer with ReLU, then the GCN_mu and GCN_logstd heads.

    ``forward(x, edge_index) -> (mu, logstd)`` (``edge_index`` as for :class:`GCNEncoder`), each ``[num_nodes, out]`` (or
    ``[blocks[-1].num_dst, out]``; both heads run on the last block).

    Initialization: Glorot for ``conv1`` and ``conv_mu`` (Kipf's), zeros for ``conv_logstd``
    (``logstd_init="zeros"``), so training starts from the posterior ``N(mu_i, I)`` for every
    node. A Glorot-initialized log-std head outputs values that grow with the GCN's row sums
    (about ``sqrt(deg_i)`` for Kipf's normalization) and with the feature scale, and
    ``exp(logstd)`` is exponential in them: on the 10^6-node planted-partition graph the hubs
    started at the clamp (``logstd = 10``, noise ``e^10``), the first losses were ~10^4, and
    the first tens of steps undid the initial embeddings (test AUC 0.877 at init -> 0.82 after
    10 steps). ``logstd_init="glorot"`` restores Kipf's initialization.
    """

    def __init__(self, in_channels: int, hidden_channels: int = 32, out_channels: int = 16,
                 dropout: float = 0.0, bias: bool = False, logstd_init: str = "zeros"):
        super().__init__()
        if logstd_init not in ("zeros", "glorot"):
            raise ValueError(f"logstd_init must be 'zeros' or 'glorot', got {logstd_init!r}")
        self.conv1 = GCNLayer(in_channels, hidden_channels, bias=bias)
        self.conv_mu = GCNLayer(hidden_channels, out_channels, bias=bias)
        self.conv_logstd = GCNLayer(hidden_channels, out_channels, bias=bias)
        self.dropout = dropout
        self.logstd_init = logstd_init
        self._adj = AdjacencyCache()
        self._init_logstd()

    def _init_logstd(self) -> None:
        if self.logstd_init == "zeros":
            with torch.no_grad():
                self.conv_logstd.weight.zero_()

    def reset_parameters(self) -> None:
        for m in (self.conv1, self.conv_mu, self.conv_logstd):
            m.reset_parameters()
        self._init_logstd()

    def forward(self, x: Tensor, edge_index: GraphOrBlocks) -> tuple[Tensor, Tensor]:
        g1, g2 = _layer_graphs(x, edge_index, self._adj, 2)
        h = self.conv1(F.dropout(x, self.dropout, self.training), g1, activation="relu")
        h = F.dropout(h, self.dropout, self.training)
        # Both heads in one layer call: h [W_mu | W_logstd], one propagation.
        w = torch.cat([self.conv_mu.weight, self.conv_logstd.weight], 1)
        b = None
        if self.conv_mu.bias is not None:
            b = torch.cat([self.conv_mu.bias, self.conv_logstd.bias])
        out = gcn_layer(g2.propagate, h, w, b)
        return out[:, : w.size(1) // 2], out[:, w.size(1) // 2 :]

    @torch.no_grad()
    def inference(self, x: Any, graph: Graph, *, batch_size: int = 65536, device: Optional[torch.device] = None,
                  logstd: bool = True) -> tuple[Tensor, Optional[Tensor]]:
        """Full-graph (mu, logstd) layer by layer in row chunks (eval mode: no dropout).

        ``logstd=False`` returns ``(mu, None)``: embeddings need only mu, and the logstd head
        would cost a second ``[num_nodes, out]`` propagation and output."""
        h = self.conv1.inference(x, graph, batch_size=batch_size, activation="relu", device=device)
        mu = self.conv_mu.inference(h, graph, batch_size=batch_size, device=device)
        if not logstd:
            return mu, None
        return mu, self.conv_logstd.inference(h, graph, batch_size=batch_size, device=device)
