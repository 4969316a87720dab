"""Triton all-pairs kernels (scalevgae/ops/triton/all_pairs.py) against dense float64 torch formulas.

softplus_pair_sum(z) = sum_{i,j} softplus(<z_i, z_j>), sigmoid_pair_matmul(z) = sigmoid(Z Z^T) Z and the
fused pass. Runs on a GPU, or on the CPU with TRITON_INTERPRET=1 (set before triton is imported).
"""

from __future__ import annotations

import math

import pytest
import torch
from triton_support import DEV, TRITON_MARKS

pytestmark = TRITON_MARKS
# relative tolerances; products are exact in every dtype (fp16 * fp16 fits fp32), errors come from
# the accumulation dtype (fp32 for fp16 inputs too)
TOL = {torch.float64: 1e-12, torch.float32: 2e-5, torch.float16: 2e-5, torch.bfloat16: 2e-5}


@pytest.fixture(scope="module")
def ap():
    from scalevgae.ops.triton import all_pairs

    return all_pairs


def want(z):
    """Dense float64 ground truth: (sum softplus(S), sigmoid(S) Z) with S = Z Z^T."""
    zd = z.double()
    s = zd @ zd.T
    softplus = s.clamp(min=0) + torch.log1p(torch.exp(-s.abs()))  # torch's softplus switches to s past 20
    return softplus.sum(), torch.sigmoid(s) @ zd


def check(ap, z, tol):
    """All three entry points against the dense formulas. atol of the matmul is scaled by its
    natural size N * max|z| (a sum of N terms each bounded by max|z|)."""
    acc = torch.float64 if z.dtype == torch.float64 else torch.float32
    ws, wm = want(z)
    s = ap.softplus_pair_sum(z)
    m = ap.sigmoid_pair_matmul(z)
    fs, fm = ap.softplus_pair_sum_and_matmul(z)
    assert s.shape == () and fs.shape == () and s.dtype == acc and fs.dtype == acc
    assert m.shape == z.shape and fm.shape == z.shape and m.dtype == acc and fm.dtype == acc
    assert torch.isfinite(s) and torch.isfinite(m).all()
    scale = max(1.0, z.size(0) * z.double().abs().max().item())
    for got_s, got_m in ((s, m), (fs, fm)):
        torch.testing.assert_close(got_s.double().cpu(), ws.cpu(), rtol=tol, atol=tol)
        torch.testing.assert_close(got_m.double().cpu(), wm.cpu(), rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("F", [1, 3, 16, 33])
@pytest.mark.parametrize("N", [1, 7, 65])
def test_against_dense(ap, N, F, dtype):
    g = torch.Generator().manual_seed(1000 * N + F)
    z = torch.randn(N, F, generator=g, dtype=torch.float64).to(dtype).to(DEV)
    check(ap, z, TOL[dtype])


@pytest.mark.parametrize("F", [3, 33])
def test_larger_n(ap, F):
    """N = 200: many row and column blocks, a partial last block, both feature paths (F <= / > BLOCK_K)."""
    z = torch.randn(200, F, generator=torch.Generator().manual_seed(F), dtype=torch.float64)
    check(ap, z.float().to(DEV), TOL[torch.float32])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_logits(ap, dtype):
    """|logit| well above 100 (diagonal ~600, off-diagonal both signs past +-100): finite and exact."""
    g = torch.Generator().manual_seed(7)
    z = (6.0 * torch.randn(40, 16, generator=g, dtype=torch.float64)).to(dtype).to(DEV)
    s = z.double() @ z.double().T
    assert s.max() > 100 and s.min() < -100
    check(ap, z, TOL[dtype])


def test_non_contiguous(ap):
    """Row stride != F (a column slice) and a column-major z (a transposed view)."""
    g = torch.Generator().manual_seed(3)
    big = torch.randn(50, 40, generator=g).to(DEV)
    check(ap, big[:, 1:34:2], TOL[torch.float32])  # [50, 17], strides (40, 2)
    check(ap, torch.randn(5, 30, generator=g).to(DEV).T, TOL[torch.float32])  # [30, 5], strides (1, 30)


@pytest.mark.parametrize("F", [20, 70])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_input(ap, dtype, F):
    """float16/bfloat16 z: float32 results; the dense reference sees the same (rounded) values.
    F = 70 walks feature slices."""
    g = torch.Generator().manual_seed(5)
    z = (3.0 * torch.randn(40, F, generator=g)).to(dtype).to(DEV)
    check(ap, z, TOL[dtype])


def test_empty(ap):
    for N, F in ((0, 4), (5, 0), (0, 0)):
        z = torch.zeros(N, F, device=DEV)
        assert ap.softplus_pair_sum(z).item() == pytest.approx(N * N * math.log(2.0))
        m = ap.sigmoid_pair_matmul(z)
        assert m.shape == (N, F)
        fs, fm = ap.softplus_pair_sum_and_matmul(z)
        assert fs.item() == pytest.approx(N * N * math.log(2.0)) and fm.shape == (N, F)


def test_deterministic(ap):
    z = torch.randn(65, 33, generator=torch.Generator().manual_seed(11)).to(DEV)
    a = (ap.softplus_pair_sum(z), ap.sigmoid_pair_matmul(z), *ap.softplus_pair_sum_and_matmul(z))
    b = (ap.softplus_pair_sum(z), ap.sigmoid_pair_matmul(z), *ap.softplus_pair_sum_and_matmul(z))
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_gradient_identity(ap):
    """d/dz softplus_pair_sum = 2 * sigmoid_pair_matmul (what the all-pairs loss backward relies on)."""
    z = torch.randn(20, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    zr = z.clone().requires_grad_(True)
    s = zr @ zr.T
    (s.clamp(min=0) + torch.log1p(torch.exp(-s.abs()))).sum().backward()
    torch.testing.assert_close(2 * ap.sigmoid_pair_matmul(z.to(DEV)).cpu(), zr.grad, rtol=1e-12, atol=1e-12)


def test_bad_input(ap):
    with pytest.raises(TypeError, match="z must be"):
        ap.softplus_pair_sum(torch.ones(3, 2, dtype=torch.int64, device=DEV))
    with pytest.raises(ValueError, match="2-D"):
        ap.sigmoid_pair_matmul(torch.ones(3, device=DEV))
    with pytest.raises(ValueError, match="2-D"):
        ap.softplus_pair_sum_and_matmul(torch.ones(2, 3, 4, device=DEV))
