"""Default node features for graphs that come without any."""

from __future__ import annotations

import torch
from torch import Tensor

from scalevgae.graph import Graph


def default_features(graph: Graph, dim: int = 32, seed: int = 0) -> Tensor:
    """``[N, dim]`` float32: a standardized ``log(1 + degree)`` column and ``dim - 1`` fixed
    Gaussian columns (seeded, scaled by ``1/sqrt(dim - 1)``).

    The random columns let the GCN tell nodes apart (a fixed stand-in for learnable node
    embeddings, without ``N x d`` parameters); the degree column carries structure. O(N dim).
    """
    if dim < 1:
        raise ValueError(f"dim must be positive, got {dim}")
    deg = torch.log1p(graph.degree().double().cpu())
    deg = (deg - deg.mean()) / deg.std().clamp_min(1e-12) if deg.numel() > 1 else deg * 0
    gen = torch.Generator().manual_seed(seed)
    rnd = torch.randn(graph.num_nodes, dim - 1, generator=gen) / max(dim - 1, 1) ** 0.5
    return torch.cat([deg.float()[:, None], rnd], 1)
