"""topk_links: each query node's k most likely partners without the N×N score matrix."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from scalevgae.ops.validate import check_float_tensor, check_index_range, check_index_tensor


def _exclusion_pairs(exclude: Any, qi: Tensor) -> tuple[Tensor, Tensor]:
    """(query position, neighbour) pairs of the stored edges of the query rows, sorted by
    neighbour so each candidate tile takes a contiguous slice."""
    rowptr, col = exclude.rowptr, exclude.col
    start = rowptr[qi].long()
    cnt = (rowptr[qi + 1] - rowptr[qi]).long()
    total = int(cnt.sum())
    qpos = torch.repeat_interleave(torch.arange(qi.numel(), device=qi.device), cnt, output_size=total)
    # position of each pair inside its row: global index minus the row's first pair index
    offs = torch.arange(total, device=qi.device) - torch.repeat_interleave(torch.cumsum(cnt, 0) - cnt, cnt,
                                                                             output_size=total)
    nbr = col[start[qpos] + offs].long()
    order = torch.argsort(nbr)
    return qpos[order], nbr[order]


@torch.no_grad()
def topk_links(
    z: Tensor,
    k: int,
    *,
    query: Optional[Tensor] = None,
    exclude: Any = None,
    exclude_self: bool = True,
    chunk: int = 2048,
) -> tuple[Tensor, Tensor]:
    """For each query node, the ``k`` nodes ``j`` with the largest logit ``z_i · z_j``.

    Scores are computed in ``chunk × chunk`` tiles with a running top-k, so memory is
    ``O(Q·k + chunk²)`` instead of the ``N × N`` matrix ``forward_all`` would build.

    Args:
        z: ``[N, D]`` node embeddings (e.g. the VGAE means). Half precision is scored in float32.
        k: partners per query node (>= 1).
        query: ``[Q]`` int32/int64 node indices (default: all N nodes, ``Q = N``).
        exclude: a ``scalevgae.Graph`` on the N nodes (or anything with ``rowptr``/``col``):
            for query ``i`` every stored ``(i, j)`` is skipped (known links; an undirected graph
            stores both directions).
        exclude_self: skip ``j == i`` (default True).
        chunk: tile size (query rows and candidate columns per matmul).

    Returns:
        ``(indices [Q, k] int64, scores [Q, k])``: partners by decreasing logit (apply a
        sigmoid for probabilities). Scores are float32 (float64 for float64 ``z``). When fewer
        than ``k`` candidates remain, the tail is padded with index ``-1`` and score ``-inf``.
    """
    check_float_tensor(z, "z", dim=2)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    if not bool(torch.isfinite(z).all()):
        raise ValueError("z contains NaN or infinite values")
    n = z.size(0)
    if query is None:
        query = torch.arange(n, device=z.device)
    check_index_tensor(query, "query")
    check_index_range(query, n, "query")
    if query.device != z.device:
        raise ValueError(f"query is on {query.device} but z is on {z.device}")
    if exclude is not None:
        ex_n = exclude.rowptr.numel() - 1
        if ex_n != n:
            raise ValueError(f"exclude has {ex_n} nodes but z has {n} rows")
        if exclude.rowptr.device != z.device:
            raise ValueError(f"exclude is on {exclude.rowptr.device} but z is on {z.device}")
    acc = torch.float64 if z.dtype == torch.float64 else torch.float32
    zc = z.to(acc)
    query = query.long()
    q_total = query.numel()
    out_s = torch.full((q_total, k), float("-inf"), dtype=acc, device=z.device)
    out_i = torch.full((q_total, k), -1, dtype=torch.long, device=z.device)
    neg_inf = float("-inf")
    for qa in range(0, q_total, chunk):
        qi = query[qa: qa + chunk]
        b = qi.numel()
        rows = torch.arange(b, device=z.device)
        zq = zc[qi]
        best_s = torch.full((b, k), neg_inf, dtype=acc, device=z.device)
        best_i = torch.full((b, k), -1, dtype=torch.long, device=z.device)
        if exclude is not None:
            ex_q, ex_j = _exclusion_pairs(exclude, qi)
            bounds = torch.searchsorted(ex_j, torch.arange(0, n + chunk, chunk, device=z.device)).tolist()
        for t, ca in enumerate(range(0, n, chunk)):
            cb = min(ca + chunk, n)
            s = zq @ zc[ca:cb].t()  # [b, cb - ca]
            if exclude_self:
                inside = (qi >= ca) & (qi < cb)
                s[rows[inside], qi[inside] - ca] = neg_inf
            if exclude is not None:
                lo, hi = bounds[t], bounds[t + 1]
                if hi > lo:
                    s[ex_q[lo:hi], ex_j[lo:hi] - ca] = neg_inf
            ts, ti = s.topk(min(k, cb - ca), dim=1)
            cand_s = torch.cat([best_s, ts], 1)
            cand_i = torch.cat([best_i, ti + ca], 1)
            best_s, pick = cand_s.topk(k, dim=1)
            best_i = cand_i.gather(1, pick)
        best_i[torch.isneginf(best_s)] = -1
        out_s[qa: qa + b] = best_s
        out_i[qa: qa + b] = best_i
    return out_i, out_s
