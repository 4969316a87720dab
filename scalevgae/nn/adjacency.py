"""Every adjacency form PyG's GCNConv takes, normalized the way PyG normalizes it, cached.

:class:`AdjacencyCache` turns an ``edge_index`` ``[2, E]`` (± ``edge_weight``), a torch_sparse
``SparseTensor``, a torch.sparse COO/CSR/CSC ``adj_t`` or a :class:`~scalevgae.Graph` into an
object with ``propagate(h, *, bias=None, activation=None)``:

- unit edge weights -> :class:`FusedAdjacency`: a CSR (rows are targets), its transpose for the
  backward and per-node scales, run by the fused ``gcn_propagate`` (self loops through its
  ``self_scale``);
- other edge weights -> :class:`WeightedAdjacency`: PyG's per-edge normalization in plain
  PyTorch (the fused op has no per-edge weights).

Self loops follow PyG per input form: ``edge_index`` uses ``add_remaining_self_loops`` (an
existing loop keeps its weight, 1 without ``edge_weight``), a ``SparseTensor`` ``fill_diag`` (every
diagonal entry becomes the fill), a torch.sparse tensor ``add_self_loops`` (the fill is added
to an existing loop). The fill is 1, or 2 with ``improved``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import Tensor

from scalevgae._util import eager_under_compile
from scalevgae.csr import coo_to_csr, csr_transpose
from scalevgae.graph import Graph
from scalevgae.nn.gcn_layer import bias_act
from scalevgae.ops.propagate import gcn_propagate
from scalevgae.ops.reference import acc_dtype
from scalevgae.ops.validate import check_index_range

_TORCH_SPARSE = (torch.sparse_coo, torch.sparse_csr, torch.sparse_csc)


def is_sparse_tensor(obj: Any) -> bool:
    """A torch_sparse ``SparseTensor`` (duck-typed: torch_sparse is optional)."""
    return type(obj).__name__ == "SparseTensor" and hasattr(obj, "coo") and hasattr(obj, "sparse_sizes")


def is_torch_sparse(obj: Any) -> bool:
    """A torch.sparse COO, CSR or CSC tensor."""
    return isinstance(obj, Tensor) and obj.layout in _TORCH_SPARSE


def is_adjacency(obj: Any) -> bool:
    """Any form :meth:`AdjacencyCache.get` accepts (a ``[2, E]`` tensor is not checked here)."""
    return isinstance(obj, (Tensor, Graph)) or is_sparse_tensor(obj)


@dataclass
class FusedAdjacency:
    """``D^-1/2 (A + diag(self_weight)) D^-1/2`` (or ``A`` unnormalized) with unit edge weights.

    ``rowptr``/``col``: CSR whose rows are targets and columns sources, self loops removed when
    they are re-added, duplicates kept (counted like in PyG); ``t_rowptr``/``t_col`` its
    transpose; ``scale`` the float64 ``deg^-1/2`` or None (unnormalized); ``self_weight`` the
    float64 weight of each node's self loop, or None for no self loop.
    """

    rowptr: Tensor
    col: Tensor
    t_rowptr: Tensor
    t_col: Tensor
    scale: Optional[Tensor]
    self_weight: Optional[Tensor]
    _cast: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, rowptr: Tensor, col: Tensor, n: int, self_weight: Optional[Tensor], normalize: bool,
              transpose: Optional[tuple[Tensor, Tensor]] = None) -> FusedAdjacency:
        t_rowptr, t_col = transpose if transpose is not None else csr_transpose(rowptr, col, n)
        scale = None
        if normalize:
            deg = rowptr.diff().to(torch.float64)
            scale = (deg if self_weight is None else deg + self_weight).pow(-0.5)
            scale.masked_fill_(torch.isinf(scale), 0.0)
        return cls(rowptr, col, t_rowptr, t_col, scale, self_weight)

    def _vectors(self, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Optional[Tensor]]:
        """(src/dst scale, self_scale) in ``dtype``; self_scale None when the op's own self loop is exact."""
        if dtype not in self._cast:
            n = self.rowptr.numel() - 1
            scale = self.scale if self.scale is not None else torch.ones(n, dtype=torch.float64, device=device)
            self_scale = None
            if self.self_weight is not None:
                self_scale = self.self_weight * scale * scale
                if self.scale is not None and bool((self.self_weight == 1).all()):
                    self_scale = None  # the op's default self loop weighs scale_i^2
            self._cast[dtype] = (scale.to(dtype), None if self_scale is None else self_scale.to(dtype))
        return self._cast[dtype]

    def propagate(self, x: Tensor, *, bias: Optional[Tensor] = None, activation: Optional[str] = None,
                  backend: Optional[str] = None) -> Tensor:
        """``act(Â x + bias)``: x ``[N, F]`` -> ``[N, F]``."""
        scale, self_scale = self._vectors(acc_dtype(x.dtype), x.device)
        return gcn_propagate(self.rowptr, self.col, x, src_scale=scale, dst_scale=scale, self_scale=self_scale,
                             add_self_loops=self.self_weight is not None, bias=bias, activation=activation,
                             backend=backend, transpose=(self.t_rowptr, self.t_col), validate=False)


@dataclass
class WeightedAdjacency:
    """``Â`` with per-edge weights: ``out[tgt] += weight * x[src]`` plus ``self_weight * x``, in torch.

    ``weight`` and ``self_weight`` already carry the normalization (PyG's ``gcn_norm``);
    ``self_weight`` is None without self loops. Works on x ``[..., N, F]``.
    """

    target: Tensor
    source: Tensor
    weight: Tensor
    self_weight: Optional[Tensor]

    def propagate(self, x: Tensor, *, bias: Optional[Tensor] = None, activation: Optional[str] = None,
                  backend: Optional[str] = None) -> Tensor:
        w = self.weight.to(x.dtype)
        msg = x.index_select(-2, self.source) * w[:, None]
        out = torch.zeros_like(x).index_add_(-2, self.target, msg)
        if self.self_weight is not None:
            out = out + self.self_weight.to(x.dtype)[:, None] * x
        return bias_act(out, bias, activation)


def _self_loops(target: Tensor, source: Tensor, value: Optional[Tensor], n: int, mode: str,
                fill: float) -> tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """Apply PyG's self-loop rule: (target, source, value) without loops and the per-node loop weight.

    mode ``"none"`` keeps the edges as they are (no weight vector); ``"remaining"`` keeps an existing
    loop's weight and gives the others ``fill``; ``"replace"`` gives every node ``fill``; ``"add"`` adds
    ``fill`` to the summed existing loops.
    """
    if mode == "none":
        return target, source, value, None
    dtype = value.dtype if value is not None else torch.float64
    loop = target == source
    loops_at, loop_w = target[loop], (value[loop] if value is not None else None)
    keep = ~loop
    target, source = target[keep], source[keep]
    value = value[keep] if value is not None else None
    w = torch.full((n,), fill, dtype=dtype, device=target.device)
    if mode == "remaining":
        w = w.index_put((loops_at,), loop_w if loop_w is not None else w.new_ones(()))
    elif mode == "add":
        w = w.index_add(0, loops_at, loop_w if loop_w is not None else torch.ones_like(loops_at, dtype=dtype))
    return target, source, value, w


def normalized(target: Tensor, source: Tensor, value: Optional[Tensor], n: int, *, normalize: bool,
               loops: str, fill: float) -> FusedAdjacency | WeightedAdjacency:
    """The propagation of edges ``source -> target`` with weights ``value`` (None: all 1)."""
    # Own copies: the inputs may alias the caller's tensor (torch.sparse indices()/values() share its
    # version counter), and the cached result must not change when the caller's tensor does.
    target, source = target.to(torch.long, copy=True), source.to(torch.long, copy=True)
    if value is not None and not value.requires_grad and bool((value == 1).all()):
        value = None  # unit weights: the fused path
    value = value.clone() if value is not None else None
    target, source, value, self_w = _self_loops(target, source, value, n, loops, fill)
    if value is None:
        rowptr, col = coo_to_csr(target, source, n, n, dedup=False)
        return FusedAdjacency.build(rowptr, col, n, self_w, normalize)
    if normalize:
        deg = torch.zeros(n, dtype=value.dtype, device=value.device).index_add(0, target, value)
        if self_w is not None:
            deg = deg + self_w
        dinv = deg.pow(-0.5)
        dinv = dinv.masked_fill(torch.isinf(dinv), 0.0)
        value = dinv[source] * value * dinv[target]
        self_w = self_w * dinv * dinv if self_w is not None else None
    return WeightedAdjacency(target, source, value, self_w)


def _torch_sparse_coo(adj: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(row, col, value) of a torch.sparse matrix, as PyG's ``to_edge_index`` reads it."""
    if adj.layout == torch.sparse_coo:
        adj = adj.coalesce()  # duplicates summed, as PyG does
        row, col = adj.indices()
    elif adj.layout == torch.sparse_csr:
        counts = adj.crow_indices().diff()
        row = torch.repeat_interleave(torch.arange(adj.size(0), device=adj.device), counts)
        col = adj.col_indices()
    else:
        counts = adj.ccol_indices().diff()
        col = torch.repeat_interleave(torch.arange(adj.size(1), device=adj.device), counts)
        row = adj.row_indices()
    return row, col, adj.values()


def _key(obj: Any) -> tuple:
    """(weak reference, version) identifying a graph input; None for an absent input."""
    if obj is None:
        return (None, None)
    try:
        ref = weakref.ref(obj)
    except TypeError:
        ref = None
    return (ref, getattr(obj, "_version", 0))


class AdjacencyCache:
    """Builds the normalized adjacency of one graph input and keeps it while the input is unchanged.

    The cache entry is reused while the same objects are passed with the same ``_version`` (an
    in-place change rebuilds) and the same node count; with ``cached=True`` the first build is
    reused for every later call, whatever is passed (PyG's ``cached``), until :meth:`clear`.
    Inputs that need a gradient (edge weights being learned) are rebuilt on every call unless
    ``cached=True``.
    """

    def __init__(self, *, improved: bool = False, add_self_loops: bool = True, normalize: bool = True,
                 flow: str = "source_to_target", cached: bool = False):
        self.fill = 2.0 if improved else 1.0
        self.add_self_loops, self.normalize, self.flow, self.cached = add_self_loops, normalize, flow, cached
        self._entry: Optional[tuple[tuple, tuple, int, Any]] = None

    def clear(self) -> None:
        self._entry = None

    def __getstate__(self) -> dict:
        return dict(self.__dict__, _entry=None)  # weak references do not pickle; rebuilt on use

    # Identity and _version checks, and the data-dependent build, run eagerly under torch.compile
    # (one graph break per call; scalevgae._util.eager_under_compile); the propagation itself is traced.
    @eager_under_compile
    def get(self, adj: Any, n: int, edge_weight: Optional[Tensor] = None) -> FusedAdjacency | WeightedAdjacency:
        """The propagation of ``adj`` on ``n`` nodes (``n`` rows of x)."""
        if self._entry is not None:
            k_adj, k_w, k_n, built = self._entry
            if self.cached or (k_n == n and _same(k_adj, adj) and _same(k_w, edge_weight)):
                return built
        built = self._build(adj, n, edge_weight)
        needs_grad = any(isinstance(t, Tensor) and t.requires_grad for t in (adj, edge_weight))
        if self.cached or not needs_grad:
            self._entry = (_key(adj), _key(edge_weight), n, built)
        return built

    def _loops(self, mode: str) -> str:
        return mode if self.normalize and self.add_self_loops else "none"

    def _build(self, adj: Any, n: int, edge_weight: Optional[Tensor]) -> FusedAdjacency | WeightedAdjacency:
        if edge_weight is not None and not (isinstance(adj, Tensor) and not is_torch_sparse(adj)):
            raise ValueError("edge_weight goes with a [2, E] edge_index; a sparse adjacency carries its "
                             f"weights as values (got a {type(adj).__name__})")
        opts = dict(normalize=self.normalize, fill=self.fill)
        if is_torch_sparse(adj):
            if adj.dim() != 2 or tuple(adj.shape) != (n, n):
                raise ValueError(f"adj_t must be a [{n}, {n}] sparse matrix (x has {n} rows), got {tuple(adj.shape)}")
            row, col, value = _torch_sparse_coo(adj)  # rows are targets (PyG's adj_t)
            return normalized(row, col, value, n, loops=self._loops("add"), **opts)
        if isinstance(adj, Tensor):
            if adj.dtype not in (torch.int32, torch.int64) or adj.dim() != 2 or adj.size(0) != 2:
                raise ValueError(f"edge_index must be a [2, E] int32/int64 tensor, got {adj.dtype} "
                                 f"{tuple(adj.shape)}")
            check_index_range(adj.reshape(-1), n, "edge_index")
            if edge_weight is not None and (edge_weight.dim() != 1 or edge_weight.numel() != adj.size(1)):
                raise ValueError(f"edge_weight must have shape [{adj.size(1)}], got {tuple(edge_weight.shape)}")
            tgt, src = (adj[1], adj[0]) if self.flow == "source_to_target" else (adj[0], adj[1])
            # PyG's add_remaining_self_loops without edge weights gives every loop weight 1.
            if edge_weight is None:
                opts["fill"] = 1.0
            return normalized(tgt, src, edge_weight, n, loops=self._loops("remaining"), **opts)
        if is_sparse_tensor(adj):
            if tuple(adj.sparse_sizes()) != (n, n):
                raise ValueError(f"adj_t must be [{n}, {n}] (x has {n} rows), got {tuple(adj.sparse_sizes())}")
            row, col, value = adj.coo()
            return normalized(row, col, value, n, loops=self._loops("replace"), **opts)
        if isinstance(adj, Graph):
            if adj.num_nodes != n:
                raise ValueError(f"the graph has {adj.num_nodes} nodes but x has {n} rows")
            t = adj.transpose()
            self_w = None
            if self._loops("replace") != "none":
                self_w = torch.full((n,), self.fill, dtype=torch.float64, device=adj.device)
            return FusedAdjacency.build(adj.rowptr, adj.col, n, self_w, self.normalize, (t.rowptr, t.col))
        raise TypeError(f"unsupported graph type {type(adj).__name__}: expected an edge_index [2, E] tensor, "
                        "a SparseTensor, a torch.sparse adjacency, a scalevgae.Graph or a sampled block")


def _same(key: tuple, obj: Any) -> bool:
    ref, version = key
    if obj is None or ref is None:
        return obj is None and ref is None
    return ref() is obj and getattr(obj, "_version", 0) == version
