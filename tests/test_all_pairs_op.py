"""The all_pairs_softplus op (the dense part of the exact all-pairs objective) on every compiled
backend vs float64 torch: loss = sum_{i,j} softplus(z_i . z_j), grad = 2 sigmoid(Z Z^T) Z.
Covers every feature width the CPU kernel specialises (and odd ones), sizes across its column
blocks and vector tails, all dtypes, non-contiguous input, extreme logits, thread-count
determinism, autograd through the op, opcheck."""

from __future__ import annotations

import cuda_sim_support as sim
import pytest
import torch

from scalevgae import _ext
from scalevgae.ops import all_pairs, dispatch

HAS_OP = _ext.has_op("all_pairs_softplus")
needs_op = pytest.mark.skipif(not HAS_OP, reason="compiled extension (with all_pairs_softplus) not built")
HAS_CUDA = torch.cuda.is_available() and _ext.with_cuda() and HAS_OP
BACKENDS = [
    pytest.param("cpu", marks=needs_op),
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA")]),
    sim.param(),
]


@pytest.fixture(autouse=True)
def _strict_on_cuda_sim(request):
    yield from sim.strict_if_sim(request)


def _dev(backend: str) -> torch.device:
    return torch.device("cuda" if backend == "cuda" else "cpu")


def _truth(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z64 = z.detach().double().cpu()
    x = z64 @ z64.T
    return torch.nn.functional.softplus(x, threshold=1000).sum(), 2 * torch.sigmoid(x) @ z64


TOL = {
    torch.float64: dict(rtol=1e-11, atol=1e-11),
    torch.float32: dict(rtol=3e-6, atol=3e-6),
    torch.float16: dict(rtol=3e-6, atol=3e-6),  # computed in float32 from the given half values
    torch.bfloat16: dict(rtol=3e-6, atol=3e-6),
}


def _check(backend, z, need_grad=True):
    loss, grad = dispatch.ops_of(backend).all_pairs_softplus(z, need_grad)
    ref_loss, ref_grad = _truth(z)
    assert loss.dtype == torch.float64 and loss.shape == ()
    acc = torch.float64 if z.dtype == torch.float64 else torch.float32
    assert grad.dtype == acc
    tol = TOL[z.dtype]
    torch.testing.assert_close(loss.cpu(), ref_loss, rtol=tol["rtol"], atol=tol["atol"] * max(1, z.size(0)) ** 2)
    if need_grad:
        scale = 1 + (ref_grad.abs().max().item() if ref_grad.numel() else 0.0)
        torch.testing.assert_close(grad.double().cpu(), ref_grad, rtol=tol["rtol"], atol=tol["atol"] * scale)
    else:
        assert grad.shape == (0, z.size(1))


# CPU: every specialised width (8, 16, 32, 64), odd widths and 0; N from one partial 256-row
# tile to 5 tiles (odd and even tile counts: the round-robin schedule's bye), through the 64-
# and 8-column vector steps and the scalar tail.
CPU_CASES = [(n, F) for n in (0, 1, 7, 9, 40, 512, 517, 800, 1100) for F in (0, 1, 7, 8, 16, 32, 64, 65)]
SIM_CASES = [(0, 4), (1, 3), (9, 16), (37, 7), (70, 8)]  # emulated: small (CI time)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_float64(backend, dtype):
    gen = torch.Generator().manual_seed(7)
    cases = SIM_CASES if backend == "cuda_sim" else CPU_CASES
    for n, F in cases:
        if backend == "cuda_sim" or n * n * F <= 2e7:
            z = (torch.randn(n, F, generator=gen, dtype=dtype) * (1.5 / max(F, 1) ** 0.5)).to(_dev(backend))
            _check(backend, z)


# The float kernel is compiled for AVX-512, AVX2 + FMA and the baseline ISA (cpu/isa.h); the
# widest the CPU has runs above. These switches force the narrower copies.
NARROWER = ["SCALEVGAE_CPU_NO_AVX512", "SCALEVGAE_CPU_NO_AVX2"]


@needs_op
@pytest.mark.parametrize("switch", NARROWER)
def test_cpu_narrower_copies_match_float64(switch, monkeypatch):
    monkeypatch.setenv(switch, "1")
    gen = torch.Generator().manual_seed(11)
    for n, F in CPU_CASES:
        if n * n * F <= 2e7:
            _check("cpu", torch.randn(n, F, generator=gen) * (1.5 / max(F, 1) ** 0.5))


@pytest.mark.parametrize("backend", BACKENDS)
def test_half_bfloat16_noncontiguous_and_no_grad(backend):
    gen = torch.Generator().manual_seed(8)
    dev = _dev(backend)
    n = 33 if backend == "cuda_sim" else 300
    for dtype in (torch.float16, torch.bfloat16):
        _check(backend, (torch.randn(n, 16, generator=gen) * 0.3).to(dev, dtype))
    wide = torch.randn(n, 40, generator=gen, dtype=torch.float64).to(dev) * 0.2
    _check(backend, wide[:, ::2])  # strided columns
    _check(backend, wide.T.contiguous().T[:, 3:19])  # column-major storage, offset
    _check(backend, wide[:, :16], need_grad=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_extreme_logits_stay_finite_and_exact(backend):
    """|x| up to ~10^4: softplus(x) = x for large x, ~exp(x) for very negative x; sigmoid saturates."""
    dev = _dev(backend)
    z = torch.tensor([[100.0, 0.0], [-100.0, 0.0], [0.0, 3.0], [0.0, -9.5], [1e-3, 1e-3]], dtype=torch.float32)
    for dtype in (torch.float32, torch.float64):
        _check(backend, z.to(dev, dtype))


@needs_op
@pytest.mark.parametrize("switch", [None, *NARROWER])
def test_cpu_bitwise_same_for_any_thread_count(switch, monkeypatch):
    if switch:
        monkeypatch.setenv(switch, "1")
    gen = torch.Generator().manual_seed(9)
    z = torch.randn(777, 16, generator=gen) * 0.4
    prev = torch.get_num_threads()
    outs = []
    try:
        for t in (1, 2, 3):
            torch.set_num_threads(t)
            outs.append(torch.ops.scalevgae.all_pairs_softplus(z, True))
    finally:
        torch.set_num_threads(prev)
    for loss, grad in outs[1:]:
        assert torch.equal(loss, outs[0][0]) and torch.equal(grad, outs[0][1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_autograd_and_opcheck(backend):
    gen = torch.Generator().manual_seed(10)
    dev = _dev(backend)
    op = dispatch.ops_of(backend).all_pairs_softplus
    z = (torch.randn(13, 5, generator=gen, dtype=torch.float64) * 0.6).to(dev).requires_grad_()
    assert torch.autograd.gradcheck(lambda z: op(z, True)[0], (z,))
    w = torch.randn((), dtype=torch.float64)
    (g,) = torch.autograd.grad(op(z, True)[0] * w.to(dev), z)
    torch.testing.assert_close(g.cpu(), w * _truth(z)[1])
    with pytest.raises(RuntimeError, match="need_grad=True"):
        op(z, False)[0].backward()
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(11, 6, generator=gen, dtype=dtype).to(dev).requires_grad_()
        torch.library.opcheck(op.default, (x, True))
        torch.library.opcheck(op.default, (x.detach(), False))


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.values[0] != "cuda"])
def test_loss_uses_the_op_by_default_on_cpu(backend):
    """all_pairs_bce_loss on CPU runs the op (cpu by default, cuda_sim when asked) and agrees
    with the torch tiles of the reference backend."""
    name = backend if backend == "cuda_sim" else None
    z = torch.randn(20, 4)
    assert all_pairs._tile_engine(z, name) == backend
    assert all_pairs._tile_engine(z, "reference") == "torch"
