"""GCNConv with PyG's constructor, parameters and semantics: an adapter over :func:`gcn_layer`."""

from __future__ import annotations

from functools import partial
from typing import Any, Optional

import torch
from torch import Tensor
from torch.nn import Parameter

from scalevgae.nn.adjacency import AdjacencyCache, is_adjacency
from scalevgae.nn.gcn_layer import Propagate, bias_act, gcn_layer, glorot_


def _over_batch(propagate: Propagate) -> Propagate:
    """``propagate`` applied to every ``[N, F]`` slice of ``[B, N, F]`` features in one call (the batch
    folded into the feature columns)."""

    def run(h: Tensor, *, bias: Optional[Tensor] = None, activation: Optional[str] = None) -> Tensor:
        if h.dim() == 2:
            return propagate(h, bias=bias, activation=activation)
        b, n, f = h.shape
        y = propagate(h.transpose(0, 1).reshape(n, b * f))
        return bias_act(y.reshape(y.size(0), b, f).transpose(0, 1), bias, activation)

    return run


class GCNConv(torch.nn.Module):
    r"""Drop-in replacement for ``torch_geometric.nn.GCNConv`` on the fused ``gcn_propagate``.

    ``X' = D̂^-1/2 Â D̂^-1/2 X Θ + b`` with ``Â = A + I`` (``A + 2I`` when ``improved``). Same
    constructor, parameter names (``lin.weight`` ``[out, in]``, ``bias`` ``[out]``) and
    initialization as PyG, so a PyG GCNConv ``state_dict`` loads into it.

    ``forward(x, edge_index, edge_weight=None)``. ``x``: ``[N, in]`` dense, ``[N, in]``
    torch.sparse (multiplied by the weight first, a sparse-dense product), or ``[B, N, in]``
    (B feature sets on one graph). ``edge_index``, each normalized exactly as PyG does:

    - a ``[2, E]`` integer tensor, messages ``edge_index[0] -> edge_index[1]`` (``flow=
      "target_to_source"`` reverses them), with an optional ``edge_weight`` ``[E]``; self loops
      as PyG's ``add_remaining_self_loops``; duplicate edges counted;
    - a torch_sparse ``SparseTensor`` ``adj_t`` (rows are targets, values are edge weights);
    - a torch.sparse COO, CSR or CSC ``adj_t`` (``[N, N]``, rows are targets: PyG's ``adj.t()``;
      values are edge weights, COO duplicates summed). PyG's own layer refuses CSC when
      normalizing; this one takes it;
    - a :class:`scalevgae.Graph` (rows are targets, as in ``Graph.propagate``);
    - a sampled block (anything with ``.propagate(x, bias=...)``) -> ``[n_dst, out]``; only the
      default normalization (``normalize``, ``add_self_loops``, not ``improved``).

    Unit edge weights run the fused op; other weights a plain-PyTorch per-edge path (the fused
    op has no per-edge weights). The normalized adjacency (the CSR, its transpose and the
    scales) is built once per graph and kept while the same graph object is passed unchanged
    (an in-place change, i.e. a new ``_version``, rebuilds it); with ``cached=True`` the first
    call's normalization is reused for every later call, as in PyG.

    Returns ``[N, out]`` (``[B, N, out]`` for batched x, ``[n_dst, out]`` for a block).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        improved: bool = False,
        cached: bool = False,
        add_self_loops: Optional[bool] = None,
        normalize: bool = True,
        bias: bool = True,
        *,
        backend: Optional[str] = None,
        **kwargs: Any,
    ):
        super().__init__()
        # PyG's MessagePassing arguments that keep GCN's meaning; anything else is refused.
        aggr = kwargs.pop("aggr", "add")
        flow = kwargs.pop("flow", "source_to_target")
        node_dim = kwargs.pop("node_dim", -2)
        if aggr != "add" or flow not in ("source_to_target", "target_to_source") or node_dim not in (-2, 0) \
                or kwargs:
            raise TypeError(f"GCNConv: unsupported arguments {dict(kwargs, aggr=aggr, flow=flow, node_dim=node_dim)}"
                            " (supported: aggr='add', flow, node_dim=-2; MessagePassing internals such as "
                            "decomposed_layers are not)")
        self.flow, self.node_dim = flow, node_dim
        if in_channels is None or in_channels <= 0:
            raise ValueError(f"in_channels must be a positive int (lazy -1 is not supported), got {in_channels}")
        if add_self_loops is None:
            add_self_loops = normalize
        if add_self_loops and not normalize:
            raise ValueError("GCNConv does not support adding self-loops to the graph when no "
                             "on-the-fly normalization is applied")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.improved, self.cached = improved, cached
        self.add_self_loops, self.normalize = add_self_loops, normalize
        self.backend = backend
        self.lin = torch.nn.Linear(in_channels, out_channels, bias=False)
        if bias:
            self.bias = Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self._adj = AdjacencyCache(improved=improved, add_self_loops=add_self_loops, normalize=normalize,
                                   flow=flow, cached=cached)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform weight and zero bias, like PyG; clears the cached graph."""
        glorot_(self.lin.weight)
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)
        self._adj.clear()

    def forward(self, x: Tensor, edge_index: Any, edge_weight: Optional[Tensor] = None) -> Tensor:
        if isinstance(x, (tuple, list)):
            raise ValueError("GCNConv does not support bipartite (x_src, x_dst) input (neither does PyG's)")
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        if x.dim() not in (2, 3) or (x.dim() == 3 and (x.layout != torch.strided or self.node_dim == 0)):
            raise ValueError(f"x must be [N, {self.in_channels}] (dense or torch.sparse) or "
                             f"[B, N, {self.in_channels}] (dense), got {tuple(x.shape)}")
        if x.size(-1) != self.in_channels:
            raise ValueError(f"x must have {self.in_channels} columns, got {tuple(x.shape)}")
        if is_adjacency(edge_index):
            propagate = self._adj.get(edge_index, x.size(-2), edge_weight).propagate
        elif hasattr(edge_index, "propagate"):
            if not (self.normalize and self.add_self_loops and not self.improved) or edge_weight is not None:
                raise ValueError("sampled blocks support only the default normalization (normalize=True, "
                                 "add_self_loops=True, improved=False, no edge_weight)")
            propagate = edge_index.propagate
        else:
            raise TypeError(f"unsupported graph type {type(edge_index).__name__}: expected an edge_index [2, E] "
                            "tensor, a SparseTensor, a torch.sparse adjacency, a scalevgae.Graph or a sampled block")
        if self.backend is not None:
            propagate = partial(propagate, backend=self.backend)
        return gcn_layer(_over_batch(propagate), x, self.lin.weight.t(), self.bias)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels})"
