"""Loaders: iteration over sampled minibatches (order, sharding, threads, prefetch, device).

:class:`LinkLoader` drives :class:`~scalevgae.sampling.link.LinkSampler`, which builds each
:class:`~scalevgae.sampling.link.LinkBatch` in named phases."""

from scalevgae.loader.link_loader import LinkLoader
from scalevgae.sampling.link import LinkBatch, LinkSampler

__all__ = ["LinkBatch", "LinkLoader", "LinkSampler"]
