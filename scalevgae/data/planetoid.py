"""Planetoid citation graphs (Cora, Citeseer, Pubmed) from the ``ind.<name>.*`` files.

The files are Python-2 pickles. They are read with a restricted unpickler that admits only
the handful of numpy/scipy/builtin names those files contain; scipy matrices are never
instantiated from the pickle (their state is captured and rebuilt through the public
constructor), so a malicious file cannot run code. The assembly (test-index reordering,
Citeseer's isolated test nodes padded with zero rows) follows Kipf & Welling's ``load_data``.
"""

from __future__ import annotations

import io
import os
import pickle
from collections import defaultdict
from typing import Any

import numpy as np
import torch

from scalevgae.data.dataset import GraphData
from scalevgae.graph import Graph

NAMES = ("cora", "citeseer", "pubmed")
_PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph")

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked for something outside the Planetoid allow-list."""


class _SparseState:
    """Stands in for a pickled scipy sparse matrix: keeps its state, runs nothing."""

    kind = "csr"

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _CscState(_SparseState):
    kind = "csc"


_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("scipy.sparse.csr", "csr_matrix"): _SparseState,
    ("scipy.sparse._csr", "csr_matrix"): _SparseState,
    ("scipy.sparse.csc", "csc_matrix"): _CscState,
    ("scipy.sparse._csc", "csc_matrix"): _CscState,
    ("collections", "defaultdict"): defaultdict,
    ("__builtin__", "list"): list,
    ("builtins", "list"): list,
}


def _latin1_encode(obj: str, encoding: str = "utf-8") -> bytes:
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, "latin1").
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("only _codecs.encode(str, 'latin1') is allowed in a Planetoid file")
    return obj.encode("latin1")


_ALLOWED[("_codecs", "encode")] = _latin1_encode


def find_planetoid_root() -> str | None:
    """Where the Planetoid files are: ``$SCALEVGAE_PLANETOID_ROOT``, else ``shared/datasets/planetoid``
    next to the repository (``../shared`` or ``../../shared`` from it), else None."""
    env = os.environ.get("SCALEVGAE_PLANETOID_ROOT")
    if env:
        return env
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for up in ("..", os.path.join("..", "..")):
        cand = os.path.normpath(os.path.join(repo, up, "shared", "datasets", "planetoid"))
        if os.path.isdir(cand):
            return cand
    return None


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler admitting only the globals found in Planetoid files (see ``_ALLOWED``)."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"global '{module}.{name}' is not allowed in a Planetoid file") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("persistent ids are not allowed in a Planetoid file")


def restricted_load(data: bytes) -> Any:
    """Unpickle ``data`` (latin-1 strings, as Python-2 numpy pickles need) with the allow-list."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def _to_matrix(obj: Any, path: str) -> Any:
    """A scipy CSR matrix (features) or a dense 2-D ndarray (one-hot labels) from the pickle."""
    import scipy.sparse as sp

    if isinstance(obj, _SparseState):
        st = obj.state if isinstance(obj.state, dict) else {}
        shape = st.get("_shape", st.get("shape"))
        try:
            parts = (np.asarray(st["data"]), np.asarray(st["indices"]), np.asarray(st["indptr"]))
            cls = sp.csr_matrix if obj.kind == "csr" else sp.csc_matrix
            return cls(parts, shape=tuple(int(s) for s in shape))
        except Exception as e:
            raise ValueError(f"{path}: malformed sparse matrix in Planetoid file ({e})") from None
    if isinstance(obj, np.ndarray) and obj.ndim == 2 and obj.dtype != object:
        return obj
    raise ValueError(f"{path}: expected a sparse matrix or a 2-D array, got {type(obj).__name__}")


def _read(root: str, name: str, part: str) -> Any:
    path = os.path.join(root, f"ind.{name}.{part}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Planetoid file not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        obj = restricted_load(data)
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}; refused (loading it could run code): use the original "
                                "Planetoid files") from None
    except Exception as e:
        raise ValueError(f"{path}: malformed Planetoid file ({type(e).__name__}: {e})") from None
    if part == "graph":
        if not isinstance(obj, dict) or not all(
            isinstance(k, (int, np.integer)) and isinstance(v, (list, tuple)) for k, v in obj.items()
        ):
            raise ValueError(f"{path}: expected a dict of node -> list of neighbours")
        return obj
    return _to_matrix(obj, path)


def _read_index(root: str, name: str) -> np.ndarray:
    path = os.path.join(root, f"ind.{name}.test.index")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Planetoid file not found: {path}")
    try:
        with open(path) as f:
            return np.array([int(line) for line in f if line.strip()], dtype=np.int64)
    except ValueError as e:
        raise ValueError(f"{path}: malformed test index ({e})") from None


def load_planetoid(root: str, name: str) -> GraphData:
    """Read ``root/ind.<name>.{x,y,tx,ty,allx,ally,graph,test.index}``.

    Returns GraphData with the undirected graph (duplicates and self loops dropped), dense
    float32 features ``x [N, F]`` (raw, not row-normalized) and ``y [N]`` int64 class ids
    (-1 for Citeseer's isolated test nodes, which have no label).
    Raises FileNotFoundError / ValueError / pickle.UnpicklingError naming the file.
    """
    import scipy.sparse as sp

    name = name.lower()
    if name not in NAMES:
        raise ValueError(f"unknown Planetoid dataset {name!r}; expected one of {NAMES}")
    objs = {p: _read(root, name, p) for p in _PARTS}
    test_idx = _read_index(root, name)
    allx, tx, ally, ty = (sp.csr_matrix(objs[k]) if k.endswith("x") else np.asarray(objs[k])
                          for k in ("allx", "tx", "ally", "ty"))
    if test_idx.size != tx.shape[0] or tx.shape[0] != ty.shape[0]:
        raise ValueError(f"{os.path.join(root, f'ind.{name}.test.index')}: {test_idx.size} test ids but "
                         f"tx has {tx.shape[0]} rows and ty {ty.shape[0]}")
    test_sorted = np.sort(test_idx)
    if name == "citeseer":
        # Some test ids have no row in tx (isolated nodes): pad tx/ty to the full id range.
        full = test_sorted[-1] - test_sorted[0] + 1
        tx_ext = sp.lil_matrix((full, tx.shape[1]), dtype=tx.dtype)
        tx_ext[test_sorted - test_sorted[0], :] = tx
        ty_ext = np.zeros((full, ty.shape[1]), dtype=ty.dtype)
        ty_ext[test_sorted - test_sorted[0], :] = ty
        tx, ty = tx_ext.tocsr(), ty_ext
    feats = sp.vstack([allx, tx]).tolil()
    labels = np.vstack([ally, ty])
    n = feats.shape[0]
    if test_sorted.max(initial=-1) >= n or test_sorted.min(initial=0) < 0:
        raise ValueError(f"ind.{name}.test.index: ids out of range for {n} nodes")
    feats[test_idx, :] = feats[test_sorted, :]
    labels[test_idx, :] = labels[test_sorted, :]
    x = torch.from_numpy(np.asarray(feats.todense(), dtype=np.float32))
    y = torch.from_numpy(np.where(labels.sum(1) > 0, labels.argmax(1), -1).astype(np.int64))

    graph = objs["graph"]
    src = np.fromiter((int(k) for k, v in graph.items() for _ in v), dtype=np.int64)
    dst = np.fromiter((int(u) for v in graph.values() for u in v), dtype=np.int64)
    if src.size and (max(src.max(), dst.max()) >= n or min(src.min(), dst.min()) < 0):
        raise ValueError(f"{os.path.join(root, f'ind.{name}.graph')}: node ids out of range for {n} nodes")
    g = Graph.from_edge_index(torch.from_numpy(np.stack([src, dst])), n, undirected=True)
    return GraphData(graph=g, x=x, y=y, name=name, meta={"root": os.path.abspath(root)})
