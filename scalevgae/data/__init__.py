"""Datasets, loaders, link splits and the minibatch loader."""

from scalevgae.data.dataset import GraphData
from scalevgae.data.synthetic import planted_partition

__all__ = ["GraphData", "planted_partition"]
