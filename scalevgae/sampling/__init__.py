"""Sampling: negative pairs and k-hop neighbor sampling into bipartite blocks."""

from scalevgae.sampling.negative import negative_pairs

__all__ = ["negative_pairs"]
