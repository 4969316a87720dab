"""Sampling: negative pairs and k-hop neighbor sampling into bipartite blocks.

The link sampler that builds a training minibatch from them is
:mod:`scalevgae.sampling.link` (it reads features, so it sits above :mod:`scalevgae.data`)."""

from scalevgae.sampling.block import Block, SampledSubgraph
from scalevgae.sampling.membership import has_pairs
from scalevgae.sampling.negative import negative_pairs
from scalevgae.sampling.neighbor import sample_neighbors

__all__ = ["Block", "SampledSubgraph", "has_pairs", "negative_pairs", "sample_neighbors"]
