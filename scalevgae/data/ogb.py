"""OGB link-prediction directories (ogbl-collab, ogbl-ppa, ogbl-ddi, ogbl-citation2) with their
official split, read from disk exactly as ``ogb.linkproppred.LinkPropPredDataset`` leaves them.

Layout (``<root>/ogbl_collab`` after OGB's download; nothing is ever downloaded here)::

    raw/edge.csv.gz            src,dst per line (no header), node ids 0..N-1
    raw/num-node-list.csv.gz   N (optional; else max id + 1)
    raw/node-feat.csv.gz       [N, F] comma separated (optional)
    raw/edge_weight.csv.gz, raw/edge_year.csv.gz   [E] (collab; kept in ``meta``)
    split/<type>/{train,valid,test}.pt  or  split/<type>/split_dict.pt

The split files are dicts of tensors read with ``torch.load(weights_only=True)``: ``edge``
``[E, 2]`` and ``edge_neg`` ``[Q, 2]`` (Hits@K datasets), or ``source_node``/``target_node``
``[E]`` and ``target_node_neg`` ``[P, Q]`` (MRR datasets). Per-dataset settings are OGB's
``linkproppred/master.csv``: add_inverse_edge (the graph is stored undirected), the split type
and the evaluation metric.
"""

from __future__ import annotations

import os
import pickle
from typing import Any, NamedTuple, Optional, Union

import numpy as np
import torch
from torch import Tensor

from scalevgae._util import csr_rows, load_tensors_file
from scalevgae.data.dataset import GraphData
from scalevgae.data.edgelist import parse_edge_list
from scalevgae.data.features import load_features, parse_dense_text
from scalevgae.data.files import read_bytes
from scalevgae.data.split import LinkSplit
from scalevgae.graph import Graph

PathLike = Union[str, os.PathLike]


class OgbLinkInfo(NamedTuple):
    """OGB's settings for a link-prediction dataset (its master.csv row)."""

    metric: str  # "hits@K" (one shared negative set) or "mrr" (Q negatives per positive)
    add_inverse_edge: bool
    split: str


# From ogb 1.3.6 linkproppred/master.csv (tests/test_ogb.py checks this table against it).
OGB_LINK: dict[str, OgbLinkInfo] = {
    "ogbl-ppa": OgbLinkInfo("hits@100", True, "throughput"),
    "ogbl-collab": OgbLinkInfo("hits@50", True, "time"),
    "ogbl-ddi": OgbLinkInfo("hits@20", True, "target"),
    "ogbl-citation2": OgbLinkInfo("mrr", False, "time"),
}
DEFAULT_HITS = "hits@50"  # for directories with OGB's layout but a name OGB does not define


def find_csv(d: str, stem: str) -> Optional[str]:
    """``d/<stem>.csv.gz`` or ``d/<stem>.csv``, whichever exists (OGB's raw file names), else None."""
    for cand in (stem + ".csv.gz", stem + ".csv"):
        p = os.path.join(d, cand)
        if os.path.isfile(p):
            return p
    return None


def _raw(root: str, stem: str) -> Optional[str]:
    return find_csv(os.path.join(root, "raw"), stem)


def read_raw_edges(d: str, root: str) -> Any:
    """The ``edge.csv[.gz]`` of an OGB raw folder ``d`` (ids ``0..N-1``, N from
    ``num-node-list.csv[.gz]`` when present) as parsed ``src``/``dst`` arrays and ``num_nodes``."""
    edge_path = find_csv(d, "edge")
    if edge_path is None:
        raise FileNotFoundError(f"{root}: no raw/edge.csv.gz (an OGB directory needs one)")
    n = None
    nn_path = find_csv(d, "num-node-list")
    if nn_path is not None:
        counts = parse_dense_text(nn_path, dtype=np.int64).reshape(-1)
        if counts.size != 1 or counts[0] < 0:
            raise ValueError(f"{nn_path}: expected one non-negative node count, got {counts.tolist()[:5]}")
        n = int(counts[0])
    return parse_edge_list(read_bytes(edge_path), path=edge_path, delimiter=",", comment=None,
                           header=False, ids="int", remap=False, num_nodes=n)


def is_ogb_link_dir(path: PathLike) -> bool:
    """Whether ``path`` has OGB's link-prediction layout: ``raw/edge.csv[.gz]`` and ``split/``."""
    path = os.fspath(path)
    return _raw(path, "edge") is not None and os.path.isdir(os.path.join(path, "split"))


def ogb_name(path: PathLike) -> str:
    """``.../ogbl_collab`` -> ``ogbl-collab`` (OGB's directory name for the dataset)."""
    return os.path.basename(os.path.normpath(os.fspath(path))).replace("_", "-").lower()


def resolve_ogb_dir(name: str, root: Optional[PathLike]) -> Optional[str]:
    """The directory of a dataset given by OGB name (``ogbl-collab``) under ``root``, or None."""
    if not name.lower().startswith("ogbl-"):
        return None
    base = os.fspath(root) if root is not None else "."
    for cand in (name.replace("-", "_"), name):
        p = os.path.join(base, cand)
        if os.path.isdir(p):
            return p
    return None


def read_split_file(path: str) -> dict[str, Tensor]:
    """A split ``.pt`` file: a dict of tensors, read with ``weights_only=True`` (no code runs)."""
    try:
        obj = load_tensors_file(path)
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: not a tensor-only torch file (refused by torch.load(weights_only=True): "
                         f"{first[:200]})") from e
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise ValueError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return obj


def _split_dir(root: str, info: Optional[OgbLinkInfo]) -> str:
    base = os.path.join(root, "split")
    if info is not None and os.path.isdir(os.path.join(base, info.split)):
        return os.path.join(base, info.split)
    subs = sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d)))
    if len(subs) != 1:
        want = f"split/{info.split}" if info is not None else "one split/<type> folder"
        raise FileNotFoundError(f"{base}: expected {want}, found {subs or 'no folder'}")
    return os.path.join(base, subs[0])


def _read_split(d: str) -> dict[str, dict[str, Tensor]]:
    whole = os.path.join(d, "split_dict.pt")
    if os.path.isfile(whole):
        out = read_split_file(whole)
        for part in ("train", "valid", "test"):
            if not isinstance(out.get(part), dict):
                raise ValueError(f"{whole}: missing the {part!r} dict (has {sorted(out)})")
        return out  # type: ignore[return-value]
    out = {}
    for part in ("train", "valid", "test"):
        p = os.path.join(d, part + ".pt")
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{d}: no {part}.pt (an OGB split folder holds train/valid/test.pt)")
        out[part] = read_split_file(p)
    return out


def _index(part: dict[str, Any], key: str, shape: tuple[Optional[int], ...], n: int, where: str) -> Tensor:
    """An int64 index tensor ``part[key]`` with the given shape (None = any) and values in [0, n)."""
    if key not in part:
        raise ValueError(f"{where}: missing {key!r} (has {sorted(part)})")
    t = part[key]
    if not isinstance(t, Tensor):
        raise ValueError(f"{where}: {key!r} must be a tensor, got {type(t).__name__}")
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise ValueError(f"{where}: {key!r} must hold integer node ids, got {t.dtype}")
    if t.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{where}: {key!r} must have shape {want}, got {list(t.shape)}")
    t = t.long()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
        raise ValueError(f"{where}: {key!r} has node ids outside [0, {n})")
    return t


def _pairs(part: dict[str, Any], mrr: bool, n: int, where: str) -> Tensor:
    """Positive pairs ``[2, P]`` of one split part."""
    if mrr:
        src = _index(part, "source_node", (None,), n, where)
        dst = _index(part, "target_node", (src.numel(),), n, where)
        return torch.stack([src, dst])
    return _index(part, "edge", (None, 2), n, where).t().contiguous()


def _negatives(part: dict[str, Any], pos: Tensor, mrr: bool, n: int, where: str) -> Tensor:
    """OGB's fixed negatives as pairs ``[2, Q]``; for MRR ``[2, P * Q]``, source-major (row i's
    Q negatives are columns ``i*Q .. i*Q+Q-1``)."""
    if mrr:
        neg = _index(part, "target_node_neg", (pos.size(1), None), n, where)
        if neg.size(1) == 0:
            raise ValueError(f"{where}: 'target_node_neg' has no negatives per source")
        return torch.stack([pos[0].repeat_interleave(neg.size(1)), neg.reshape(-1)])
    return _index(part, "edge_neg", (None, 2), n, where).t().contiguous()


def _infer_info(split: dict[str, dict[str, Tensor]], d: str) -> OgbLinkInfo:
    if "target_node_neg" in split["valid"]:
        return OgbLinkInfo("mrr", False, os.path.basename(d))
    return OgbLinkInfo(DEFAULT_HITS, True, os.path.basename(d))


def official_split(root: PathLike, num_nodes: int, info: Optional[OgbLinkInfo] = None) -> tuple[LinkSplit, OgbLinkInfo]:
    """OGB's split of the dataset in ``root`` as a :class:`LinkSplit` with ``metric`` set.

    The training graph holds the training edges only (both directions when the dataset adds
    inverse edges); ``train_pos`` are those edges once each (i < j when undirected, duplicates
    such as collab's repeated collaborations kept once, self loops dropped).
    """
    root = os.fspath(root)
    d = _split_dir(root, info)
    split = _read_split(d)
    info = info or _infer_info(split, d)
    mrr = info.metric == "mrr"
    n = num_nodes
    w = {p: os.path.join(d, p + ".pt") for p in ("train", "valid", "test")}
    train = _pairs(split["train"], mrr, n, w["train"])
    train_graph = Graph.from_edge_index(train, n, undirected=info.add_inverse_edge)
    # The training pairs in the graph's index dtype (int32 below 2^31), without caching the graph's
    # int64 edge_index (16 bytes per entry for the rest of the run).
    col = train_graph.col
    ei = torch.stack([csr_rows(train_graph.rowptr, col.numel(), dtype=col.dtype), col])
    train_pos = ei[:, ei[0] < ei[1]] if info.add_inverse_edge else ei
    val_pos = _pairs(split["valid"], mrr, n, w["valid"])
    test_pos = _pairs(split["test"], mrr, n, w["test"])
    return LinkSplit(
        train_graph=train_graph, train_pos=train_pos.contiguous(),
        val_pos=val_pos, val_neg=_negatives(split["valid"], val_pos, mrr, n, w["valid"]),
        test_pos=test_pos, test_neg=_negatives(split["test"], test_pos, mrr, n, w["test"]),
        metric=info.metric,
    ), info


def _column(path: str, rows: int) -> np.ndarray:
    col = parse_dense_text(path, dtype=np.float64).reshape(-1)
    if col.size != rows:
        raise ValueError(f"{path}: expected {rows} values (one per edge), got {col.size}")
    return col


def load_ogb_link(root: PathLike, *, name: Optional[str] = None, mmap: bool = True) -> GraphData:
    """An OGB link-prediction directory (see the module docstring) with its official split in
    ``GraphData.split`` and its settings in ``meta`` (``ogb_metric``, ``add_inverse_edge``).

    ``graph`` is the full edge list as OGB's reader returns it (both directions when the dataset
    adds inverse edges); training uses ``split.train_graph``. A name OGB does not define (any
    directory with this layout) gets MRR when the split has ``target_node_neg`` (directed), else
    Hits@50 on an undirected graph.

    Raises:
        ValueError / FileNotFoundError naming the file for anything malformed or missing.
    """
    root = os.fspath(root)
    name = name or ogb_name(root)
    info = OGB_LINK.get(name)
    parsed = read_raw_edges(os.path.join(root, "raw"), root)
    n = parsed.num_nodes
    split, info = official_split(root, n, info)
    ei = torch.from_numpy(np.stack([parsed.src, parsed.dst]))
    graph = Graph.from_edge_index(ei, n, undirected=info.add_inverse_edge)
    meta: dict[str, Any] = {"source": root, "ogb_metric": info.metric, "add_inverse_edge": info.add_inverse_edge,
                            "num_input_edges": int(parsed.src.size)}
    del ei
    for extra in ("edge_weight", "edge_year"):
        p = _raw(root, extra)
        if p is not None:
            meta[extra] = _column(p, parsed.src.size)
    feat_path = _raw(root, "node-feat")
    x = load_features(feat_path, mmap=mmap, num_nodes=n) if feat_path is not None else None
    return GraphData(graph, x=x, name=name, meta=meta, split=split)
