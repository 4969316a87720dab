"""The built-in graph: heavy-tailed degrees with planted communities, no download needed."""

from __future__ import annotations

from typing import Optional

import torch

from scalevgae.csr import CHUNK
from scalevgae.data.dataset import GraphData
from scalevgae.graph import Graph


def planted_partition(
    num_nodes: int,
    avg_degree: float = 16,
    num_communities: Optional[int] = None,
    feature_dim: int = 64,
    p_in: float = 0.8,
    seed: int = 0,
    *,
    power_law_exponent: float = 2.5,
    feature_noise: float = 1.0,
) -> GraphData:
    """Degree-corrected planted-partition graph (a Chung-Lu graph with communities).

    Every node gets a weight ``w_i ∝ rank^(-1/(γ-1))`` (γ = ``power_law_exponent``), so degrees
    follow a power law with exponent γ. Each of the ``num_nodes * avg_degree / 2`` undirected
    edges picks its first end with probability ∝ w, then with probability ``p_in`` a second end
    from the same community and otherwise from the whole graph, again ∝ w. Duplicate pairs and
    self pairs are dropped, so the stored directed edges come out a little under
    ``num_nodes * avg_degree``. Features: a random Gaussian centroid per community plus
    ``feature_noise`` × standard Gaussian noise. Node ids are shuffled (communities are not
    contiguous id ranges). Deterministic for a seed; O(E) memory.

    Returns:
        GraphData with ``graph`` (undirected), ``x [num_nodes, feature_dim]`` float32 (None if
        feature_dim == 0) and ``y [num_nodes]`` the community of each node.
    """
    if num_nodes <= 0:
        raise ValueError(f"num_nodes must be positive, got {num_nodes}")
    if avg_degree < 0:
        raise ValueError(f"avg_degree must be non-negative, got {avg_degree}")
    if not 0.0 <= p_in <= 1.0:
        raise ValueError(f"p_in must be in [0, 1], got {p_in}")
    if power_law_exponent <= 2.0:
        raise ValueError(f"power_law_exponent must be > 2, got {power_law_exponent}")
    if num_communities is None:
        num_communities = max(2, int(round(num_nodes ** 0.5 / 4)))
    num_communities = min(num_communities, num_nodes)
    gen = torch.Generator().manual_seed(seed)

    # Nodes 0..N-1 in "position" order: communities are contiguous blocks of positions.
    sizes = torch.full((num_communities,), num_nodes // num_communities, dtype=torch.long)
    sizes[: num_nodes % num_communities] += 1
    comm_of_pos = torch.repeat_interleave(torch.arange(num_communities), sizes)
    comm_start = torch.zeros(num_communities + 1, dtype=torch.long)
    torch.cumsum(sizes, 0, out=comm_start[1:])

    rank = torch.randperm(num_nodes, generator=gen).double() + 1.0
    w = rank.pow(-1.0 / (power_law_exponent - 1.0))
    cw = torch.cumsum(w, 0)
    total = float(cw[-1])
    cw_lo = torch.cat([cw.new_zeros(1), cw])  # cw_lo[k] = weight before position k

    m = int(num_nodes * avg_degree / 2)
    step = CHUNK  # draws in blocks (bounded float64 temporaries); same random stream as one draw

    def draw(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        # Position with probability ∝ w among positions whose cumulative weight lies in [lo, hi).
        u = lo + torch.rand(lo.shape, generator=gen, dtype=torch.float64) * (hi - lo)
        return torch.searchsorted(cw, u, right=True).clamp_(max=num_nodes - 1)

    src = torch.empty(m, dtype=torch.long)
    for a in range(0, m, step):
        k = min(step, m - a)
        src[a:a + k] = draw(torch.zeros(k, dtype=torch.float64), torch.full((k,), total, dtype=torch.float64))
    inside = torch.cat([torch.rand(min(step, m - a), generator=gen) < p_in for a in range(0, m, step)]) if m else \
        torch.zeros(0, dtype=torch.bool)
    ei = torch.empty(2, m, dtype=torch.long)
    for a in range(0, m, step):
        s, ins = src[a:a + step], inside[a:a + step]
        c = comm_of_pos[s]
        lo = torch.where(ins, cw_lo[comm_start[c]], torch.zeros((), dtype=torch.float64))
        hi = torch.where(ins, cw_lo[comm_start[c + 1]], torch.full((), total, dtype=torch.float64))
        ei[1, a:a + step] = draw(lo, hi)
    del inside
    perm = torch.randperm(num_nodes, generator=gen)  # position -> node id
    torch.index_select(perm, 0, src, out=ei[0])
    del src
    ei[1] = perm[ei[1]]
    graph = Graph.from_edge_index(ei, num_nodes, undirected=True)
    del ei
    y = torch.empty(num_nodes, dtype=torch.long)
    y[perm] = comm_of_pos
    x = None
    if feature_dim > 0:
        centroids = torch.randn(num_communities, feature_dim, generator=gen)
        x = torch.randn(num_nodes, feature_dim, generator=gen).mul_(feature_noise)
        for a in range(0, num_nodes, CHUNK // max(feature_dim, 1) + 1):  # x += centroids[y], no [N, F] temporary
            x[a:a + CHUNK // max(feature_dim, 1) + 1] += centroids[y[a:a + CHUNK // max(feature_dim, 1) + 1]]
    meta = dict(num_nodes=num_nodes, avg_degree=avg_degree, num_communities=num_communities,
                feature_dim=feature_dim, p_in=p_in, seed=seed, power_law_exponent=power_law_exponent)
    return GraphData(graph=graph, x=x, y=y, name=f"synthetic-{num_nodes}", meta=meta)
