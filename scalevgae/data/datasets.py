"""Dataset resolution: what ``--dataset NAME`` means, where its files are, and whether they changed.

``DatasetSpec`` names a graph and its link split: a Planetoid name (cora | citeseer | pubmed,
the ``ind.<name>.*`` files in ``root``), ``synthetic`` (a seeded planted-partition graph), or a
path that :func:`scalevgae.data.load_graph` reads (.npz, .mtx, edge lists, OGB directories).
:meth:`DatasetSpec.resolved` makes every path absolute, so a saved run works from any directory;
:func:`fingerprint` records the input files cheaply (size + content hash of at most 8 MiB per
file) so a run refuses data that changed since it was trained.

Every field carries ``metadata={"help": ...}``: the command line generates its options from them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from scalevgae.data.dataset import GraphData
from scalevgae.data.features import default_features, load_features
from scalevgae.graph import Graph

PLANETOID = ("cora", "citeseer", "pubmed")
X_DTYPES = ("auto", "float32", "bfloat16", "float16")  # --x-dtype
_HASH_WHOLE = 8 << 20  # files up to this size are hashed whole; larger ones by head + tail
_HASH_PART = 4 << 20


class DataChangedError(ValueError):
    """The files a run was trained on are not the ones found now."""


@dataclass
class DatasetSpec:
    """The graph of a run and its link split (see the module docstring)."""

    dataset: str = field(default="synthetic", metadata={
        "help": "cora | citeseer | pubmed | synthetic | path to an .npz, .mtx, edge list or OGB directory"})
    root: Optional[str] = field(default=None, metadata={
        "help": "folder with the Planetoid ind.<name>.* files (default: $SCALEVGAE_PLANETOID_ROOT or "
                "shared/datasets/planetoid next to the repository), or with OGB's ogbl_* folders"})
    features: Optional[str] = field(default=None, metadata={
        "help": "node features file (.npy, .npz with key x, or a text matrix), one row per node "
                "(default: the dataset's own, else --feature-dim generated columns)"})
    delimiter: Optional[str] = field(default=None, metadata={
        "help": "edge lists: column separator (default: whitespace or comma)"})
    directed: bool = field(default=False, metadata={
        "help": "edge lists: keep edges as given instead of adding the reverse of each"})
    ids: str = field(default="auto", metadata={
        "help": "edge lists: node ids are integers or arbitrary strings (auto: detect)",
        "choices": ("auto", "int", "str")})
    nodes: int = field(default=2000, metadata={"help": "synthetic: number of nodes"})
    avg_degree: float = field(default=16.0, metadata={"help": "synthetic: average degree"})
    graph_seed: int = field(default=0, metadata={"help": "seed of the synthetic graph and of generated features"})
    feature_dim: int = field(default=32, metadata={"help": "columns of the features generated for featureless graphs"})
    x_dtype: str = field(default="auto", metadata={
        "help": "store the node features in this dtype (auto: as read, integers as float32); bfloat16 or "
                "float16 halve their memory and the bytes the loader reads per row (sums stay float32)",
        "choices": X_DTYPES})
    val: float = field(default=0.05, metadata={"help": "validation edge fraction"})
    test: float = field(default=0.10, metadata={"help": "test edge fraction"})

    @property
    def kind(self) -> str:
        low = self.dataset.lower()
        return low if low in PLANETOID or low == "synthetic" else "file"

    @property
    def label(self) -> str:
        """A short name for messages ("cora", "edges.csv")."""
        return self.dataset.lower() if self.kind != "file" else os.path.basename(os.path.normpath(self.dataset))

    def resolved(self) -> DatasetSpec:
        """A copy with absolute paths (and the Planetoid root found); raises FileNotFoundError naming
        the option to fix when the data is not there."""
        from scalevgae.data.planetoid import find_planetoid_root

        s = dataclasses.replace(self)
        if s.kind in PLANETOID:
            s.dataset = s.kind
            root = s.root or find_planetoid_root()
            if root is None:
                raise FileNotFoundError(f"--dataset {s.dataset}: no Planetoid folder found; pass --root DIR "
                                        f"(a folder with the ind.{s.dataset}.* files)")
            s.root = os.path.abspath(os.path.expanduser(root))
            missing = [p for p in _planetoid_files(s.root, s.dataset) if not os.path.isfile(p)]
            if missing:
                raise FileNotFoundError(f"--root {s.root}: Planetoid file not found: {os.path.basename(missing[0])} "
                                        f"(pass --root DIR with the ind.{s.dataset}.* files)")
        elif s.kind == "file":
            from scalevgae.data.ogb import resolve_ogb_dir

            path = os.path.abspath(os.path.expanduser(s.dataset))
            ogb_dir = None if os.path.exists(path) else resolve_ogb_dir(s.dataset, s.root)
            if ogb_dir is not None:  # an OGB name (ogbl-collab) found under --root (nothing is downloaded)
                path = os.path.abspath(ogb_dir)
            elif s.dataset.lower().startswith("ogbl-") and not os.path.exists(path):
                raise FileNotFoundError(f"--dataset {s.dataset}: no {s.dataset.replace('-', '_')} folder in --root "
                                        f"{s.root or '.'} (nothing is downloaded; see the README's OGB section)")
            if not os.path.exists(path):
                raise FileNotFoundError(f"--dataset {s.dataset}: neither {PLANETOID + ('synthetic',)} nor an "
                                        f"existing file or directory ({path})")
            s.dataset = path
        if s.features is not None:
            s.features = os.path.abspath(os.path.expanduser(s.features))
            if not os.path.isfile(s.features):
                raise FileNotFoundError(f"--features {self.features}: no such file ({s.features})")
        return s

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _planetoid_files(root: str, name: str) -> list[str]:
    parts = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")
    return [os.path.join(root, f"ind.{name}.{p}") for p in parts]


def input_files(spec: DatasetSpec) -> list[str]:
    """The files a resolved spec reads (none for synthetic graphs)."""
    files: list[str] = []
    if spec.kind in PLANETOID:
        files = _planetoid_files(spec.root or "", spec.kind)
    elif spec.kind == "file":
        if os.path.isdir(spec.dataset):
            files = sorted(os.path.join(d, f) for d, _, fs in os.walk(spec.dataset) for f in fs)
        else:
            files = [spec.dataset]
    if spec.features is not None:
        files.append(spec.features)
    return files


def _file_hash(path: str, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= _HASH_WHOLE:
            h.update(f.read())
        else:
            h.update(f.read(_HASH_PART))
            f.seek(size - _HASH_PART)
            h.update(f.read(_HASH_PART))
    return h.hexdigest()[:16]


def fingerprint(spec: DatasetSpec) -> dict[str, Any]:
    """``{file name: "size:hash"}`` of the input files of a resolved spec; the synthetic graph's
    parameters stand for it. Names are relative to the dataset location, so moved data matches."""
    if spec.kind == "synthetic":
        return {"synthetic": f"{spec.nodes}:{spec.avg_degree}:{spec.graph_seed}"}
    base = spec.root if spec.kind in PLANETOID else os.path.dirname(spec.dataset.rstrip(os.sep))
    out = {}
    for p in input_files(spec):
        size = os.path.getsize(p)
        name = "features:" + os.path.basename(p) if p == spec.features else os.path.relpath(p, base)
        out[name] = f"{size}:{_file_hash(p, size)}"
    return out


def check_fingerprint(spec: DatasetSpec, recorded: dict[str, Any], *, force: bool = False) -> None:
    """Raise DataChangedError when the files of ``spec`` differ from ``recorded`` (unless ``force``)."""
    if force or not recorded:
        return
    now = fingerprint(spec)
    if now != recorded:
        changed = sorted(set(now.items()) ^ set(recorded.items()))
        raise DataChangedError(f"--dataset {spec.dataset}: the data differs from what this run was trained on "
                               f"({changed[0][0]} changed); pass the original data with --dataset/--root, or "
                               "--force to use it anyway")


def load_dataset(spec: DatasetSpec) -> GraphData:
    """The graph of a resolved spec, with ``x`` always set (default features for featureless graphs)."""
    if spec.kind in PLANETOID:
        from scalevgae.data.planetoid import load_planetoid

        data = load_planetoid(spec.root or "", spec.kind)
    elif spec.kind == "synthetic":
        from scalevgae.data.synthetic import planted_partition

        if spec.nodes < 1 or spec.avg_degree <= 0:
            raise ValueError(f"--nodes and --avg-degree must be positive, got {spec.nodes} and {spec.avg_degree}")
        data = planted_partition(spec.nodes, spec.avg_degree, seed=spec.graph_seed)
    else:
        from scalevgae.data.io import load_edge_list, load_graph

        path = spec.dataset
        if _is_edge_list(path):
            data = load_edge_list(path, delimiter=spec.delimiter, undirected=not spec.directed, ids=spec.ids,
                                  features=spec.features)
        else:
            data = load_graph(path, undirected=not spec.directed)
    if spec.features is not None and not _read_features_already(spec):
        data.x = load_features(spec.features, num_nodes=None)
        if data.x.shape[0] != data.num_nodes:
            raise ValueError(f"--features {spec.features}: {data.x.shape[0]} rows, but {spec.label} has "
                             f"{data.num_nodes} nodes; the file needs one row per node")
    if data.x is None:
        if spec.feature_dim < 1:
            raise ValueError(f"--feature-dim must be positive, got {spec.feature_dim}")
        data.x = default_features(data.graph, spec.feature_dim, spec.graph_seed)
    elif not isinstance(data.x, torch.Tensor):
        data.x = torch.as_tensor(np.asarray(data.x)).float()
    elif not data.x.is_floating_point():
        data.x = data.x.float()
    if spec.x_dtype != "auto":  # the copy as read is freed here
        data.x = data.x.to(getattr(torch, spec.x_dtype))
    return data


def _is_edge_list(path: str) -> bool:
    from scalevgae.data.io import EDGE_LIST_SUFFIXES

    base = path[:-3] if path.endswith(".gz") else path
    return not os.path.isdir(path) and base.endswith(EDGE_LIST_SUFFIXES)


def _read_features_already(spec: DatasetSpec) -> bool:
    """Edge lists read ``--features`` themselves (their integer ids index its rows)."""
    return spec.kind == "file" and _is_edge_list(spec.dataset)


def split_size(graph: Graph) -> int:
    """The number of edges :func:`scalevgae.data.split_edges` splits (unordered pairs when symmetric)."""
    if graph.is_symmetric:
        row = torch.repeat_interleave(torch.arange(graph.num_nodes), graph.degree().cpu())
        return int((row < graph.col.cpu()).sum())
    return int(graph.num_edges)


def check_splittable(graph: Graph, val: float, test: float, name: str) -> None:
    """Raise ValueError saying how many edges the validation/test fractions need when ``graph`` is too
    small to hold out at least one validation and one test edge and keep one for training."""
    if not (0 < val and 0 < test and val + test < 1):
        raise ValueError(f"--val and --test must be positive with val + test < 1, got {val} and {test}")
    m = split_size(graph)
    need = max(math.ceil(1 / val - 1e-9), math.ceil(1 / test - 1e-9), 3)
    n_held = int(m * val) + int(m * test)
    n = graph.num_nodes
    non_edges = n * (n - 1) // 2 - m if graph.is_symmetric else n * (n - 1) - m
    if m < need or m - n_held < 1:
        raise ValueError(f"{name}: {m} edge{'' if m == 1 else 's'}, but --val {val} / --test {test} need at least {need} edges "
                         "(one validation and one test edge, and training edges); use a larger graph or "
                         "larger --val/--test")
    if non_edges < n_held:
        raise ValueError(f"{name}: {n} nodes have only {non_edges} non-edges, fewer than the {n_held} negative "
                         "pairs validation and test need; use a larger (sparser) graph")
