"""Link-prediction splits: held-out positive edges and matching sampled non-edges."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from scalevgae.graph import Graph
from scalevgae.sampling.negative import negative_pairs


@dataclass
class LinkSplit:
    """Edges split for link prediction.

    Attributes:
        train_graph: the graph of the training edges only (both directions if undirected).
        train_pos: ``[2, E_train]`` training edges, one direction each (i < j if undirected).
        val_pos/val_neg, test_pos/test_neg: ``[2, k]`` held-out edges and as many sampled pairs
            that are not edges of the full graph (no self pairs; the negatives of the two sets
            are disjoint as unordered pairs).
    """

    train_graph: Graph
    train_pos: Tensor
    val_pos: Tensor
    val_neg: Tensor
    test_pos: Tensor
    test_neg: Tensor


def _unique_pairs(graph: Graph) -> Tensor:
    ei = graph.edge_index()
    if graph.is_symmetric:
        ei = ei[:, ei[0] < ei[1]]
    return ei


def split_edges(graph: Graph, val: float = 0.05, test: float = 0.1, *, seed: int = 0) -> LinkSplit:
    """Split the edges of ``graph`` into train/val/test (Kipf's 85/5/10 by default).

    Undirected graphs are split by unordered edge; O(E) memory. Seeded and reproducible.
    """
    if not (0 <= val and 0 <= test and val + test < 1):
        raise ValueError(f"need 0 <= val, 0 <= test and val + test < 1, got val={val}, test={test}")
    gen = torch.Generator().manual_seed(seed)
    pairs = _unique_pairs(graph.to("cpu"))
    m = pairs.size(1)
    n_val, n_test = int(m * val), int(m * test)
    perm = torch.randperm(m, generator=gen)
    pairs = pairs[:, perm]
    val_pos, test_pos = pairs[:, :n_val], pairs[:, n_val : n_val + n_test]
    train_pos = pairs[:, n_val + n_test :]
    undirected = graph.is_symmetric
    train_graph = Graph.from_edge_index(train_pos, graph.num_nodes, undirected=undirected)
    neg = _distinct_negatives(graph.to("cpu"), n_val + n_test, gen, undirected)
    return LinkSplit(
        train_graph=train_graph.to(graph.device),
        train_pos=train_pos.to(graph.device),
        val_pos=val_pos.to(graph.device),
        val_neg=neg[:, :n_val].to(graph.device),
        test_pos=test_pos.to(graph.device),
        test_neg=neg[:, n_val:].to(graph.device),
    )


def _distinct_negatives(graph: Graph, num: int, gen: torch.Generator, undirected: bool) -> Tensor:
    """``num`` non-edge pairs, distinct as (unordered, if undirected) pairs."""
    n = graph.num_nodes
    have = torch.empty(2, 0, dtype=torch.long)
    while have.size(1) < num:
        cand = torch.cat([have, negative_pairs(graph, num - have.size(1) + 16, generator=gen)], 1)
        a, b = (cand.min(0).values, cand.max(0).values) if undirected else (cand[0], cand[1])
        _, first = _first_occurrence(a * n + b)
        have = cand[:, first]
    return have[:, :num]


def _first_occurrence(key: Tensor) -> tuple[Tensor, Tensor]:
    """Unique keys and the index of each key's first occurrence, in order of first occurrence."""
    uniq, inv = torch.unique(key, return_inverse=True)
    first = torch.full((uniq.numel(),), key.numel(), dtype=torch.long)
    first.scatter_reduce_(0, inv, torch.arange(key.numel()), reduce="amin")
    return uniq, first.sort().values
