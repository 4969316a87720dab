"""GCNConv with PyG's constructor, parameters and semantics, running on ``gcn_propagate``."""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor
from torch.nn import Parameter

from scalevgae.csr import coo_to_csr, csr_transpose
from scalevgae.graph import Graph
from scalevgae.ops.propagate import gcn_propagate
from scalevgae.ops.validate import check_float_tensor, check_index_range


@dataclass
class _Structure:
    """What one graph needs for a normalized propagation, built once and cached.

    ``rowptr``/``col``: CSR whose rows are targets and columns sources (self loops removed when
    they are re-added, duplicates kept so they count like in PyG); ``t_rowptr``/``t_col`` its
    transpose for the backward; ``scale`` the per-node ``deg^-1/2`` (float64); ``self_weight``
    the weight of each node's self loop, or None when it is 1 everywhere (the op adds it).
    """

    rowptr: Tensor
    col: Tensor
    t_rowptr: Tensor
    t_col: Tensor
    num_nodes: int
    scale: Optional[Tensor]
    self_loops: bool
    self_weight: Optional[Tensor]

    @classmethod
    def build(cls, target: Tensor, source: Tensor, n: int, *, normalize: bool, add_self_loops: bool,
              fill: float, existing_loops_keep_weight: bool) -> _Structure:
        target, source = target.long(), source.long()
        self_weight = None
        if normalize and add_self_loops:
            is_loop = target == source
            has_loop = torch.zeros(n, dtype=torch.bool, device=target.device)
            has_loop[target[is_loop]] = True
            target, source = target[~is_loop], source[~is_loop]
            # PyG's add_remaining_self_loops keeps an existing loop's weight (1) and adds `fill`
            # elsewhere; torch_sparse's fill_diag sets `fill` everywhere.
            w = torch.full((n,), fill, dtype=torch.float64, device=target.device)
            if existing_loops_keep_weight:
                w[has_loop] = 1.0
            self_weight = w
        rowptr, col = coo_to_csr(target, source, n, n, dedup=False)
        t_rowptr, t_col = csr_transpose(rowptr, col, n)
        return cls.finish(rowptr, col, t_rowptr, t_col, n, normalize, self_weight)

    @classmethod
    def finish(cls, rowptr: Tensor, col: Tensor, t_rowptr: Tensor, t_col: Tensor, n: int, normalize: bool,
               self_weight: Optional[Tensor]) -> _Structure:
        scale = None
        if normalize:
            deg = rowptr.diff().to(torch.float64)
            if self_weight is not None:
                deg = deg + self_weight
            scale = deg.pow(-0.5)
            scale.masked_fill_(torch.isinf(scale), 0.0)
        if self_weight is not None and bool((self_weight == 1).all()):
            return cls(rowptr, col, t_rowptr, t_col, n, scale, True, None)
        return cls(rowptr, col, t_rowptr, t_col, n, scale, False, self_weight)

    def propagate(self, x: Tensor, bias: Optional[Tensor], backend: Optional[str]) -> Tensor:
        """``D^-1/2 (A + diag(self_weight)) D^-1/2 x + bias`` (or ``A x + bias`` unnormalized)."""
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        scale = self.scale.to(acc) if self.scale is not None else torch.ones(self.num_nodes, dtype=acc,
                                                                             device=x.device)
        extra = self.self_weight is not None
        out = gcn_propagate(self.rowptr, self.col, x, src_scale=scale, dst_scale=scale,
                            add_self_loops=self.self_loops, bias=None if extra else bias, backend=backend,
                            transpose=(self.t_rowptr, self.t_col), validate=False)
        if extra:
            out = out + ((self.self_weight.to(acc) * scale * scale)[:, None] * x).to(out.dtype)
            if bias is not None:
                out = out + bias
        return out


def _is_sparse_tensor(obj: Any) -> bool:
    return type(obj).__name__ == "SparseTensor" and hasattr(obj, "coo") and hasattr(obj, "sparse_sizes")


class GCNConv(torch.nn.Module):
    r"""Drop-in replacement for ``torch_geometric.nn.GCNConv`` on the fused ``gcn_propagate``.

    ``X' = D̂^-1/2 Â D̂^-1/2 X Θ + b`` with ``Â = A + I`` (``A + 2I`` when ``improved``). Same
    constructor, parameter names (``lin.weight`` ``[out, in]``, ``bias`` ``[out]``) and
    initialization as PyG, so a PyG GCNConv ``state_dict`` loads into it.

    ``forward(x, edge_index, edge_weight=None)`` takes ``x`` ``[N, in_channels]`` and one of:

    - a ``[2, E]`` integer ``edge_index``: messages flow ``edge_index[0] -> edge_index[1]``
      (PyG's default ``flow="source_to_target"``; ``"target_to_source"`` reverses it); existing self loops are replaced by one per node (PyG's
      ``add_remaining_self_loops``); duplicate edges are kept and counted in the degrees and
      the sums, exactly as PyG does (so multigraphs give PyG's numbers too). As in PyG, this
      path gives self loops weight 1 even with ``improved=True`` (PyG applies ``improved`` only
      with ``edge_weight`` or a ``SparseTensor``);
    - a torch_sparse ``SparseTensor`` ``adj_t`` (rows are targets); stored values must be all
      ones unless passed through the weighted path (non-unit values use it automatically);
    - a :class:`scalevgae.Graph` (rows are targets, as in ``Graph.propagate``; ``improved``
      gives self loops weight 2);
    - a sampled block (any object with ``.propagate(x, bias=...)``) returning ``[n_dst, out]``;
      only the default normalization (``normalize``, ``add_self_loops``, not ``improved``).

    ``edge_weight`` ``[E]`` (or non-unit SparseTensor values) takes a plain-PyTorch weighted
    path with PyG's semantics (slower; the fused op has no per-edge weights).

    The CSR, its transpose (for the backward) and the normalization are built once per graph:
    forever with ``cached=True`` (PyG's meaning: the first graph is reused), otherwise for as
    long as the same graph object is passed unchanged. The weight multiply is placed on the
    cheaper side of the propagation (before it when ``out_channels <= in_channels``).

    Returns ``[N, out_channels]`` (``[n_dst, out_channels]`` for a block).
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
                            " (supported: aggr='add', flow, node_dim=-2)")
        self.flow = flow
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
        self._cache: Optional[tuple[Any, int, int, _Structure]] = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform weight and zero bias, like PyG; clears the cached graph."""
        a = math.sqrt(6.0 / (self.in_channels + self.out_channels))
        torch.nn.init.uniform_(self.lin.weight, -a, a)
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)
        self._cache = None

    # ---- graph structure ----
    def _structure(self, adj: Any, n: int) -> _Structure:
        version = getattr(adj, "_version", 0)
        if self._cache is not None:
            ref, ver, cn, st = self._cache
            if self.cached or (ref() is adj and ver == version and cn == n):
                return st
        fill = 2.0 if self.improved else 1.0
        if isinstance(adj, Tensor):
            if adj.dtype not in (torch.int32, torch.int64) or adj.dim() != 2 or adj.size(0) != 2:
                raise ValueError(f"edge_index must be a [2, E] int32/int64 tensor, got {adj.dtype} "
                                 f"{tuple(adj.shape)}")
            check_index_range(adj.reshape(-1), n, "edge_index")
            # PyG's edge_index path without edge_weight gives every self loop weight 1 (its
            # add_remaining_self_loops ignores fill_value without edge weights): match it.
            tgt, src = (adj[1], adj[0]) if self.flow == "source_to_target" else (adj[0], adj[1])
            st = _Structure.build(tgt, src, n, normalize=self.normalize, add_self_loops=self.add_self_loops,
                                  fill=1.0, existing_loops_keep_weight=True)
        elif _is_sparse_tensor(adj):
            if tuple(adj.sparse_sizes()) != (n, n):
                raise ValueError(f"adj_t must be [{n}, {n}] (x has {n} rows), got {tuple(adj.sparse_sizes())}")
            row, col, _ = adj.coo()
            st = _Structure.build(row, col, n, normalize=self.normalize, add_self_loops=self.add_self_loops,
                                  fill=fill, existing_loops_keep_weight=False)
        elif isinstance(adj, Graph):
            if adj.num_nodes != n:
                raise ValueError(f"the graph has {adj.num_nodes} nodes but x has {n} rows")
            t = adj.transpose()
            w = None
            if self.normalize and self.add_self_loops:
                w = torch.full((n,), fill, dtype=torch.float64, device=adj.device)
            st = _Structure.finish(adj.rowptr, adj.col, t.rowptr, t.col, n, self.normalize, w)
        else:
            raise TypeError(f"unsupported graph type {type(adj).__name__}")
        try:
            ref = weakref.ref(adj)
        except TypeError:
            ref = lambda: None  # noqa: E731 -- not weak-referenceable: cache only when cached=True
        self._cache = (ref, version, n, st)
        return st

    # ---- forward ----
    def forward(self, x: Tensor, edge_index: Any, edge_weight: Optional[Tensor] = None) -> Tensor:
        check_float_tensor(x, "x", dim=2)
        if x.size(1) != self.in_channels:
            raise ValueError(f"x must have {self.in_channels} columns, got {tuple(x.shape)}")
        if edge_weight is None and _is_sparse_tensor(edge_index):
            v = edge_index.storage.value()
            if v is not None and not bool((v == 1).all()):
                return self._weighted_sparse(x, edge_index)
        if edge_weight is not None:
            return self._weighted(x, edge_index, edge_weight)
        is_block = not isinstance(edge_index, (Tensor, Graph)) and not _is_sparse_tensor(edge_index) \
            and hasattr(edge_index, "propagate")
        lin_first = self.out_channels <= self.in_channels
        h = self.lin(x) if lin_first else x
        if is_block:
            if not (self.normalize and self.add_self_loops and not self.improved):
                raise ValueError("sampled blocks support only the default normalization "
                                 "(normalize=True, add_self_loops=True, improved=False)")
            kw = {} if self.backend is None else {"backend": self.backend}
            out = edge_index.propagate(h, bias=self.bias if lin_first else None, **kw)
        else:
            st = self._structure(edge_index, x.size(0))
            out = st.propagate(h, self.bias if lin_first else None, self.backend)
        if not lin_first:
            out = self.lin(out)
            if self.bias is not None:
                out = out + self.bias
        return out

    def _weighted(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor) -> Tensor:
        """PyG's weighted semantics in plain PyTorch (index_add over edges)."""
        if not isinstance(edge_index, Tensor):
            raise TypeError("edge_weight needs a [2, E] edge_index tensor")
        n = x.size(0)
        check_index_range(edge_index.reshape(-1), n, "edge_index")
        if edge_weight.dim() != 1 or edge_weight.numel() != edge_index.size(1):
            raise ValueError(f"edge_weight must have shape [{edge_index.size(1)}], got {tuple(edge_weight.shape)}")
        src, dst, w = edge_index[0].long(), edge_index[1].long(), edge_weight.to(x.dtype)
        if self.flow == "target_to_source":
            src, dst = dst, src
        if self.normalize and self.add_self_loops:
            loop = src == dst
            lw = torch.full((n,), 2.0 if self.improved else 1.0, dtype=x.dtype, device=x.device)
            lw[src[loop]] = w[loop]
            ar = torch.arange(n, device=x.device)
            src, dst, w = torch.cat([src[~loop], ar]), torch.cat([dst[~loop], ar]), torch.cat([w[~loop], lw])
        return self._edge_sum(x, src, dst, w, n)

    def _weighted_sparse(self, x: Tensor, adj_t: Any) -> Tensor:
        row, col, v = adj_t.coo()
        n = x.size(0)
        w = v.to(x.dtype)
        if self.normalize and self.add_self_loops:
            keep = row != col
            ar = torch.arange(n, device=x.device)
            fill = torch.full((n,), 2.0 if self.improved else 1.0, dtype=x.dtype, device=x.device)
            row, col, w = torch.cat([row[keep], ar]), torch.cat([col[keep], ar]), torch.cat([w[keep], fill])
        return self._edge_sum(x, col, row, w, n)

    def _edge_sum(self, x: Tensor, src: Tensor, dst: Tensor, w: Tensor, n: int) -> Tensor:
        if self.normalize:
            deg = torch.zeros(n, dtype=w.dtype, device=w.device).index_add_(0, dst, w)
            dinv = deg.pow(-0.5)
            dinv = dinv.masked_fill(torch.isinf(dinv), 0.0)
            w = dinv[src] * w * dinv[dst]
        h = self.lin(x)
        out = torch.zeros(n, h.size(1), dtype=h.dtype, device=h.device).index_add_(0, dst, h[src] * w[:, None])
        return out + self.bias if self.bias is not None else out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels})"
