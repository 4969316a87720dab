"""Inner-product edge decoding and its BCE loss.

TEMPORARY reference-only version with the final public signatures; the fused kernels replace it.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from scalevgae.ops.reference import csr_rows


def edge_logits(z: Tensor, src: Tensor, dst: Tensor, *, backend: Optional[str] = None) -> Tensor:
    """logits[e] = <z[src[e]], z[dst[e]]>. z [n, F], src/dst [E] -> [E]."""
    return (z[src.long()] * z[dst.long()]).sum(-1)


def edge_bce_loss(
    z: Tensor,
    src: Tensor,
    dst: Tensor,
    label: Tensor,
    *,
    pos_weight: Optional[float] = None,
    reduction: str = "mean",
    backend: Optional[str] = None,
) -> Tensor:
    """BCE-with-logits of the edge logits against ``label [E]``."""
    logits = edge_logits(z, src, dst)
    if logits.numel() == 0 and reduction == "mean":
        return z.sum() * 0
    pw = None if pos_weight is None else torch.tensor(pos_weight, dtype=logits.dtype, device=z.device)
    return F.binary_cross_entropy_with_logits(logits, label.to(logits.dtype), pos_weight=pw, reduction=reduction)


def all_pairs_bce_loss(
    z: Tensor,
    rowptr: Tensor,
    col: Tensor,
    *,
    pos_weight: Optional[float] = None,
    add_self_loops: bool = True,
    tile: int = 1024,
    backend: Optional[str] = None,
) -> Tensor:
    """Mean over all N^2 pairs of BCE(z_i.z_j, (A+I)_ij), positives weighted by pos_weight
    (default (N^2 - P) / P). Dense reference: O(N^2) memory."""
    n = z.size(0)
    adj = torch.zeros(n, n, dtype=z.dtype, device=z.device)
    adj[csr_rows(rowptr), col.long()] = 1
    if add_self_loops:
        adj.fill_diagonal_(1)
    p = float(adj.sum())
    pw = (n * n - p) / p if pos_weight is None else pos_weight
    return F.binary_cross_entropy_with_logits(z @ z.t(), adj, pos_weight=torch.tensor(pw, dtype=z.dtype))
