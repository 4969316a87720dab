"""GraphConv: a bias-free-by-default GCN layer on a full Graph or a sampled block."""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor, nn

from scalevgae.graph import Graph
from scalevgae.ops.propagate import gcn_propagate


def glorot_(w: Tensor) -> Tensor:
    """Glorot/Xavier uniform init in place, range ``sqrt(6 / (fan_in + fan_out))`` (Kipf's GCN)."""
    a = math.sqrt(6.0 / (w.size(-2) + w.size(-1)))
    with torch.no_grad():
        return w.uniform_(-a, a)


class GraphConv(nn.Module):
    """``act(Ã X W + b)`` with ``Ã = D̃^-1/2 (A + I) D̃^-1/2`` (Kipf & Welling's GCN layer).

    ``forward(graph, x)`` takes a :class:`~scalevgae.Graph` (x ``[num_nodes, in]`` ->
    ``[num_nodes, out]``) or a sampled block: any object with ``num_dst`` and
    ``propagate(x, *, bias=None, activation=None)`` (x ``[num_src, in]`` -> ``[num_dst, out]``).
    The weight multiply goes on the cheaper side of the propagation: transform first when
    ``out < in`` (the sparse pass then moves ``out`` columns), propagate first otherwise.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        glorot_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    @property
    def transform_first(self) -> bool:
        return self.out_channels < self.in_channels

    def forward(self, graph: Any, x: Tensor, activation: Optional[str] = None) -> Tensor:
        w = self.weight
        # When training on an input that needs no gradient (the features), propagating first
        # means the backward never runs the (transposed) sparse pass, and the dense multiply
        # covers only the block's destinations: the bigger saving on sampled blocks.
        skip_sparse_backward = torch.is_grad_enabled() and w.requires_grad and not x.requires_grad
        if self.transform_first and not skip_sparse_backward:
            return graph.propagate(x @ w, bias=self.bias, activation=activation)
        h = graph.propagate(x) @ w
        if self.bias is not None:
            h = h + self.bias
        return torch.relu(h) if activation == "relu" else h

    @torch.no_grad()
    def forward_chunked(self, graph: Graph, x: Any, *, batch_size: int, activation: Optional[str] = None,
                        device: Optional[torch.device] = None) -> Tensor:
        """Full-graph inference in blocks of ``batch_size`` destination rows.

        x ``[num_nodes, in]`` (a tensor, numpy array or memmap) -> ``[num_nodes, out]`` on
        ``device``. Memory: the ``[num_nodes, min(in, out)]`` input of the propagation plus the
        output; no ``E x F`` intermediate, no autograd graph.
        """
        device = torch.device(device) if device is not None else self.weight.device
        n = graph.num_nodes
        w = self.weight
        g = graph if same_device(graph.device, device) else graph.to(device)

        def rows(a: int, b: int) -> Tensor:
            return torch.as_tensor(x[a:b]).to(device=device, dtype=w.dtype)

        if self.transform_first:  # h = X W, chunked, then propagate the narrow h
            h = torch.empty(n, self.out_channels, device=device, dtype=w.dtype)
            for a in range(0, n, batch_size):
                h[a : a + batch_size] = rows(a, a + batch_size) @ w
        else:
            h = x if isinstance(x, Tensor) and same_device(x.device, device) and x.dtype == w.dtype else None
            if h is None:
                h = torch.cat([rows(a, a + batch_size) for a in range(0, n, batch_size)]) if n else rows(0, 0)
        out = torch.empty(n, self.out_channels, device=device, dtype=w.dtype)
        norm = g.gcn_norm(torch.float64 if w.dtype == torch.float64 else torch.float32)
        for a in range(0, n, batch_size):
            b = min(a + batch_size, n)
            y = propagate_rows(g, h, a, b, norm)
            if not self.transform_first:
                y = y @ w
            if self.bias is not None:
                y = y + self.bias
            out[a:b] = torch.relu(y) if activation == "relu" else y
        return out


def same_device(a: torch.device, b: torch.device) -> bool:
    """Whether two devices are the same (a bare ``cuda`` means the current CUDA device)."""
    a, b = torch.device(a), torch.device(b)
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True
    cur = torch.cuda.current_device() if a.index is None or b.index is None else None
    return (a.index if a.index is not None else cur) == (b.index if b.index is not None else cur)


def propagate_rows(graph: Graph, h: Tensor, start: int, end: int, norm: Tensor) -> Tensor:
    """Rows ``start:end`` of ``Ã h``: ``[end - start, F]``.

    The row block is a bipartite CSR (its destinations are not the first sources), so the
    self-loop term ``norm_i^2 h_i`` is added here instead of inside the op.
    """
    rp = graph.rowptr[start : end + 1]
    lo, hi = int(rp[0]), int(rp[-1])
    y = gcn_propagate(rp - lo, graph.col[lo:hi], h, src_scale=norm, dst_scale=norm[start:end],
                      add_self_loops=False, validate=False)
    return y + (norm[start:end] ** 2).to(y.dtype)[:, None] * h[start:end]
