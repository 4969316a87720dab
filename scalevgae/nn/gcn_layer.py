"""The one native GCN layer: ``act(Â X W + b)`` on anything with a ``propagate`` method.

Holds, once for the package, the rule that decides on which side of the propagation the weight
multiply goes, the Glorot init and chunked (layer-by-layer) full-graph inference. The encoders in
:mod:`scalevgae.models` stack :class:`GCNLayer`; :class:`scalevgae.nn.GCNConv` is a PyG-shaped
adapter over :func:`gcn_layer`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from scalevgae.graph import Graph
from scalevgae.ops.propagate import gcn_propagate

# propagate(h, *, bias=None, activation=None) -> act(Â h + bias): Graph.propagate, Block.propagate,
# or a normalized adjacency from scalevgae.nn.adjacency.
Propagate = Callable[..., Tensor]


def glorot_(w: Tensor) -> Tensor:
    """Glorot/Xavier uniform init in place, range ``sqrt(6 / (fan_in + fan_out))`` (Kipf's GCN, PyG's)."""
    a = math.sqrt(6.0 / (w.size(-2) + w.size(-1)))
    with torch.no_grad():
        return w.uniform_(-a, a)


def weight_first(weight: Tensor, x: Any) -> bool:
    """Whether ``Â X W`` is computed as ``Â (X W)`` (True) or ``(Â X) W`` (False).

    ``weight`` ``[in, out]``. Sparse features are always multiplied first (a sparse-dense
    product; the propagation needs dense rows). Otherwise the multiply goes first when it
    narrows the rows (``out < in``: the sparse pass then moves ``out`` columns), except when
    training on an input that needs no gradient (the features): propagating first then means the
    backward never runs the transposed sparse pass, and on a sampled block the dense multiply
    covers only the destinations.
    """
    if isinstance(x, Tensor) and x.layout != torch.strided:
        return True
    skip_sparse_backward = (torch.is_grad_enabled() and weight.requires_grad
                            and not (isinstance(x, Tensor) and x.requires_grad))
    return weight.size(1) < weight.size(0) and not skip_sparse_backward


def matmul(x: Tensor, weight: Tensor) -> Tensor:
    """``x @ weight`` for dense ``[..., N, in]`` or torch.sparse ``[N, in]`` x (sparse-dense product)."""
    if x.layout == torch.strided:
        return x @ weight
    if x.layout == torch.sparse_csc:
        x = x.to_sparse_csr()
    return torch.sparse.mm(x, weight)


def bias_act(h: Tensor, bias: Optional[Tensor], activation: Optional[str]) -> Tensor:
    """``act(h + bias)`` for the paths where the op does not fuse them."""
    if bias is not None:
        h = h + bias
    return torch.relu(h) if activation == "relu" else h


def gcn_layer(propagate: Propagate, x: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
              activation: Optional[str] = None) -> Tensor:
    """``act(Â x W + b)``: x ``[n_src, in]`` -> ``[n_dst, out]``; weight ``[in, out]``, bias ``[out]``.

    ``propagate(h, *, bias=None, activation=None)`` applies ``act(Â h + bias)``; the weight goes
    on the side :func:`weight_first` picks.
    """
    if weight_first(weight, x):
        return propagate(matmul(x, weight), bias=bias, activation=activation)
    return bias_act(propagate(x) @ weight, bias, activation)


class GCNLayer(nn.Module):
    """``act(Ã X W + b)`` with ``Ã = D̃^-1/2 (A + I) D̃^-1/2`` (Kipf & Welling's GCN layer).

    ``forward(x, graph, activation=None)``: ``graph`` is a :class:`~scalevgae.Graph` (x
    ``[num_nodes, in]`` -> ``[num_nodes, out]``) or anything with ``propagate(h, *, bias=None,
    activation=None)``, e.g. a sampled block (x ``[num_src, in]`` -> ``[num_dst, out]``).
    ``weight`` is ``[in, out]``; no bias by default (Kipf's VGAE).
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

    def forward(self, x: Tensor, graph: Any, activation: Optional[str] = None) -> Tensor:
        return gcn_layer(graph.propagate, x, self.weight, self.bias, activation)

    @torch.no_grad()
    def inference(self, x: Any, graph: Graph, *, batch_size: int, activation: Optional[str] = None,
                  device: Optional[torch.device] = None) -> Tensor:
        """Full-graph inference in blocks of ``batch_size`` destination rows.

        x ``[num_nodes, in]`` (a tensor, numpy array or memmap) -> ``[num_nodes, out]`` on
        ``device``. Memory: the ``[num_nodes, min(in, out)]`` input of the propagation plus the
        output; no ``E x F`` intermediate, no autograd graph.
        """
        return gcn_layer_chunked(graph, x, self.weight, self.bias, batch_size=batch_size,
                                 activation=activation, device=device)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, bias={self.bias is not None}"


@torch.no_grad()
def gcn_layer_chunked(graph: Graph, x: Any, weight: Tensor, bias: Optional[Tensor] = None, *, batch_size: int,
                      activation: Optional[str] = None, device: Optional[torch.device] = None) -> Tensor:
    """:func:`gcn_layer` on a full Graph in row chunks (see :meth:`GCNLayer.inference`)."""
    device = torch.device(device) if device is not None else weight.device
    n = graph.num_nodes
    g = graph if same_device(graph.device, device) else graph.to(device)
    first = weight_first(weight, x)

    def rows(a: int, b: int) -> Tensor:
        return torch.as_tensor(x[a:b]).to(device=device, dtype=weight.dtype)

    if first:  # h = X W, chunked, then propagate the narrow h
        h = torch.empty(n, weight.size(1), device=device, dtype=weight.dtype)
        for a in range(0, n, batch_size):
            h[a : a + batch_size] = rows(a, a + batch_size) @ weight
    else:
        h = x if isinstance(x, Tensor) and same_device(x.device, device) and x.dtype == weight.dtype else None
        if h is None:
            h = torch.cat([rows(a, a + batch_size) for a in range(0, n, batch_size)]) if n else rows(0, 0)
    out = torch.empty(n, weight.size(1), device=device, dtype=weight.dtype)
    norm = g.gcn_norm(torch.float64 if weight.dtype == torch.float64 else torch.float32)
    for a in range(0, n, batch_size):
        b = min(a + batch_size, n)
        y = propagate_rows(g, h, a, b, norm)
        out[a:b] = bias_act(y if first else y @ weight, bias, activation)
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
