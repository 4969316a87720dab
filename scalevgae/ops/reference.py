"""Pure-PyTorch ground truth for every op: readable, differentiable by autograd, slow.

Every kernel (C++ CPU, CUDA, Triton) is tested against these functions.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype: float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def csr_rows(rowptr: Tensor) -> Tensor:
    """Row index of every stored entry of a CSR: [nnz] int64."""
    n_rows = rowptr.numel() - 1
    return torch.repeat_interleave(torch.arange(n_rows, device=rowptr.device), rowptr.diff().long())


def gcn_spmm(
    rowptr: Tensor,
    col: Tensor,
    x: Tensor,
    row_scale: Optional[Tensor],
    col_scale: Optional[Tensor],
    self_loops: bool,
    bias: Optional[Tensor],
    relu: bool,
) -> Tensor:
    """y = act(row_scale * ((A + I) (col_scale * x)) + bias), A the CSR (rowptr, col).

    rowptr [R+1], col [nnz], x [C, F] -> y [R, F] (x.dtype). The self loop adds x[i] to row i
    for i < min(R, C). Computed in the accumulation dtype.
    """
    acc = acc_dtype(x.dtype)
    n_rows = rowptr.numel() - 1
    xs = x.to(acc)
    if col_scale is not None:
        xs = xs * col_scale.to(acc)[:, None]
    y = torch.zeros(n_rows, x.size(1), dtype=acc, device=x.device)
    y = y.index_add(0, csr_rows(rowptr), xs[col.long()])
    if self_loops:
        k = min(n_rows, x.size(0))
        y = y + torch.cat([xs[:k], xs.new_zeros(n_rows - k, x.size(1))])
    if row_scale is not None:
        y = y * row_scale.to(acc)[:, None]
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
    """Dense N x N ground truth of ``decode.all_pairs_bce_loss`` (memory O(N^2)).

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
