"""Loaders for the data users have: .npz, edge lists, scipy, PyG, torch_sparse, OGB directories.

Every loader returns a :class:`GraphData`. Nothing is downloaded; ``.npz`` files are read with
``allow_pickle=False``; malformed files raise ValueError (with the line number for text files).
"""

from __future__ import annotations

import csv
import os
import zipfile
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import Tensor

from scalevgae.data.dataset import GraphData
from scalevgae.data.edgelist import parse_edge_list
from scalevgae.data.features import check_features, load_features, parse_dense_text
from scalevgae.data.files import open_npz, read_bytes
from scalevgae.data.ogb import find_csv, is_ogb_link_dir, load_ogb_link, read_raw_edges
from scalevgae.graph import Graph

PathLike = Union[str, os.PathLike]
EDGE_LIST_SUFFIXES = (".txt", ".csv", ".tsv", ".edges", ".edgelist", ".el")


def _name_of(path: str) -> str:
    base = os.path.basename(os.path.normpath(path))
    for suf in (".gz", ".npz", *EDGE_LIST_SUFFIXES):
        if base.endswith(suf):
            base = base[: -len(suf)]
    return base or "graph"


def _get(z: Any, key: str, path: str) -> np.ndarray:
    try:
        return z[key]
    except ValueError as e:  # object arrays refused by allow_pickle=False, corrupt members
        raise ValueError(f"{path}: array {key!r} cannot be read safely ({e})") from e
    except (zipfile.BadZipFile, OSError, EOFError, MemoryError) as e:
        raise ValueError(f"{path}: array {key!r} is corrupt ({type(e).__name__}: {e})") from e


def _labels(y: Any, num_nodes: int, name: str) -> Tensor:
    y = torch.as_tensor(np.asarray(y)) if not isinstance(y, Tensor) else y
    if y.dim() != 1 or y.numel() != num_nodes:
        raise ValueError(f"{name} must have shape [{num_nodes}], got {tuple(y.shape)}")
    if y.is_floating_point():
        if not bool(torch.isfinite(y).all()) or not bool((y == y.round()).all()):
            raise ValueError(f"{name} must hold integer class labels")
    elif y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"{name} must hold integer class labels, got {y.dtype}")
    return y.long()


def _edge_index_array(ei: np.ndarray, path: str) -> np.ndarray:
    if ei.ndim != 2 or 2 not in ei.shape:
        raise ValueError(f"{path}: edge_index must have shape [2, E], got {ei.shape}")
    if ei.shape[0] != 2:
        ei = ei.T  # [E, 2]
    if not (np.issubdtype(ei.dtype, np.integer) or ei.dtype == np.bool_):
        if np.issubdtype(ei.dtype, np.floating) and ei.size and np.all(np.isfinite(ei)) and np.all(ei == np.round(ei)):
            ei = ei.astype(np.int64)
        else:
            raise TypeError(f"{path}: edge_index must hold integers, got {ei.dtype}")
    if ei.dtype == np.uint64 and ei.size and int(ei.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{path}: edge_index has an index that does not fit in int64")
    return ei.astype(np.int64, copy=False)


def load_npz(
    path: PathLike, *, undirected: bool = True, dtype: torch.dtype = torch.float32, name: Optional[str] = None,
    features: Optional[PathLike] = None, mmap: bool = True,
) -> GraphData:
    """A graph from an ``.npz`` archive (read with ``allow_pickle=False``).

    Keys: ``edge_index`` ``[2, E]`` (or ``[E, 2]``) non-negative integers; optional ``x``
    ``[N, F]`` numbers (finite), ``y`` ``[N]`` integer labels, ``num_nodes`` (scalar),
    ``node_ids`` ``[N]`` (the user's id of each node). ``N`` is ``num_nodes``, else ``x.shape[0]``,
    else ``max(edge_index) + 1``. A ``scipy.sparse.save_npz`` file is read as its adjacency.
    ``features``: a separate features file instead of ``x`` (e.g. a ``.npy`` memory-mapped
    with ``mmap``, for features too large to load; see :func:`load_features`).

    Raises:
        ValueError/TypeError naming the file and key for missing keys, bad shapes, dtypes,
        out-of-range indices or NaN/inf features.
    """
    path = os.fspath(path)
    with open_npz(path) as z:
        files = set(z.files)
        if "edge_index" not in files and {"format", "shape", "data"} <= files:
            import scipy.sparse as sp

            return from_scipy(sp.load_npz(path), undirected=undirected, name=name or _name_of(path))
        if "edge_index" not in files:
            raise ValueError(f"{path}: missing the 'edge_index' array (has {sorted(files)})")
        ei = _edge_index_array(_get(z, "edge_index", path), path)
        x = _get(z, "x", path) if "x" in files and features is None else None
        y = _get(z, "y", path) if "y" in files else None
        node_ids = _get(z, "node_ids", path) if "node_ids" in files else None
        n_arr = _get(z, "num_nodes", path) if "num_nodes" in files else None
    if n_arr is not None:
        if n_arr.size != 1 or not np.issubdtype(n_arr.dtype, np.integer) or int(n_arr.reshape(-1)[0]) < 0:
            raise ValueError(f"{path}: num_nodes must be a non-negative integer scalar, got {n_arr!r}")
        n = int(n_arr.reshape(-1)[0])
    elif features is not None:
        x = load_features(features, mmap=mmap)
        n = x.shape[0]
    elif x is not None and x.ndim >= 1:
        n = x.shape[0]
    else:
        n = int(ei.max()) + 1 if ei.size else 0
    if ei.size:
        lo, hi = int(ei.min()), int(ei.max())
        if lo < 0:
            raise ValueError(f"{path}: edge_index has a negative index ({lo})")
        if hi >= n:
            raise ValueError(f"{path}: edge_index has index {hi} but the graph has {n} nodes")
    graph = Graph.from_edge_index(torch.from_numpy(ei), n, undirected=undirected)
    xt = None
    if features is not None:
        xt = x if x is not None else load_features(features, mmap=mmap)
        check_features(xt, n, name=os.fspath(features))
    elif x is not None:
        if x.ndim != 2:
            raise ValueError(f"{path}: x must have shape [N, F], got {x.shape}")
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
            raise TypeError(f"{path}: x must hold numbers, got {x.dtype}")
        xt = torch.from_numpy(np.ascontiguousarray(x)).to(dtype)
        check_features(xt, n, name=f"{path}: x")
    yt = _labels(y, n, f"{path}: y") if y is not None else None
    if node_ids is not None and (node_ids.ndim != 1 or node_ids.shape[0] != n):
        raise ValueError(f"{path}: node_ids must have shape [{n}], got {node_ids.shape}")
    return GraphData(graph, x=xt, y=yt, name=name or _name_of(path), node_ids=node_ids,
                     meta={"source": path})


def load_edge_list(
    path: PathLike,
    *,
    delimiter: Optional[str] = None,
    comment: Optional[str] = "#",
    header: Optional[bool] = None,
    undirected: bool = True,
    ids: str = "auto",
    remap: Optional[bool] = None,
    num_nodes: Optional[int] = None,
    features: Optional[PathLike] = None,
    mmap: bool = True,
    name: Optional[str] = None,
) -> GraphData:
    """A graph from a text edge list (``.txt``/``.csv``/``.tsv``/..., optionally ``.gz``).

    One edge per line: ``source target [ignored columns...]``, separated by whitespace, commas
    or ``delimiter``. Lines may be blank; ``comment`` (default ``#``) starts a comment anywhere
    on a line. ``header=None`` detects a first line of column names. Node ids (no whitespace
    inside) are decimal integers or arbitrary strings (``ids="auto"|"int"|"str"``); strings, and
    integers that are negative or sparse (fewer than half of ``0..max`` used; ``remap=True``
    forces it), are remapped to ``0..N-1`` in sorted order and the originals are returned in
    ``GraphData.node_ids`` (save them with :func:`save_node_ids`). Parsing is vectorized
    (numpy over the whole file), about 1-2 s per million lines on one core.

    Args:
        undirected: store both directions of every edge (default); False keeps them as given.
        num_nodes: total nodes when integer ids are kept (adds isolated nodes past the max id).
        features: optional features file for :func:`load_features`. Its rows are indexed by
            the integer ids (so integer ids are then not remapped unless ``remap=True``, and
            N is the number of rows); with string ids rows follow ``node_ids`` (sorted) order.

    Raises:
        EdgeListError (a ValueError) with the 1-based line number of a malformed line.
    """
    path = os.fspath(path)
    x = None
    rows = None
    if features is not None:
        # Feature rows are indexed by the integer ids, so they fix N and ids stay as given.
        x = load_features(features, mmap=mmap, num_nodes=None)
        if ids != "str" and remap is None:
            remap = False
            rows = x.shape[0] if num_nodes is None else None
    parsed = parse_edge_list(read_bytes(path), path=path, delimiter=delimiter, comment=comment,
                             header=header, ids=ids, remap=remap, num_nodes=num_nodes)
    if rows is not None and parsed.node_ids is None:
        if parsed.num_nodes > rows:
            raise ValueError(f"{features}: {rows} feature rows, but {path} has node ids up to "
                             f"{parsed.num_nodes - 1}; the features file needs one row per node id")
        parsed = parsed._replace(num_nodes=rows)  # rows past the largest id are isolated nodes
    if x is not None and x.shape[0] != parsed.num_nodes:
        raise ValueError(f"{features}: {x.shape[0]} feature rows but {path} has {parsed.num_nodes} nodes; "
                         "the features file needs one row per node")
    ei = torch.from_numpy(np.stack([parsed.src, parsed.dst]))
    graph = Graph.from_edge_index(ei, parsed.num_nodes, undirected=undirected)
    return GraphData(graph, x=x, name=name or _name_of(path), node_ids=parsed.node_ids,
                     meta={"source": path, "num_input_edges": int(parsed.src.size)})


def is_ogb_dir(path: PathLike) -> bool:
    """Whether ``path`` (or ``path/raw``) holds an OGB-style ``edge.csv[.gz]``."""
    path = os.fspath(path)
    return os.path.isdir(path) and any(
        find_csv(d, "edge") is not None for d in (os.path.join(path, "raw"), path)
    )


def load_ogb_dir(
    root: PathLike, *, undirected: bool = True, mmap: bool = True, name: Optional[str] = None
) -> GraphData:
    """A graph from an OGB-style local directory, read from disk only (no download).

    Looks in ``root/raw`` (or ``root`` itself) for ``edge.csv.gz`` (``src,dst`` per line, ids
    ``0..N-1``), optional ``num-node-list.csv.gz`` (N), ``node-feat.csv.gz`` (``[N, F]`` comma
    separated), ``node-label.csv.gz`` (``[N]``). A ``node-feat.npy`` next to them is used
    instead of the CSV, memory-mapped when ``mmap``.
    """
    root = os.fspath(root)
    d = os.path.join(root, "raw") if os.path.isdir(os.path.join(root, "raw")) else root
    parsed = read_raw_edges(d, root)
    n = parsed.num_nodes
    graph = Graph.from_edge_index(torch.from_numpy(np.stack([parsed.src, parsed.dst])), n, undirected=undirected)
    x: Any = None
    npy = os.path.join(d, "node-feat.npy")
    feat_path = npy if os.path.isfile(npy) else find_csv(d, "node-feat")
    if feat_path is not None:
        x = load_features(feat_path, mmap=mmap, num_nodes=n)
    y = None
    lab_path = find_csv(d, "node-label")
    if lab_path is not None:
        lab = parse_dense_text(lab_path, dtype=np.float64)
        y = _labels(torch.from_numpy(lab.reshape(-1)), n, lab_path)
    return GraphData(graph, x=x, y=y, name=name or _name_of(root), meta={"source": root})


def from_scipy(
    mat: Any, *, x: Any = None, y: Any = None, undirected: bool = False, name: str = "scipy"
) -> GraphData:
    """A graph from a square scipy.sparse matrix (its nonzero pattern; values are ignored).

    ``undirected=True`` adds the reverse of every entry (for a triangular matrix)."""
    import scipy.sparse as sp

    if not sp.issparse(mat):
        raise TypeError(f"expected a scipy.sparse matrix, got {type(mat).__name__}")
    graph = Graph.from_scipy(mat, undirected=undirected)
    return _with_xy(graph, x, y, name)


def _with_xy(graph: Graph, x: Any, y: Any, name: str, node_ids: Any = None) -> GraphData:
    if x is not None:
        x = torch.as_tensor(x) if not (isinstance(x, (Tensor, np.memmap))) else x
        if isinstance(x, Tensor) and not x.is_floating_point():
            x = x.float()
        check_features(x, graph.num_nodes)
    yt = _labels(y, graph.num_nodes, "y") if y is not None else None
    return GraphData(graph, x=x, y=yt, name=name, node_ids=node_ids)


def from_pyg(data: Any, *, undirected: Optional[bool] = None, name: str = "pyg") -> GraphData:
    """A graph from a torch_geometric ``Data`` (``edge_index`` or ``adj_t``, ``x``, ``y``).

    ``undirected=None`` keeps the edges as given (PyG datasets store both directions); labels
    are kept when ``y`` is ``[N]``."""
    if getattr(data, "adj_t", None) is not None:
        graph = Graph.from_sparse_tensor(data.adj_t)
    elif getattr(data, "edge_index", None) is not None:
        graph = Graph.from_pyg(data, undirected=undirected)
    else:
        raise ValueError("the PyG Data object has neither edge_index nor adj_t")
    y = getattr(data, "y", None)
    if isinstance(y, Tensor) and (y.dim() != 1 or y.numel() != graph.num_nodes):
        y = None
    return _with_xy(graph, getattr(data, "x", None), y, name)


def from_sparse_tensor(adj_t: Any, *, x: Any = None, y: Any = None, name: str = "sparse_tensor") -> GraphData:
    """A graph from a square torch_sparse ``SparseTensor`` (rows are targets, PyG's ``adj_t``)."""
    return _with_xy(Graph.from_sparse_tensor(adj_t), x, y, name)


def save_node_ids(path: PathLike, node_ids: Any) -> None:
    """Save the node-index -> original-id mapping so outputs can be joined back to user ids.

    ``.npy``: the array itself (strings as a unicode array, no pickle). Otherwise a CSV with a
    header ``index,node_id`` and one row per node (``node_ids[i]`` is the id of node ``i``).
    """
    path = os.fspath(path)
    arr = np.asarray(node_ids)
    if arr.ndim != 1:
        raise ValueError(f"node_ids must be 1-D, got shape {arr.shape}")
    if arr.dtype == object:
        arr = arr.astype(str)
    if path.endswith(".npy"):
        np.save(path, arr, allow_pickle=False)
        return
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["index", "node_id"])
        w.writerows(zip(range(arr.size), arr.tolist()))


def load_node_ids(path: PathLike) -> np.ndarray:
    """Read what :func:`save_node_ids` wrote (int64 ids when all are integers, else str)."""
    path = os.fspath(path)
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != ["index", "node_id"]:
        raise ValueError(f"{path}: expected a header 'index,node_id'")
    ids = [r[1] for r in rows[1:]]
    try:
        return np.array([int(v) for v in ids], dtype=np.int64)
    except ValueError:
        return np.array(ids, dtype=str)


def load_graph(path_or_dir: PathLike, **kw: Any) -> GraphData:
    """Load a graph, dispatching on what ``path_or_dir`` is.

    - an OGB link-prediction directory (``raw/edge.csv.gz`` and ``split/``):
      :func:`scalevgae.data.ogb.load_ogb_link`, with the official split in ``GraphData.split``
    - another directory with ``raw/edge.csv.gz``: :func:`load_ogb_dir`
    - ``*.npz``: :func:`load_npz`
    - ``*.mtx`` (Matrix Market): its sparsity pattern via scipy
    - ``*.txt``, ``*.csv``, ``*.tsv``, ``*.edges``, ``*.edgelist``, ``*.el`` (each optionally
      ``.gz``): :func:`load_edge_list`

    Keyword arguments go to the chosen loader; ``features=FILE`` (read by
    :func:`~scalevgae.data.features.load_features`, ``.npy`` memory-mapped) works for every format.
    """
    path = os.fspath(path_or_dir)
    if os.path.isdir(path):
        features = kw.pop("features", None)  # every format takes a separate features file
        if is_ogb_link_dir(path):  # OGB's add_inverse_edge rule decides directedness, not `undirected`
            data = load_ogb_link(path, **{k: v for k, v in kw.items() if k != "undirected"})
        elif is_ogb_dir(path):
            data = load_ogb_dir(path, **kw)
        else:
            raise ValueError(f"{path}: a directory, but no raw/edge.csv.gz (OGB layout) inside")
        if features is not None:
            data.x = load_features(features, mmap=kw.get("mmap", True), num_nodes=data.num_nodes)
        return data
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or directory")
    base = path[:-3] if path.endswith(".gz") else path
    if path.endswith(".npz"):
        return load_npz(path, **kw)
    if base.endswith(".mtx"):
        import scipy.io

        try:
            mat = scipy.io.mmread(path)
        except Exception as e:  # scipy raises many types for malformed files
            raise ValueError(f"{path}: not a valid Matrix Market file ({e})") from e
        undirected = kw.pop("undirected", True)
        return from_scipy(mat, undirected=undirected, name=kw.pop("name", _name_of(base[:-4])), **kw)
    if base.endswith(EDGE_LIST_SUFFIXES):
        return load_edge_list(path, **kw)
    raise ValueError(f"{path}: unknown format; expected a directory (OGB layout), .npz, .mtx or an edge list "
                     f"({', '.join(EDGE_LIST_SUFFIXES)}, optionally .gz)")


def write_topk_csv(
    path: PathLike, query_ids: Any, indices: Any, scores: Any, node_ids: Any = None, *, sigmoid: bool = False
) -> int:
    """Write ``topk_links`` results as CSV rows ``node,candidate,score``.

    Args:
        query_ids: ``[Q]`` node indices of the rows of ``indices``/``scores``.
        indices, scores: ``[Q, k]`` from :func:`scalevgae.ops.topk_links` (``-1`` padding skipped).
        node_ids: optional ``[N]`` original ids (``GraphData.node_ids``): nodes and candidates are
            written as the user's ids instead of indices.
        sigmoid: write probabilities instead of logits.

    Returns:
        the number of rows written (header excluded).
    """
    q = torch.as_tensor(query_ids).reshape(-1).cpu().long()
    idx = torch.as_tensor(indices).cpu().long()
    sc = torch.as_tensor(scores).cpu().double()
    if idx.dim() != 2 or idx.shape != sc.shape or idx.size(0) != q.numel():
        raise ValueError(f"indices {tuple(idx.shape)} and scores {tuple(sc.shape)} must be [Q, k] with "
                         f"Q = len(query_ids) = {q.numel()}")
    if sigmoid:
        sc = torch.sigmoid(sc)
    keep = idx >= 0
    src = q[:, None].expand_as(idx)[keep].numpy()
    dst = idx[keep].numpy()
    val = sc[keep].numpy()
    if node_ids is not None:
        ids = np.asarray(node_ids)
        src, dst = ids[src], ids[dst]
    with open(os.fspath(path), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["node", "candidate", "score"])
        w.writerows(zip(src.tolist(), dst.tolist(), (f"{v:.6g}" for v in val.tolist())))
    return int(val.size)
