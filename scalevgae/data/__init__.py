"""Datasets, loaders, link splits and the minibatch loader."""

from scalevgae.data.dataset import GraphData
from scalevgae.data.split import LinkSplit, split_edges
from scalevgae.data.synthetic import planted_partition

__all__ = ["GraphData", "LinkSplit", "planted_partition", "split_edges"]
