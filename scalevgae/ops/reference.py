"""Pure-PyTorch ground truth for every op: readable, differentiable by autograd, slow.

Every kernel (C++ CPU, CUDA, Triton) is tested against these functions.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

# The shared helpers (scalevgae/_util.py); tests reach them as reference.acc_dtype / csr_rows.
from scalevgae._util import acc_dtype, csr_rows


def gcn_spmm(
    rowptr: Tensor,
    col: Tensor,
    x: Tensor,
    dst_scale: Optional[Tensor],
    src_scale: Optional[Tensor],
    self_loops: bool,
    bias: Optional[Tensor],
    relu: bool,
    self_scale: Optional[Tensor] = None,
) -> Tensor:
    """y = act(dst_scale * ((A + I) (src_scale * x)) + bias), A the CSR (rowptr, col).

    rowptr [R+1], col [nnz], x [C, F] -> y [R, F] (x.dtype). The self loop adds x[i] to row i
    for i < min(R, C). With ``self_scale`` [min(R, C)] (needs self_loops) the self loop is
    ``self_scale[i] * x[i]`` added after the destination scale instead:
    ``y = act(dst_scale * (A (src_scale * x)) + self_scale * x + bias)``.
    Computed in the accumulation dtype.
    """
    acc = acc_dtype(x.dtype)
    n_rows = rowptr.numel() - 1
    k = min(n_rows, x.size(0))
    if self_scale is not None and not self_loops:
        raise ValueError("self_scale needs self_loops=True")
    xs = x.to(acc)
    if src_scale is not None:
        xs = xs * src_scale.to(acc)[:, None]
    y = torch.zeros(n_rows, x.size(1), dtype=acc, device=x.device)
    y = y.index_add(0, csr_rows(rowptr), xs[col.long()])
    if self_loops and self_scale is None:
        y = y + torch.cat([xs[:k], xs.new_zeros(n_rows - k, x.size(1))])
    if dst_scale is not None:
        y = y * dst_scale.to(acc)[:, None]
    if self_scale is not None:
        self_term = self_scale.to(acc)[:, None] * x[:k].to(acc)
        y = y + torch.cat([self_term, self_term.new_zeros(n_rows - k, x.size(1))])
    if bias is not None:
        y = y + bias.to(acc)
    if relu:
        y = torch.relu(y)
    return y.to(x.dtype)


# ---- edge decoding (scalevgae/ops/decode.py) ----

_REDUCTIONS = ("none", "mean", "sum")


def edge_logits(z: Tensor, src: Tensor, dst: Tensor) -> Tensor:
    """logits[e] = <z[src[e]], z[dst[e]]>: gather, multiply, sum (PyG's InnerProductDecoder).

    z [n, F], src/dst [E] -> [E] in the accumulation dtype. Materializes two E x F gathers.
    """
    zs = z.to(acc_dtype(z.dtype))
    return (zs[src.long()] * zs[dst.long()]).sum(-1)


def edge_bce_loss(
    z: Tensor, src: Tensor, dst: Tensor, label: Tensor, pos_weight: Optional[float] = None, reduction: str = "mean"
) -> Tensor:
    """BCE with logits of the edge scores against `label` [E] (torch's pos_weight semantics).

    Mean of zero edges is 0 (torch would give NaN).
    """
    logits = edge_logits(z, src, dst)
    pw = None if pos_weight is None else torch.tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    if logits.numel() == 0 and reduction == "mean":
        return logits.sum()
    return torch.nn.functional.binary_cross_entropy_with_logits(
        logits, label.to(logits.dtype), pos_weight=pw, reduction=reduction
    )


def all_pairs_bce_loss_dense(
    z: Tensor, rowptr: Tensor, col: Tensor, pos_weight: Optional[float] = None, add_self_loops: bool = True
) -> Tensor:
    """Dense N x N ground truth of ``all_pairs.all_pairs_bce_loss`` (memory O(N^2)).

    Y = 1[A + I > 0] (I only with `add_self_loops`), P = Y.sum(), default pos_weight (N^2 - P) / P;
    returns mean_{i,j} BCEWithLogits(z_i . z_j, Y_ij; pos_weight).
    """
    n = rowptr.numel() - 1
    zs = z.to(acc_dtype(z.dtype))
    y = torch.zeros(n, n, dtype=zs.dtype, device=z.device)
    y[csr_rows(rowptr), col.long()] = 1
    if add_self_loops:
        y.fill_diagonal_(1)
    p = float(y.sum())
    if pos_weight is None:
        pos_weight = (n * n - p) / p if p > 0 else 1.0
    pw = torch.tensor(pos_weight, dtype=zs.dtype, device=z.device)
    if n == 0:
        return zs.sum() * 0
    return torch.nn.functional.binary_cross_entropy_with_logits(zs @ zs.T, y, pos_weight=pw)
# ---- edge membership (scalevgae/sampling/membership.py) ----


def csr_has_pairs(rowptr: Tensor, col: Tensor, src: Tensor, dst: Tensor) -> Tensor:
    """[K] bool: (src[k], dst[k]) is a stored entry of the CSR (rows sorted). O(K log deg)."""
    src, dst = src.long(), dst.long()
    found = torch.zeros(src.numel(), dtype=torch.bool, device=src.device)
    idx = torch.arange(src.numel(), device=src.device)
    lo, hi, want = rowptr[src].long(), rowptr[src + 1].long(), dst
    colx = col.long()
    while idx.numel():
        act = lo < hi
        idx, lo, hi, want = idx[act], lo[act], hi[act], want[act]
        if not idx.numel():
            break
        mid = (lo + hi) // 2
        v = colx[mid]
        eq = v == want
        found[idx[eq]] = True
        go = ~eq
        less = v < want
        lo = torch.where(less, mid + 1, lo)[go]
        hi = torch.where(less, hi, mid)[go]
        idx, want = idx[go], want[go]
    return found


# ---- neighbor sampling (mirrors csrc/sample_math.h bit for bit) ----
_M32 = 0xFFFFFFFF


def _mul32(x: Tensor, c: int) -> Tensor:
    """(x * c) mod 2^32 for int64 tensors holding uint32 values, without int64 overflow."""
    lo = x * (c & 0xFFFF)
    hi = ((x * (c >> 16)) & 0xFFFF) << 16
    return (lo + hi) & _M32


def mix32(x: Tensor) -> Tensor:
    """lowbias32 on int64 tensors holding uint32 values."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def sample_stream_key(seed: int, hop: int, node: Tensor) -> Tensor:
    """The 32-bit RNG stream key of every (seed, hop, node): [n] int64 in [0, 2^32)."""
    h = mix32(torch.full_like(node, (seed & _M32) ^ 0x9E3779B9))
    h = mix32(h ^ ((seed >> 32) & _M32))
    h = mix32(h ^ (hop & _M32))
    h = mix32(h ^ (node & _M32))
    return mix32(h ^ ((node >> 32) & _M32))


def sample_draw(key: Tensor, t: Tensor) -> Tensor:
    """Draw t of stream `key` (elementwise): uint32 values in int64."""
    return mix32(key ^ mix32(((t & _M32) + 0x6A09E667) & _M32))


SAMPLE_FLOYD_MAX_K = 32  # csrc/sample_math.h kFloydMaxK


def _floyd_rows(key: Tensor, deg: Tensor, k: int) -> Tensor:
    """Floyd's k-subset of [0, deg) per row (deg > k), vectorized over rows: [r, k] sorted."""
    picked = torch.empty(deg.numel(), 0, dtype=torch.long, device=deg.device)
    for s in range(k):
        j = deg - k + s
        t = (sample_draw(key, j) * (j + 1)) >> 32
        seen = (picked == t[:, None]).any(1)
        picked = torch.cat([picked, torch.where(seen, j, t)[:, None]], 1)
    return picked.sort(1).values


def _rank_rows(key: Tensor, deg: Tensor, k: int) -> Tensor:
    """The k offsets of smallest (draw(key, e), e) per row (deg > k): [r, k] sorted."""
    r = deg.numel()
    dev = deg.device
    rows = torch.repeat_interleave(torch.arange(r, device=dev), deg)
    in_ptr = torch.zeros(r + 1, dtype=torch.long, device=dev)
    torch.cumsum(deg, 0, out=in_ptr[1:])
    e = torch.arange(rows.numel(), device=dev) - in_ptr[rows]
    order = torch.sort(rows * (1 << 32) + sample_draw(key[rows], e), stable=True).indices  # (row, rank, e)
    pos = torch.arange(rows.numel(), device=dev) - in_ptr[rows[order]]
    return e[order[pos < k]].view(r, k).sort(1).values


def sample_adj(
    rowptr: Tensor, col: Tensor, nodes: Tensor, fanout: int, replace: bool, seed: int, hop: int
) -> tuple[Tensor, Tensor]:
    """Sample the rows `nodes` of the CSR (rowptr, col): the same rule as the kernels
    (csrc/sample_math.h), so the result is identical.

    Row i (node v = nodes[i], degree d, stream key of (seed, hop, v)): fanout -1 or d <= fanout
    without replacement: every neighbor; without replacement and d > fanout = k: a uniform
    k-subset (Floyd's algorithm for k <= 32, else the k smallest ranks), in CSR order; with
    replacement: offsets (draw(key, t) * d) >> 32 for t < fanout.
    Returns (out_rowptr [n+1] int64, out_col [total] int64 global neighbor ids).
    """
    nodes = nodes.long()
    rp = rowptr.long()
    dev = nodes.device
    n = nodes.numel()
    start = rp[nodes]
    deg = rp[nodes + 1] - start
    if fanout < 0:
        cnt = deg
    elif replace:
        cnt = torch.where(deg > 0, torch.full_like(deg, fanout), torch.zeros_like(deg))
    else:
        cnt = deg.clamp(max=fanout)
    out_rowptr = torch.zeros(n + 1, dtype=torch.long, device=dev)
    torch.cumsum(cnt, 0, out=out_rowptr[1:])
    key = sample_stream_key(seed, hop, nodes)
    rows = torch.repeat_interleave(torch.arange(n, device=dev), cnt)
    off = torch.arange(rows.numel(), device=dev) - out_rowptr[rows]  # rows that keep everything
    if fanout >= 0 and replace:
        off = (sample_draw(key[rows], off) * deg[rows]) >> 32
    elif fanout > 0:
        part = (deg > fanout).nonzero().flatten()
        if part.numel():
            pick = _floyd_rows if fanout <= SAMPLE_FLOYD_MAX_K else _rank_rows
            where = out_rowptr[part][:, None] + torch.arange(fanout, device=dev)
            off[where.flatten()] = pick(key[part], deg[part], fanout).flatten()
    return out_rowptr, col[start[rows] + off].long()


def sample_aggregate_weights(rowptr: Tensor, nodes: Tensor, out_rowptr: Tensor, norm: Tensor) -> tuple[Tensor, Tensor]:
    """The per-row weights of ``sample_aggregate``: (self [n] = c_v^2, scale [n] = c_v d_v / k_i, or
    c_v where the row sampled nothing), c = norm (their dtype), v = nodes[i], d_v its degree and
    k_i = out_rowptr[i+1] - out_rowptr[i] its sample size."""
    nodes = nodes.long()
    rp = rowptr.long()
    c = norm[nodes]
    deg = (rp[nodes + 1] - rp[nodes]).to(norm.dtype)
    k = out_rowptr.diff().to(norm.dtype)
    return c * c, c * torch.where(k > 0, deg / k.clamp(min=1), 1.0)


def sample_aggregate(
    rowptr: Tensor, col: Tensor, nodes: Tensor, x: Tensor, norm: Tensor, fanout: int, replace: bool, seed: int,
    hop: int,
) -> Tensor:
    """The input layer's sample and aggregation: ``sample_adj`` then, per row i (v = nodes[i]),
    ``y[i] = c_v^2 x[v] + c_v (d_v / k_i) sum_{u in S_i} c_u x[u]`` with c = norm.

    x [N, F] floating, norm [N] -> y [len(nodes), F] (x.dtype), computed in the accumulation dtype.
    """
    acc = acc_dtype(x.dtype)
    out_rp, gcol = sample_adj(rowptr, col, nodes, fanout, replace, seed, hop)
    c = norm.to(acc)
    self_w, scale = sample_aggregate_weights(rowptr, nodes, out_rp, c)
    s = torch.zeros(nodes.numel(), x.size(1), dtype=acc, device=x.device)
    s = s.index_add(0, csr_rows(out_rp), c[gcol, None] * x[gcol].to(acc))
    return (self_w[:, None] * x[nodes.long()].to(acc) + scale[:, None] * s).to(x.dtype)
