"""GCN encoders (Kipf & Welling's VGAE): run on a full Graph or on a list of sampled blocks."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scalevgae.graph import Graph
from scalevgae.models.conv import GraphConv

GraphOrBlocks = Union[Graph, Sequence[Any]]


def _layer_graphs(graph_or_blocks: GraphOrBlocks, num_layers: int) -> list:
    """The graph each layer runs on: the same full graph, or ``blocks[l]`` (input layer first)."""
    if isinstance(graph_or_blocks, (list, tuple)):
        if len(graph_or_blocks) != num_layers:
            raise ValueError(f"this encoder has {num_layers} GCN layers and needs {num_layers} blocks, "
                             f"got {len(graph_or_blocks)} (check the loader's fanouts)")
        return list(graph_or_blocks)
    if not hasattr(graph_or_blocks, "propagate"):
        raise TypeError(f"expected a Graph or a list of blocks, got {type(graph_or_blocks).__name__}")
    return [graph_or_blocks] * num_layers


class GCNEncoder(nn.Module):
    """Two GCN layers: ``z = Ã relu(Ã X W0) W1`` (the GAE encoder).

    ``forward(graph_or_blocks, x)``: x ``[num_nodes, in]`` (or ``[blocks[0] sources, in]``)
    -> z ``[num_nodes, out]`` (or ``[blocks[-1].num_dst, out]``).
    """

    def __init__(self, in_channels: int, hidden_channels: int = 32, out_channels: int = 16,
                 dropout: float = 0.0, bias: bool = False):
        super().__init__()
        self.conv1 = GraphConv(in_channels, hidden_channels, bias=bias)
        self.conv2 = GraphConv(hidden_channels, out_channels, bias=bias)
        self.dropout = dropout

    def reset_parameters(self) -> None:
        self.conv1.reset_parameters()
        self.conv2.reset_parameters()

    def forward(self, graph_or_blocks: GraphOrBlocks, x: Tensor) -> Tensor:
        g1, g2 = _layer_graphs(graph_or_blocks, 2)
        h = self.conv1(g1, F.dropout(x, self.dropout, self.training), activation="relu")
        return self.conv2(g2, F.dropout(h, self.dropout, self.training))

    @torch.no_grad()
    def inference(self, graph: Graph, x: Any, *, batch_size: int = 65536,
                  device: Optional[torch.device] = None) -> Tensor:
        """Full-graph z layer by layer in row chunks (eval mode: no dropout)."""
        h = self.conv1.forward_chunked(graph, x, batch_size=batch_size, activation="relu", device=device)
        return self.conv2.forward_chunked(graph, h, batch_size=batch_size, device=device)


class VGAEEncoder(nn.Module):
    """Shared first GCN layer with ReLU, then the GCN_mu and GCN_logstd heads.

    ``forward(graph_or_blocks, x) -> (mu, logstd)``, each ``[num_nodes, out]`` (or
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
        self.conv1 = GraphConv(in_channels, hidden_channels, bias=bias)
        self.conv_mu = GraphConv(hidden_channels, out_channels, bias=bias)
        self.conv_logstd = GraphConv(hidden_channels, out_channels, bias=bias)
        self.dropout = dropout
        self.logstd_init = logstd_init
        self._init_logstd()

    def _init_logstd(self) -> None:
        if self.logstd_init == "zeros":
            with torch.no_grad():
                self.conv_logstd.weight.zero_()

    def reset_parameters(self) -> None:
        for m in (self.conv1, self.conv_mu, self.conv_logstd):
            m.reset_parameters()
        self._init_logstd()

    def forward(self, graph_or_blocks: GraphOrBlocks, x: Tensor) -> tuple[Tensor, Tensor]:
        g1, g2 = _layer_graphs(graph_or_blocks, 2)
        h = self.conv1(g1, F.dropout(x, self.dropout, self.training), activation="relu")
        h = F.dropout(h, self.dropout, self.training)
        w = torch.cat([self.conv_mu.weight, self.conv_logstd.weight], 1)
        b = None
        if self.conv_mu.bias is not None:
            b = torch.cat([self.conv_mu.bias, self.conv_logstd.bias])
        if w.size(1) < w.size(0):
            # One propagation for both heads of the narrower Ã (h [W_mu | W_logstd]).
            out = g2.propagate(h @ w, bias=b)
        else:
            # As wide either way: propagate h once, then multiply only the destinations (on a
            # sampled block far fewer rows than its sources).
            out = g2.propagate(h) @ w
            out = out if b is None else out + b
        return out[:, : w.size(1) // 2], out[:, w.size(1) // 2 :]

    @torch.no_grad()
    def inference(self, graph: Graph, x: Any, *, batch_size: int = 65536,
                  device: Optional[torch.device] = None) -> tuple[Tensor, Tensor]:
        """Full-graph (mu, logstd) layer by layer in row chunks (eval mode: no dropout)."""
        h = self.conv1.forward_chunked(graph, x, batch_size=batch_size, activation="relu", device=device)
        mu = self.conv_mu.forward_chunked(graph, h, batch_size=batch_size, device=device)
        logstd = self.conv_logstd.forward_chunked(graph, h, batch_size=batch_size, device=device)
        return mu, logstd
