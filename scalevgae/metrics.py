"""Link-prediction metrics in torch (any device): ROC-AUC, average precision, Hits@K, MRR.

``roc_auc`` and ``average_precision`` equal scikit-learn's ``roc_auc_score`` and
``average_precision_score`` (ties included); both run in float64 in O(n log n).
``hits_at_k`` and ``mrr`` follow OGB's link-prediction evaluators (sampled negatives).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["average_precision", "hits_at_k", "link_scores", "mrr", "ranking_metric", "roc_auc"]


def _check_binary(y_true: Tensor, y_score: Tensor) -> tuple[Tensor, Tensor]:
    y_true = torch.as_tensor(y_true)
    y_score = torch.as_tensor(y_score, device=y_true.device)
    if y_true.shape != y_score.shape or y_true.dim() != 1:
        raise ValueError(f"y_true and y_score must be 1-D of equal length, got {tuple(y_true.shape)} "
                         f"and {tuple(y_score.shape)}")
    y = y_true.to(torch.float64)
    if not bool(((y == 0) | (y == 1)).all()):
        raise ValueError("y_true must contain only 0 and 1")
    return y, y_score.to(torch.float64)


def roc_auc(y_true: Tensor, y_score: Tensor) -> float:
    """Area under the ROC curve. y_true ``[n]`` in {0, 1}, y_score ``[n]``.

    Mann-Whitney form with average ranks for tied scores, which is exactly the trapezoidal
    area scikit-learn computes. Raises ValueError if only one class is present.
    """
    y, s = _check_binary(y_true, y_score)
    n_pos = float(y.sum())
    n_neg = y.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both positive and negative labels")
    uniq, inv, counts = torch.unique(s, return_inverse=True, return_counts=True)
    # 1-based average rank of each distinct score: (first + last) / 2.
    last = torch.cumsum(counts, 0).to(torch.float64)
    avg_rank = last - (counts.to(torch.float64) - 1) / 2
    rank_sum = float((avg_rank[inv] * y).sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def average_precision(y_true: Tensor, y_score: Tensor) -> float:
    """Average precision ``sum_k (R_k - R_{k-1}) P_k`` over the distinct score thresholds,
    highest first (scikit-learn's definition, no interpolation). y_true, y_score ``[n]``.

    Raises ValueError if there is no positive label.
    """
    y, s = _check_binary(y_true, y_score)
    n_pos = float(y.sum())
    if n_pos == 0:
        raise ValueError("average precision needs at least one positive label")
    order = torch.argsort(s, descending=True, stable=True)
    s, y = s[order], y[order]
    tps = torch.cumsum(y, 0)
    # Thresholds are the distinct scores: keep the last index of every run of equal scores.
    last = torch.ones_like(s, dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]
    tps = tps[last]
    n_above = torch.nonzero(last).squeeze(1).to(torch.float64) + 1
    precision = tps / n_above
    recall = tps / n_pos
    d_recall = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((d_recall * precision).sum())


def link_scores(pos_score: Tensor, neg_score: Tensor) -> tuple[float, float]:
    """(AUC, AP) of positive scores ``[P]`` against negative scores ``[Q]``."""
    y = torch.cat([torch.ones_like(pos_score, dtype=torch.float64), torch.zeros_like(neg_score, dtype=torch.float64)])
    s = torch.cat([pos_score.detach().to(torch.float64), neg_score.detach().to(torch.float64)])
    return roc_auc(y, s), average_precision(y, s)


def hits_at_k(pos_score: Tensor, neg_score: Tensor, k: int) -> float:
    """OGB Hits@K: the fraction of positives scored strictly above the K-th best negative.

    pos_score ``[P]``; neg_score ``[Q]`` shared by all positives (ogbl-collab/ddi style) or
    ``[P, Q]`` one row of negatives per positive (ogbl-citation2 style). With fewer than K
    negatives every positive is a hit.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    pos = pos_score.detach().to(torch.float64)
    neg = neg_score.detach().to(torch.float64)
    if neg.dim() == 1:
        if neg.numel() < k:
            return 1.0
        kth = torch.topk(neg, k).values[-1]
        return float((pos > kth).to(torch.float64).mean())
    if neg.dim() != 2 or neg.size(0) != pos.numel():
        raise ValueError(f"neg_score must be [Q] or [P, Q] with P = {pos.numel()}, got {tuple(neg.shape)}")
    if neg.size(1) < k:
        return 1.0
    kth = torch.topk(neg, k, dim=1).values[:, -1]
    return float((pos > kth).to(torch.float64).mean())


def mrr(pos_score: Tensor, neg_score: Tensor) -> float:
    """OGB mean reciprocal rank: each positive ``pos_score [P]`` is ranked against its own
    negatives ``neg_score [P, Q]``; rank = 1 + #(neg > pos) + #(neg == pos) / 2 (OGB's mean
    of the optimistic and pessimistic ranks)."""
    pos = pos_score.detach().to(torch.float64).reshape(-1, 1)
    neg = neg_score.detach().to(torch.float64)
    if neg.dim() != 2 or neg.size(0) != pos.size(0):
        raise ValueError(f"neg_score must be [P, Q] with P = {pos.size(0)}, got {tuple(neg.shape)}")
    optimistic = (neg > pos).sum(1).to(torch.float64)
    pessimistic = (neg >= pos).sum(1).to(torch.float64)
    rank = 0.5 * (optimistic + pessimistic) + 1
    return float((1.0 / rank).mean())


def ranking_metric(metric: str, pos_score: Tensor, neg_score: Tensor) -> float:
    """An OGB metric by name: ``"hits@K"`` of ``pos_score [P]`` against the shared
    ``neg_score [Q]``, or ``"mrr"`` with ``neg_score [P * Q]`` (positive ``i``'s ``Q`` negatives
    contiguous, the layout of :class:`scalevgae.data.LinkSplit` for MRR datasets) or ``[P, Q]``."""
    name = metric.lower()
    if name.startswith("hits@"):
        try:
            k = int(name[5:])
        except ValueError:
            raise ValueError(f"bad metric {metric!r}: expected hits@K with an integer K") from None
        return hits_at_k(pos_score, neg_score.reshape(-1), k)
    if name == "mrr":
        p = pos_score.numel()
        if p == 0 or neg_score.numel() % p:
            raise ValueError(f"mrr needs a multiple of P = {p} negatives, got {neg_score.numel()}")
        return mrr(pos_score, neg_score.reshape(p, -1))
    raise ValueError(f"unknown metric {metric!r}: expected 'hits@K' or 'mrr'")
