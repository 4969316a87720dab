"""Training objectives: the paper's all-pairs loss and its sampled-negative estimate.

Both are on the same scale (Kipf's), so the KL weight ``1 / N`` means the same thing in
every mode:

* all pairs: ``norm * mean_{i,j} w_ij BCE(z_i.z_j, (A+I)_ij)``, ``w = pos_weight`` on
  positives, ``pos_weight = (N² - E) / E``, ``norm = N² / (2 (N² - E))``. Positives then carry
  total weight ≈ N² / 2 and negatives ≈ N² / 2, so the loss ≈
  ``0.5 (mean_edges + (N / E) mean_diagonal + mean_non_edges)``.
* sampled: exactly that expression with the non-edge mean over uniform samples.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from scalevgae.graph import Graph
from scalevgae.ops.all_pairs import all_pairs_bce_loss
from scalevgae.ops.decode import edge_bce_loss


def kipf_weights(num_nodes: int, num_edges: int) -> tuple[float, float]:
    """(pos_weight, norm) of Kipf's loss for N nodes and E stored (directed) edges."""
    n2 = float(num_nodes) ** 2
    e = max(float(num_edges), 1.0)
    return (n2 - e) / e, n2 / (2.0 * (n2 - e))


def all_pairs_loss(z: Tensor, graph: Graph, heldout: Optional[Tensor] = None) -> Tensor:
    """The paper's reconstruction loss over all N² pairs of ``A + I`` (z ``[N, d]``).

    heldout: ``[2, H]`` pairs (each ordered pair once; pass both directions of an undirected
    edge) that are not edges of ``graph`` and must not count as non-edges: their negative terms
    are subtracted exactly, so they take no part in the loss (the mean stays over N²).
    """
    z = z.float()
    pos_weight, norm = kipf_weights(graph.num_nodes, graph.num_edges)
    loss = all_pairs_bce_loss(z, graph.rowptr, graph.col, pos_weight=pos_weight)
    if heldout is not None and heldout.size(1) > 0:
        zeros = torch.zeros(heldout.size(1), dtype=z.dtype, device=z.device)
        drop = edge_bce_loss(z, heldout[0], heldout[1], zeros, reduction="sum")
        loss = loss - drop / float(graph.num_nodes) ** 2
    return norm * loss


def self_loop_weight(graph: Graph) -> float:
    """``N / E``: the weight the all-pairs loss gives the diagonal relative to the edge mean."""
    return graph.num_nodes / max(graph.num_edges, 1)


def sampled_loss(z: Tensor, src: Tensor, dst: Tensor, label: Tensor, self_weight: float,
                 self_nodes: Tensor | None = None) -> Tensor:
    """``0.5 (mean_pos + mean_neg + self_weight * mean_self)``.

    z ``[n, d]``; src, dst ``[P + Q]`` rows of z; label ``[P + Q]`` (1 positive, 0 negative);
    the self-loop term scores ``z_i . z_i`` as a positive for ``self_nodes`` (default: every
    row of z, i.e. the seeds of a minibatch).
    """
    z = z.float()
    label = label.to(z.dtype)
    n_pos = float(label.sum())
    n_neg = label.numel() - n_pos
    loss = z.new_zeros(())
    if n_pos > 0 and n_neg > 0:
        loss = loss + 0.5 * edge_bce_loss(z, src, dst, label, pos_weight=n_neg / n_pos, reduction="sum") / n_neg
    elif label.numel() > 0:
        loss = loss + 0.5 * edge_bce_loss(z, src, dst, label)  # one class only: its half-weighted mean
    if self_weight > 0:
        nodes = torch.arange(z.size(0), device=z.device) if self_nodes is None else self_nodes
        ones = torch.ones(nodes.numel(), dtype=z.dtype, device=z.device)
        loss = loss + 0.5 * self_weight * edge_bce_loss(z, nodes, nodes, ones)
    return loss
