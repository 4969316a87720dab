"""Graph: a validated, deduplicated CSR adjacency without self loops."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from scalevgae._util import csr_rows
from scalevgae.csr import coo_to_csr, csr_transpose, gcn_norm, index_dtype
from scalevgae.ops.propagate import gcn_propagate
from scalevgae.ops.validate import check_csr, check_index_range, check_index_tensor


class Graph:
    """Adjacency of a graph with ``num_nodes`` nodes as a sorted CSR.

    Attributes:
        rowptr: ``[num_nodes + 1]`` row pointers.
        col: ``[num_edges]`` column indices, sorted within each row, no duplicates,
            no self loops (the GCN self loop is added by the op).
        num_nodes: number of nodes.

    rowptr and col are int32 when the node count and the edge count fit (below 2^31; half the
    memory), int64 otherwise (:func:`scalevgae.csr.index_dtype`); the constructor converts
    whatever it is given. :attr:`edge_index` is int64, as PyG expects.

    An undirected graph stores both directions, so ``num_edges`` is twice the number of
    undirected edges. Normalization, transpose and symmetry are computed once and cached.
    """

    def __init__(self, rowptr: Tensor, col: Tensor, num_nodes: Optional[int] = None, *, validate: bool = True):
        n = rowptr.numel() - 1 if num_nodes is None else int(num_nodes)
        if validate:
            check_csr(rowptr, col, n)
            if rowptr.numel() != n + 1:
                raise ValueError(f"rowptr must have num_nodes + 1 = {n + 1} entries, got {rowptr.numel()}")
        dtype = index_dtype(n, col.numel())
        self.rowptr = rowptr.to(dtype)
        self.col = col.to(dtype)
        self.num_nodes = n
        self._transpose: Optional[Graph] = None
        self._symmetric: Optional[bool] = None
        self._norm: dict[torch.dtype, Tensor] = {}
        self._edge_index: Optional[Tensor] = None

    # ---- construction ----
    @classmethod
    def from_edge_index(cls, edge_index: Tensor, num_nodes: Optional[int] = None, *, undirected: bool = True) -> Graph:
        """From a ``[2, E]`` COO edge list. Duplicates and self loops are dropped; with
        ``undirected`` both directions of every edge are stored."""
        check_index_tensor(edge_index.reshape(-1) if isinstance(edge_index, Tensor) else edge_index, "edge_index")
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
        if num_nodes is None:
            num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
        check_index_range(edge_index.reshape(-1), num_nodes, "edge_index")
        # Counting sort in chunks: no 64-bit key per entry, no concatenated copy of both directions.
        rowptr, col = coo_to_csr(edge_index[0], edge_index[1], num_nodes, num_nodes, dedup=True,
                                 drop_self_loops=True, symmetric=undirected)
        g = cls(rowptr, col, num_nodes, validate=False)
        if undirected:
            g._symmetric = True
        return g

    @classmethod
    def from_scipy(cls, mat: Any, *, undirected: bool = False) -> Graph:
        """From a square scipy.sparse matrix (its nonzero pattern)."""
        import numpy as np

        coo = mat.tocoo()
        if coo.shape[0] != coo.shape[1]:
            raise ValueError(f"adjacency must be square, got shape {coo.shape}")
        ei = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        return cls.from_edge_index(ei, coo.shape[0], undirected=undirected)

    @classmethod
    def from_pyg(cls, data: Any, *, undirected: Optional[bool] = None) -> Graph:
        """From a torch_geometric ``Data`` (its ``edge_index`` and ``num_nodes``).

        ``undirected=None`` stores the edges as given (PyG datasets already hold both directions).
        """
        return cls.from_edge_index(data.edge_index, data.num_nodes, undirected=bool(undirected))

    @classmethod
    def from_sparse_tensor(cls, adj_t: Any) -> Graph:
        """From a square torch_sparse ``SparseTensor`` (row = destination, as PyG's ``adj_t``)."""
        row, col, _ = adj_t.coo()
        n = adj_t.size(0)
        if adj_t.size(1) != n:
            raise ValueError(f"adjacency must be square, got {tuple(adj_t.sizes())}")
        return cls.from_edge_index(torch.stack([row, col]), n, undirected=False)

    # ---- properties ----
    @property
    def num_edges(self) -> int:
        """Stored directed entries (twice the undirected edges of an undirected graph)."""
        return self.col.numel()

    @property
    def device(self) -> torch.device:
        return self.rowptr.device

    def degree(self) -> Tensor:
        """Out-degree of every node, ``[num_nodes]`` int64 (no self loop)."""
        return self.rowptr.diff().long()

    @property
    def edge_index(self) -> Tensor:
        """``[2, num_edges]`` int64 COO of the stored entries, row-major (built once, cached; PyG's
        ``data.edge_index`` attribute). Row ``i`` of the CSR is ``edge_index[0] == i``."""
        if self._edge_index is None:
            self._edge_index = torch.stack([csr_rows(self.rowptr, self.col.numel()), self.col.long()])
        return self._edge_index

    def to(self, device: torch.device | str) -> Graph:
        g = Graph(self.rowptr.to(device), self.col.to(device), self.num_nodes, validate=False)
        g._symmetric = self._symmetric
        return g

    def transpose(self) -> Graph:
        """The reversed graph (cached)."""
        if self._transpose is None:
            if self._symmetric:
                self._transpose = self
            else:
                rp, c = csr_transpose(self.rowptr, self.col, self.num_nodes)
                self._transpose = Graph(rp, c, self.num_nodes, validate=False)
                self._transpose._transpose = self
        return self._transpose

    @property
    def is_symmetric(self) -> bool:
        """Whether every stored (i, j) has its (j, i) (cached)."""
        if self._symmetric is None:
            t = self.transpose() if self._transpose is None else self._transpose
            self._symmetric = bool(torch.equal(t.rowptr, self.rowptr) and torch.equal(t.col, self.col))
            if self._symmetric:
                self._transpose = self
        return self._symmetric

    def gcn_norm(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """``(deg + 1)^-1/2`` per node (cached per dtype)."""
        if dtype not in self._norm:
            self._norm[dtype] = gcn_norm(self.rowptr, dtype)
        return self._norm[dtype]

    def propagate(
        self,
        x: Tensor,
        *,
        bias: Optional[Tensor] = None,
        activation: Optional[str] = None,
        add_self_loops: bool = True,
        backend: Optional[str] = None,
    ) -> Tensor:
        """``act(Ã x + bias)`` with ``Ã = D̃^-1/2 (A + I) D̃^-1/2``. x: ``[num_nodes, F]``."""
        if x.dim() != 2 or x.size(0) != self.num_nodes:
            raise ValueError(f"x must have shape [{self.num_nodes}, F], got {tuple(x.shape)}")
        norm = self.gcn_norm(torch.float64 if x.dtype == torch.float64 else torch.float32)
        t = self.transpose()
        return gcn_propagate(
            self.rowptr, self.col, x, src_scale=norm, dst_scale=norm, add_self_loops=add_self_loops,
            bias=bias, activation=activation, backend=backend, transpose=(t.rowptr, t.col), validate=False,
        )

    def reorder(self, method: str) -> tuple[Graph, Tensor]:
        """``(graph, perm)``: this graph with its nodes renumbered for locality (``"degree"`` or
        ``"rcm"``, see :mod:`scalevgae.reorder`), and ``perm [N]`` with ``perm[new_id] = old_id``
        (so features follow as ``x[perm]``; ``scalevgae.reorder.inverse(perm)`` maps old ids to new)."""
        from scalevgae import reorder

        perm = reorder.node_order(self, method)
        return reorder.permute_graph(self, perm), perm

    def __repr__(self) -> str:
        return f"Graph(num_nodes={self.num_nodes}, num_edges={self.num_edges}, device={self.device})"
