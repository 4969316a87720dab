"""Graph and feature files, datasets and link splits (pure I/O: no sampling or iteration).

``LinkLoader`` and ``LinkBatch`` are also reachable from here (resolved on first use, so this
package never imports the loader, which reads features through it)."""

from typing import Any

from scalevgae.data.dataset import GraphData
from scalevgae.data.edgelist import EdgeListError
from scalevgae.data.features import default_features, gather_rows, load_features
from scalevgae.data.io import (
    from_pyg,
    from_scipy,
    from_sparse_tensor,
    load_edge_list,
    load_graph,
    load_node_ids,
    load_npz,
    load_ogb_dir,
    save_node_ids,
    write_topk_csv,
)
from scalevgae.data.ogb import load_ogb_link
from scalevgae.data.planetoid import load_planetoid
from scalevgae.data.split import LinkSplit, split_edges
from scalevgae.data.synthetic import planted_partition

__all__ = [
    "EdgeListError",
    "GraphData",
    "default_features",
    "LinkBatch",
    "LinkLoader",
    "LinkSplit",
    "from_pyg",
    "from_scipy",
    "from_sparse_tensor",
    "gather_rows",
    "load_edge_list",
    "load_features",
    "load_graph",
    "load_node_ids",
    "load_npz",
    "load_ogb_dir",
    "load_ogb_link",
    "load_planetoid",
    "planted_partition",
    "save_node_ids",
    "split_edges",
    "write_topk_csv",
]


def __getattr__(name: str) -> Any:
    if name in ("LinkBatch", "LinkLoader"):
        import scalevgae.loader

        return getattr(scalevgae.loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
