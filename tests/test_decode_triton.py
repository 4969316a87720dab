"""Triton edge_dot / edge_grad (scalevgae/ops/triton/decode.py) against float64 torch formulas.

Runs on a GPU, or on the CPU with TRITON_INTERPRET=1 (set before triton is imported).
"""

from __future__ import annotations

import pytest
import torch
from triton_support import CUDA as _CUDA
from triton_support import DEV, TRITON_MARKS

pytestmark = TRITON_MARKS
TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}


@pytest.fixture(scope="module")
def td():
    from scalevgae.ops.triton import decode

    return decode


def acc_of(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def want_dot(z, src, dst):
    zd = z.double()
    return (zd[src.long()] * zd[dst.long()]).sum(-1)


def want_grad(coef, z, src, dst):
    zd, c = z.double(), coef.double()[:, None]
    dz = torch.zeros_like(zd)
    dz.index_add_(0, src.long(), c * zd[dst.long()])
    dz.index_add_(0, dst.long(), c * zd[src.long()])
    return dz


def check(y, want, dtype, scale=1.0):
    tol = TOL[dtype]
    assert y.shape == want.shape
    torch.testing.assert_close(y.double(), want, rtol=tol, atol=tol * scale)


def edges(n, E, gen, idx, hub=None, hub_count=0):
    """Random pairs with repeats and some src == dst; optionally hub_count more pairs touching `hub`."""
    src = torch.randint(0, n, (E,), generator=gen)
    dst = torch.randint(0, n, (E,), generator=gen)
    dst[: E // 10] = src[: E // 10]  # self pairs
    if hub is not None:
        src = torch.cat([src, torch.full((hub_count,), hub)])
        dst = torch.cat([dst, torch.randint(0, n, (hub_count,), generator=gen)])
    return src.to(idx).to(DEV), dst.to(idx).to(DEV)


@pytest.mark.parametrize("idx", [torch.int32, torch.int64])
@pytest.mark.parametrize("F", [1, 7, 33, 100])
def test_edge_dot(td, idx, F):
    gen = torch.Generator().manual_seed(F + (idx == torch.int32))
    z = torch.randn(50, F, generator=gen).to(DEV)
    src, dst = edges(50, 123, gen, idx)
    out = td.edge_dot(z, src, dst)
    assert out.dtype == torch.float32
    check(out, want_dot(z, src, dst), torch.float32, scale=F ** 0.5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_edge_dot_dtypes_noncontiguous(td, dtype):
    gen = torch.Generator().manual_seed(3)
    F = 12
    z = torch.randn(2 * F, 40, generator=gen).to(dtype).to(DEV).t()[:, ::2]  # [40, F], strided both ways
    assert not z.is_contiguous()
    src, dst = edges(40, 77, gen, torch.int64)
    out = td.edge_dot(z, src, dst)
    assert out.dtype == acc_of(dtype)
    check(out, want_dot(z, src, dst), dtype if dtype == torch.float64 else torch.float32, scale=F ** 0.5)


def test_empty(td):
    z = torch.randn(5, 3, device=DEV)
    e = torch.zeros(0, dtype=torch.int64, device=DEV)
    assert td.edge_dot(z, e, e).shape == (0,)
    for det in (False, True):
        dz = td.edge_grad(torch.zeros(0, device=DEV), z, e, e, det)
        assert dz.shape == (5, 3) and not dz.any()
    assert not td.edge_dot(z[:, :0], torch.tensor([1, 2], device=DEV), torch.tensor([0, 4], device=DEV)).any()


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("idx", [torch.int32, torch.int64])
@pytest.mark.parametrize("F", [3, 33])
def test_edge_grad(td, deterministic, idx, F):
    gen = torch.Generator().manual_seed(10 + F + deterministic + 2 * (idx == torch.int32))
    n = 60
    z = torch.randn(n, F, generator=gen).to(DEV)
    src, dst = edges(n, 150, gen, idx, hub=5, hub_count=40)
    coef = torch.randn(src.numel(), generator=gen).to(DEV)
    dz = td.edge_grad(coef, z, src, dst, deterministic)
    assert dz.dtype == z.dtype
    check(dz, want_grad(coef, z, src, dst), torch.float32, scale=10.0)


def test_edge_grad_hub_split_path_deterministic(td):
    """A node in 3000 pairs takes the split (chunked) path; two runs are bitwise equal."""
    gen = torch.Generator().manual_seed(20)
    n, F = 40, 4
    z = torch.randn(n, F, generator=gen).to(DEV)
    src, dst = edges(n, 100, gen, torch.int64, hub=7, hub_count=3000)
    coef = torch.randn(src.numel(), generator=gen).to(DEV)
    dz = td.edge_grad(coef, z, src, dst, True)
    check(dz, want_grad(coef, z, src, dst), torch.float32, scale=100.0)
    assert torch.equal(dz, td.edge_grad(coef, z, src, dst, True))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("deterministic", [False, True])
def test_edge_grad_dtypes(td, dtype, deterministic):
    gen = torch.Generator().manual_seed(30)
    n, F = 30, 6
    z = torch.randn(F, n, generator=gen).to(dtype).to(DEV).t()  # non-contiguous [n, F]
    src, dst = edges(n, 90, gen, torch.int64)
    coef = torch.randn(src.numel(), generator=gen).to(acc_of(dtype)).to(DEV)
    dz = td.edge_grad(coef, z, src, dst, deterministic)
    assert dz.dtype == dtype
    check(dz, want_grad(coef, z, src, dst), dtype, scale=10.0)


def test_edge_dot_backward_by_edge_grad(td):
    """edge_grad(grad, z) is the gradient of sum(grad * edge_dot(z)) (the decoder's autograd)."""
    gen = torch.Generator().manual_seed(40)
    z = torch.randn(20, 5, generator=gen, dtype=torch.float64)
    src, dst = edges(20, 50, gen, torch.int64)
    g = torch.randn(50, generator=gen, dtype=torch.float64)
    zr = z.clone().requires_grad_()
    (want_dot(zr, src.cpu(), dst.cpu()) * g).sum().backward()
    check(td.edge_grad(g.to(DEV), z.to(DEV), src, dst, False), zr.grad.to(DEV), torch.float64)


def test_errors(td, monkeypatch):
    z = torch.randn(5, 3, device=DEV)
    s = torch.tensor([0, 1], device=DEV)
    with pytest.raises(TypeError, match="coef"):
        td.edge_grad(torch.ones(2, dtype=torch.float64, device=DEV), z, s, s, False)
    with pytest.raises(ValueError, match="same length"):
        td.edge_dot(z, s, s[:1])
    with pytest.raises(TypeError, match="src"):
        td.edge_dot(z, s.float(), s)
    with pytest.raises(TypeError, match="z must be"):
        td.edge_dot(z.int(), s, s)
    if not _CUDA:
        monkeypatch.setenv("TRITON_INTERPRET", "0")
        with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
            td.edge_dot(z, s, s)
