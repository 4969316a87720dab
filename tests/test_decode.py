"""Edge decoding (edge_logits, edge_bce_loss, all_pairs_bce_loss): every backend vs the float64
reference, edge cases, gradients, opcheck, torch.compile, determinism, bad input."""

from __future__ import annotations

import cuda_sim_support as sim
import pytest
import torch

from scalevgae import _ext
from scalevgae.csr import coo_to_csr
from scalevgae.ops import all_pairs, decode, dispatch, reference

_COMPILED_OPS = all(_ext.has_op(k) for k in decode.KERNELS)
HAS_CUDA = torch.cuda.is_available() and _ext.with_cuda() and _COMPILED_OPS
needs_ext = pytest.mark.skipif(not _COMPILED_OPS, reason="compiled extension (with decode ops) not built")


def _triton_ok() -> bool:
    return dispatch._status("triton").usable


BACKENDS = [
    pytest.param("reference"),
    pytest.param("cpu", marks=needs_ext),
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA")]),
    pytest.param(
        "triton", marks=[pytest.mark.triton, pytest.mark.skipif(not _triton_ok(), reason="no Triton decode")]
    ),
    sim.param(),
]
COMPILED = [b for b in BACKENDS if b.values[0] in ("cpu", "cuda", "cuda_sim")]
REGISTERED = [b for b in BACKENDS if b.values[0] != "reference"]  # the backends whose kernels are ops


@pytest.fixture(autouse=True)
def _strict_on_cuda_sim(request):
    yield from sim.strict_if_sim(request)


def _device(backend: str) -> torch.device:
    if backend == "cuda" or (backend == "triton" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def _tol(dtype: torch.dtype) -> dict:
    return {
        torch.float64: dict(rtol=1e-10, atol=1e-10),
        torch.float32: dict(rtol=2e-5, atol=2e-5),
        torch.float16: dict(rtol=2e-2, atol=2e-2),
        torch.bfloat16: dict(rtol=5e-2, atol=5e-2),
    }[dtype]


def _edges(n: int, E: int, gen: torch.Generator, device, idx_dtype=torch.int64):
    """Random pairs with forced repeats and self pairs."""
    src = torch.randint(0, n, (E,), generator=gen)
    dst = torch.randint(0, n, (E,), generator=gen)
    k = E // 8
    if k:
        src[:k], dst[:k] = src[k : 2 * k].clone(), dst[k : 2 * k].clone()  # repeated pairs
        dst[2 * k : 3 * k] = src[2 * k : 3 * k]  # self pairs
    return src.to(device, idx_dtype), dst.to(device, idx_dtype)


def _check_against_reference(backend, z, src, dst, label=None, pos_weight=None, reduction="mean"):
    """Forward and gradient (random upstream) vs the float64 reference."""
    z = z.detach().requires_grad_()
    z64 = z.detach().double().requires_grad_()
    if label is None:
        out = decode.edge_logits(z, src, dst, backend=backend)
        ref = reference.edge_logits(z64, src, dst)
    else:
        out = decode.edge_bce_loss(
            z, src, dst, label, pos_weight=pos_weight, reduction=reduction, backend=backend
        )
        ref = reference.edge_bce_loss(z64, src, dst, label.double(), pos_weight, reduction)
    assert out.dtype == reference.acc_dtype(z.dtype) and out.shape == ref.shape
    g = torch.randn(ref.shape, dtype=torch.float64, device=z.device)
    (dz,) = torch.autograd.grad(out, z, g.to(out.dtype))
    (dz_ref,) = torch.autograd.grad(ref, z64, g)
    assert dz.dtype == z.dtype and dz.shape == z.shape
    tol = _tol(z.dtype)
    torch.testing.assert_close(out.double(), ref, **tol)
    torch.testing.assert_close(dz.double(), dz_ref, **tol)


# ---- forward and backward vs the reference ----
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("F", [1, 3, 13, 32, 33, 64, 130])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_edge_logits_matches_reference(backend, F, dtype):
    gen = torch.Generator().manual_seed(F)
    dev = _device(backend)
    n, E = 57, 400
    z = (torch.randn(n, F, generator=gen, dtype=dtype) / F**0.5).to(dev)
    src, dst = _edges(n, E, gen, dev)
    _check_against_reference(backend, z, src, dst)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("pos_weight", [None, 3.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_edge_bce_matches_reference(backend, reduction, pos_weight, dtype):
    gen = torch.Generator().manual_seed(7)
    dev = _device(backend)
    n, E, F = 80, 1000, 24
    z = torch.randn(n, F, generator=gen, dtype=dtype).to(dev)
    src, dst = _edges(n, E, gen, dev)
    label = torch.rand(E, generator=gen).to(dev)  # soft labels too
    label[: E // 2] = label[: E // 2].round()
    _check_against_reference(backend, z, src, dst, label, pos_weight, reduction)


@pytest.mark.parametrize("backend", BACKENDS)
def test_int32_indices_and_noncontiguous_z(backend):
    gen = torch.Generator().manual_seed(3)
    dev = _device(backend)
    n, E, F = 40, 300, 19
    big = torch.randn(F * 2, n, generator=gen).to(dev)
    z = big[::2].T  # [n, F], non-contiguous
    assert not z.is_contiguous()
    src, dst = _edges(n, E, gen, dev, torch.int32)
    label = (torch.rand(E, generator=gen) < 0.5).to(dev)  # bool labels
    _check_against_reference(backend, z, src, dst)
    _check_against_reference(backend, z, src, dst, label, 2.0, "sum")
    # mixed index dtypes are accepted (promoted to int64)
    _check_against_reference(backend, z, src, dst.long())


@pytest.mark.parametrize("backend", BACKENDS)
def test_hub_node_in_many_pairs(backend):
    gen = torch.Generator().manual_seed(5)
    dev = _device(backend)
    n, E, F = 300, 10_000, 16
    z = (torch.randn(n, F, generator=gen) / 4).to(dev)
    src = torch.zeros(E, dtype=torch.long, device=dev)  # node 0 in all 10^4 pairs
    dst = torch.randint(0, n, (E,), generator=gen).to(dev)
    src[::2], dst[::2] = dst[::2].clone(), src[::2].clone()  # on both ends
    label = (torch.rand(E, generator=gen) < 0.3).float().to(dev)
    _check_against_reference(backend, z, src, dst, label, 2.0, "mean")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_empty_edge_set(backend, reduction):
    dev = _device(backend)
    z = torch.randn(5, 8, device=dev, requires_grad=True)
    e = torch.empty(0, dtype=torch.long, device=dev)
    loss = decode.edge_bce_loss(z, e, e, torch.empty(0, device=dev), reduction=reduction, backend=backend)
    assert torch.isfinite(loss).all()
    if reduction == "none":
        assert loss.shape == (0,)
    else:
        assert loss.shape == () and loss.item() == 0.0
    (dz,) = torch.autograd.grad(loss.sum(), z)
    assert torch.equal(dz, torch.zeros_like(z))
    logits = decode.edge_logits(z, e, e, backend=backend)
    assert logits.shape == (0,)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_logits(backend, dtype):
    gen = torch.Generator().manual_seed(11)
    dev = _device(backend)
    n, E, F = 30, 200, 8
    z = (torch.randn(n, F, generator=gen, dtype=dtype) * 12).to(dev)  # |logit| up to ~1000
    src, dst = _edges(n, E, gen, dev)
    label = (torch.rand(E, generator=gen) < 0.5).to(dtype).to(dev)
    logits = reference.edge_logits(z.double(), src, dst)
    assert (logits.abs() > 100).float().mean() > 0.3
    for pw in (None, 5.0):
        loss = decode.edge_bce_loss(z, src, dst, label, pos_weight=pw, reduction="none", backend=backend)
        assert torch.isfinite(loss).all()
        _check_against_reference(backend, z, src, dst, label, pw, "mean")


@pytest.mark.parametrize("backend", COMPILED)
def test_half_precision_accumulates_in_float(backend):
    gen = torch.Generator().manual_seed(13)
    dev = _device(backend)
    n, E, F = 50, 500, 40
    for dtype in (torch.float16, torch.bfloat16):
        z = (torch.randn(n, F, generator=gen) / 3).to(dev, dtype)
        src, dst = _edges(n, E, gen, dev)
        label = (torch.rand(E, generator=gen) < 0.5).float().to(dev)
        _check_against_reference(backend, z, src, dst, label, 2.0, "mean")
        _check_against_reference(backend, z, src, dst)


# ---- gradients ----
def _grad_inputs(backend: str, seed: int, n: int, E: int, F: int):
    """float64 z [n, F] (requires grad), src/dst [E] and soft labels [E] on the backend's device."""
    gen = torch.Generator().manual_seed(seed)
    dev = _device(backend)
    z = torch.randn(n, F, generator=gen, dtype=torch.float64).to(dev).requires_grad_()
    src, dst = _edges(n, E, gen, dev)
    return z, src, dst, torch.rand(E, generator=gen, dtype=torch.float64).to(dev)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.values[0] != "triton"])
def test_gradcheck_float64(backend):
    z, src, dst, label = _grad_inputs(backend, 17, n=12, E=40, F=5)
    assert torch.autograd.gradcheck(lambda z: decode.edge_logits(z, src, dst, backend=backend), (z,))
    for red in ("mean", "sum", "none"):
        f = lambda z, red=red: decode.edge_bce_loss(
            z, src, dst, label, pos_weight=2.0, reduction=red, backend=backend
        )
        assert torch.autograd.gradcheck(f, (z,))


@pytest.mark.parametrize("backend", COMPILED)
def test_gradgradcheck_float64(backend):
    z, src, dst, label = _grad_inputs(backend, 19, n=10, E=30, F=4)
    assert torch.autograd.gradgradcheck(lambda z: decode.edge_logits(z, src, dst, backend=backend), (z,))
    f = lambda z: decode.edge_bce_loss(z, src, dst, label, pos_weight=2.0, backend=backend)
    assert torch.autograd.gradgradcheck(f, (z,))


# ---- registered ops ----
@pytest.mark.parametrize("backend", REGISTERED)
def test_opcheck(backend):
    gen = torch.Generator().manual_seed(23)
    dev = _device(backend)
    ops = decode._ops(backend)
    combos = [(d, F) for d in (torch.float32, torch.float64) for F in (6, 32)]
    if backend == "cuda_sim":  # emulated: each dtype and each vector width once (CI time)
        combos = [(torch.float32, 6), (torch.float64, 32)]
    for dtype, F in combos:
        z = torch.randn(15, F, generator=gen, dtype=dtype).to(dev).requires_grad_()
        src, dst = _edges(15, 50, gen, dev)
        label = torch.rand(50, generator=gen, dtype=dtype).to(dev)
        coef = torch.randn(50, generator=gen, dtype=dtype).to(dev).requires_grad_()
        torch.library.opcheck(ops.edge_dot.default, (z, src, dst))
        for red in (0, 1, 2):
            torch.library.opcheck(ops.edge_bce.default, (z, src, dst, label, 1.5, red))
        torch.library.opcheck(ops.edge_grad.default, (coef, z, src, dst, False))
        torch.library.opcheck(ops.edge_grad.default, (coef, z, src.int(), dst.int(), True))


@pytest.mark.parametrize("backend", REGISTERED)
def test_torch_compile_fullgraph(backend):
    torch._dynamo.reset()
    gen = torch.Generator().manual_seed(29)
    dev = _device(backend)
    n, E, F = 64, 500, 16
    z0 = torch.randn(n, F, generator=gen).to(dev)
    src, dst = _edges(n, E, gen, dev)
    label = (torch.rand(E, generator=gen) < 0.5).float().to(dev)

    def step(z):
        loss = decode.edge_bce_loss(z, src, dst, label, pos_weight=2.0, backend=backend)
        return loss + 1e-3 * decode.edge_logits(z, src[:10], dst[:10], backend=backend).sum()

    compiled = torch.compile(step, fullgraph=True)
    z1, z2 = z0.clone().requires_grad_(), z0.clone().requires_grad_()
    out1, out2 = compiled(z1), step(z2)
    out1.backward()
    out2.backward()
    torch.testing.assert_close(out1, out2)
    torch.testing.assert_close(z1.grad, z2.grad)


@pytest.mark.parametrize("backend", COMPILED)
def test_deterministic_gradient(backend):
    gen = torch.Generator().manual_seed(31)
    dev = _device(backend)
    n, E, F = (500, 5_000, 32) if backend == "cuda_sim" else (2000, 50_000, 32)  # emulated: smaller
    z = torch.randn(n, F, generator=gen).to(dev).requires_grad_()
    src = torch.randint(0, 50, (E,), generator=gen).to(dev)  # heavy collisions
    dst = torch.randint(0, n, (E,), generator=gen).to(dev)
    label = (torch.rand(E, generator=gen) < 0.5).float().to(dev)
    threads = torch.get_num_threads()

    def grad(num_threads):
        torch.set_num_threads(num_threads)
        z.grad = None
        decode.edge_bce_loss(z, src, dst, label, backend=backend).backward()
        return z.grad.clone()

    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        g = [grad(threads) for _ in range(3)] + [grad(1)]
    finally:
        torch.use_deterministic_algorithms(prev)
        torch.set_num_threads(threads)
    for other in g[1:]:
        assert torch.equal(g[0], other)


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_edge_grad_owner_scan_and_sort_give_the_same_bits(dtype):
    """csrc/cpu/decode.cpp sums each dz row in entry order by an owner scan (<= 4 threads) or a
    counting sort (more threads): both must give the reference's values and the same bits."""
    gen = torch.Generator().manual_seed(37)
    n, E, F = 3000, 40_000, 16
    z = torch.randn(n, F, generator=gen, dtype=dtype)
    src, dst = _edges(n, E, gen, "cpu")
    src[: E // 4] = 7  # a hub
    coef = torch.randn(E, generator=gen, dtype=dtype)
    threads = torch.get_num_threads()
    out = {}
    try:
        for t in (1, 2, 3, 4, 5, 8):
            torch.set_num_threads(t)
            for idx in (torch.int64, torch.int32):
                out[t, idx] = torch.ops.scalevgae.edge_grad(coef, z, src.to(idx), dst.to(idx), False)
    finally:
        torch.set_num_threads(threads)
    ref = torch.zeros(n, F, dtype=torch.float64)  # dz[src] += coef z[dst], dz[dst] += coef z[src]
    ref.index_add_(0, src, coef.double()[:, None] * z.double()[dst])
    ref.index_add_(0, dst, coef.double()[:, None] * z.double()[src])
    torch.testing.assert_close(out[1, torch.int64].double(), ref, **_tol(dtype))
    for g in out.values():
        assert torch.equal(g, out[1, torch.int64])


@needs_ext
def test_cpu_edge_grad_big_output_from_fresh_zero_pages():
    """A dz of 32 MB and more comes zero-filled straight from the kernel (csrc/cpu/mapped_zeros.h)
    and the owner scan does not fill it: rows no entry touches must read exactly 0, touched rows
    the reference's values and the counting sort's bits, two outputs alive at once must not share
    memory, and a dz freed and taken again must come back zeroed, not with the last call's sums."""
    gen = torch.Generator().manual_seed(41)
    n, F, E = 1 << 17, 64, 6000  # dz: exactly 32 MB of float32
    z = torch.randn(n, F, generator=gen)
    src, dst = _edges(n, E, gen, "cpu")
    src[:500] = 11  # a hub
    coef = torch.randn(E, generator=gen)
    ops = torch.ops.scalevgae
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # the owner scan
        a = ops.edge_grad(coef, z, src, dst, False)
        b = ops.edge_grad(-coef, z, src, dst, False)  # alive together with a
        del b
        c = ops.edge_grad(coef, z, src, dst, False)  # may reuse b's pages: must start from zeros
        torch.set_num_threads(8)  # the counting sort (writes every row)
        sort = ops.edge_grad(coef, z, src, dst, False)
    finally:
        torch.set_num_threads(threads)
    assert a.is_contiguous() and a.shape == (n, F) and a.dtype == torch.float32
    ref = torch.zeros(n, F, dtype=torch.float64)
    ref.index_add_(0, src, coef.double()[:, None] * z.double()[dst])
    ref.index_add_(0, dst, coef.double()[:, None] * z.double()[src])
    untouched = torch.ones(n, dtype=torch.bool)
    untouched[src], untouched[dst] = False, False
    assert int(untouched.sum()) > n // 2
    assert torch.count_nonzero(a[untouched]) == 0
    torch.testing.assert_close(a.double(), ref, **_tol(torch.float32))
    assert torch.equal(a, c) and torch.equal(a, sort)
    a.add_(1.0)  # writable, and not shared with c
    assert torch.equal(c, sort)


@needs_ext
@pytest.mark.parametrize("F", [16, 32, 64, 128, 8, 40])
@pytest.mark.parametrize("idx", [torch.int64, torch.int32])
@pytest.mark.parametrize("switch", [None, "SCALEVGAE_CPU_NO_AVX2"])
def test_cpu_decoder_row_widths(F, idx, switch, monkeypatch):
    """csrc/cpu/decode.cpp compiles float rows of 16/32/64/128 features (F = 8, 40: the runtime
    width) and vectorises the BCE's exp/log1p: edge_dot, edge_bce (more than one loss block, a
    ragged tail, a hub, non-contiguous z) and edge_grad (1 and 2 threads, same bits) vs float64;
    the AVX2 copies where the CPU has them and, forced by the switch, the baseline ones."""
    if switch:
        monkeypatch.setenv(switch, "1")
    gen = torch.Generator().manual_seed(F)
    n, E = 500, 4096 + 1003
    z = (torch.randn(F, n, generator=gen) * 3 / F**0.5).T  # [n, F] non-contiguous, |logit| up to ~30
    src, dst = _edges(n, E, gen, "cpu")
    src[::7] = 3  # a hub
    src, dst = src.to(idx), dst.to(idx)
    label = torch.rand(E, generator=gen)
    label[::2] = label[::2].round()
    coef = torch.randn(E, generator=gen)
    ops = torch.ops.scalevgae
    zd, s64, d64 = z.double(), src.long(), dst.long()
    x = reference.edge_logits(zd, s64, d64)
    torch.testing.assert_close(ops.edge_dot(z, src, dst).double(), x, **_tol(torch.float32))
    y, pw = label.double(), 2.5
    want = (
        (1 - y) * x + (1 + (pw - 1) * y) * torch.nn.functional.softplus(-x),
        (1 - y) - (1 + (pw - 1) * y) * torch.sigmoid(-x),
    )
    loss, dlogit = ops.edge_bce(z, src, dst, label, pw, 0)  # reduction "none"
    torch.testing.assert_close(loss.double(), want[0], **_tol(torch.float32))
    torch.testing.assert_close(dlogit.double(), want[1], **_tol(torch.float32))
    grad = torch.zeros(n, F, dtype=torch.float64)
    grad.index_add_(0, s64, coef.double()[:, None] * zd[d64])
    grad.index_add_(0, d64, coef.double()[:, None] * zd[s64])
    threads = torch.get_num_threads()
    out = {}
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            out[t] = (ops.edge_bce(z, src, dst, label, pw, 2), ops.edge_grad(coef, z, src, dst, False))
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(out[1][0][0].double(), want[0].sum(), rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(out[1][1].double(), grad, **_tol(torch.float32))
    assert torch.equal(out[1][0][0], out[2][0][0]) and torch.equal(out[1][0][1], out[2][0][1])
    assert torch.equal(out[1][1], out[2][1])


@pytest.mark.parametrize("backend", [sim.param()])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_sim_edge_grad_paths_and_block_orders(backend, dtype):
    """The CUDA edge_grad on cuda_sim: the atomic and the sorted deterministic path vs the
    reference (a hub in many pairs, self pairs, E = 0), and the deterministic path bitwise equal
    whatever order (and concurrency) the emulated blocks run in."""
    gen = torch.Generator().manual_seed(41)
    ops = decode._ops(backend)
    n, F = 300, 33
    z = torch.randn(n, F, generator=gen, dtype=dtype)
    src, dst = _edges(n, 3000, gen, "cpu")
    src[::3] = 5  # hub
    coef = torch.randn(3000, generator=gen, dtype=reference.acc_dtype(dtype))
    zs = z.double()
    want = torch.zeros(n, F, dtype=torch.float64)
    want.index_add_(0, src, coef.double()[:, None] * zs[dst]).index_add_(0, dst, coef.double()[:, None] * zs[src])
    outs = {}
    for det in (False, True):
        outs[det] = ops.edge_grad(coef, z, src, dst, det)
        torch.testing.assert_close(outs[det].double(), want, **_tol(dtype))
        assert torch.equal(ops.edge_grad(coef[:0], z, src[:0], dst[:0], det), torch.zeros_like(z))
    dot = ops.edge_dot(z, src, dst)
    for seed, concurrent in ((1, 1), (2, 4)):
        with sim.block_order(seed, concurrent):
            assert torch.equal(ops.edge_grad(coef, z, src, dst, True), outs[True]), (seed, concurrent)
            torch.testing.assert_close(ops.edge_grad(coef, z, src, dst, False).double(), want, **_tol(dtype))
            assert torch.equal(ops.edge_dot(z, src, dst), dot)


# ---- bad input ----
def test_bad_input_errors():
    z = torch.randn(10, 4)
    src = torch.tensor([0, 1, 2])
    dst = torch.tensor([3, 4, 5])
    y = torch.ones(3)
    with pytest.raises(IndexError, match="dst"):
        decode.edge_logits(z, src, torch.tensor([3, 4, 10]))
    with pytest.raises(IndexError, match="src.*negative"):
        decode.edge_bce_loss(z, torch.tensor([0, -1, 2]), dst, y)
    with pytest.raises(ValueError, match="same length"):
        decode.edge_logits(z, src, dst[:2])
    with pytest.raises(ValueError, match="label"):
        decode.edge_bce_loss(z, src, dst, torch.ones(4))
    with pytest.raises(ValueError, match="label"):
        decode.edge_bce_loss(z, src, dst, torch.ones(3, 1))
    with pytest.raises(TypeError, match="label"):
        decode.edge_bce_loss(z, src, dst, torch.ones(3, dtype=torch.long))
    with pytest.raises(TypeError, match="z"):
        decode.edge_logits(z.long(), src, dst)
    with pytest.raises(ValueError, match="z"):
        decode.edge_logits(z[0], src, dst)
    with pytest.raises(TypeError, match="src"):
        decode.edge_logits(z, src.float(), dst)
    with pytest.raises(ValueError, match="reduction"):
        decode.edge_bce_loss(z, src, dst, y, reduction="avg")
    with pytest.raises(ValueError, match="src is on meta"):
        decode.edge_logits(z, src.to("meta"), dst)
    with pytest.raises(ValueError, match="label is on meta"):
        decode.edge_bce_loss(z, src, dst, y.to("meta"))
    with pytest.raises(ValueError, match="backend"):
        decode.edge_logits(z, src, dst, backend="nope")


@needs_ext
def test_op_level_checks():
    ops = torch.ops.scalevgae
    z = torch.randn(10, 4)
    src = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="dst"):
        ops.edge_dot(z, src, src[:2])
    with pytest.raises(TypeError, match="dst"):
        ops.edge_dot(z, src, src.int())
    with pytest.raises(TypeError, match="label"):
        ops.edge_bce(z, src, src, torch.ones(3, dtype=torch.float64), 1.0, 1)
    with pytest.raises(ValueError, match="coef"):
        ops.edge_grad(torch.ones(2), z, src, src, False)


# ---- all-pairs loss ----
def _graph(n: int, m: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, m), generator=gen)
    return coo_to_csr(torch.cat([ei[0], ei[1]]), torch.cat([ei[1], ei[0]]), n, n, drop_self_loops=True)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.values[0] != "triton"])
@pytest.mark.parametrize("n,tile", [(1, 4), (37, 8), (64, 16), (50, 1000)])
@pytest.mark.parametrize("add_self_loops", [True, False])
def test_all_pairs_matches_dense(backend, n, tile, add_self_loops):
    dev = _device(backend)
    rowptr, col = _graph(n, 3 * n, seed=n)
    gen = torch.Generator().manual_seed(n + 1)
    for dtype in (torch.float64, torch.float32):
        z = (torch.randn(n, 7, generator=gen, dtype=dtype) * 0.7).to(dev).requires_grad_()
        z64 = z.detach().double().requires_grad_()
        for pw in (None, 4.0):
            out = all_pairs.all_pairs_bce_loss(
                z,
                rowptr.to(dev),
                col.to(dev),
                pos_weight=pw,
                add_self_loops=add_self_loops,
                tile=tile,
                backend=backend,
            )
            ref = reference.all_pairs_bce_loss_dense(z64, rowptr.to(dev), col.to(dev), pw, add_self_loops)
            (dz,) = torch.autograd.grad(out, z)
            (dz_ref,) = torch.autograd.grad(ref, z64)
            tol = _tol(dtype)
            torch.testing.assert_close(out.double(), ref, **tol)
            torch.testing.assert_close(dz.double(), dz_ref, **tol)


def test_all_pairs_duplicates_and_existing_self_loops_count_once():
    n = 9
    row = torch.tensor([0, 0, 0, 1, 2, 2, 3])
    col = torch.tensor([1, 1, 0, 0, 3, 2, 2])
    rowptr, col = coo_to_csr(row, col, n, n, dedup=False)
    z = torch.randn(n, 3, dtype=torch.float64)
    src, dst = all_pairs.positive_pairs(rowptr, col, add_self_loops=True)
    assert src.numel() == 4 + n  # (0,1), (1,0), (2,3), (3,2) + the diagonal
    out = all_pairs.all_pairs_bce_loss(z, rowptr, col, tile=4)
    ref = reference.all_pairs_bce_loss_dense(z, rowptr, col)
    torch.testing.assert_close(out, ref)


def test_all_pairs_default_pos_weight_and_kipf_norm():
    """Default pos_weight is (N^2 - P) / P; the result is the unnormalized mean (Kipf's cost / norm)."""
    n = 20
    rowptr, col = _graph(n, 30, seed=3)
    z = torch.randn(n, 4, dtype=torch.float64)
    p = all_pairs.positive_pairs(rowptr, col)[0].numel()
    pw = (n * n - p) / p
    a = all_pairs.all_pairs_bce_loss(z, rowptr, col, tile=6)
    b = all_pairs.all_pairs_bce_loss(z, rowptr, col, pos_weight=pw, tile=6)
    torch.testing.assert_close(a, b)
    adj = torch.zeros(n, n, dtype=torch.float64)
    adj[reference.csr_rows(rowptr), col] = 1
    adj += torch.eye(n, dtype=torch.float64)
    x = z @ z.T
    tf_wce = (1 - adj) * x + (1 + (pw - 1) * adj) * torch.nn.functional.softplus(-x)  # TF's formula
    torch.testing.assert_close(a, tf_wce.mean())


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.values[0] in ("reference", "cpu")])
def test_all_pairs_gradcheck(backend):
    n = 11
    rowptr, col = _graph(n, 20, seed=5)
    z = (torch.randn(n, 3, dtype=torch.float64) * 0.8).requires_grad_()
    f = lambda z: all_pairs.all_pairs_bce_loss(z, rowptr, col, tile=4, backend=backend)
    assert torch.autograd.gradcheck(f, (z,))


def test_all_pairs_bad_input():
    rowptr, col = _graph(6, 8, seed=1)
    with pytest.raises(ValueError, match="z"):
        all_pairs.all_pairs_bce_loss(torch.randn(5, 3), rowptr, col)
    with pytest.raises(ValueError, match="tile"):
        all_pairs.all_pairs_bce_loss(torch.randn(6, 3), rowptr, col, tile=0)
    with pytest.raises(IndexError, match="col"):
        all_pairs.all_pairs_bce_loss(torch.randn(6, 3), rowptr, torch.full_like(col, 6))


@pytest.mark.triton
@pytest.mark.skipif(not dispatch._status("triton").usable, reason="Triton not usable here")
def test_all_pairs_triton_tiles_match_dense():
    from scalevgae.ops.triton import all_pairs as tap

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    for n, F in ((1, 3), (45, 5), (70, 20)):
        rowptr, col = _graph(n, 2 * n, seed=n)
        gen = torch.Generator().manual_seed(n)
        z = (torch.randn(n, F, generator=gen) * 0.6).to(dev).requires_grad_()
        z64 = z.detach().double()
        x = z64 @ z64.T
        torch.testing.assert_close(tap.softplus_pair_sum(z).double(), Fn_softplus(x).sum(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(tap.sigmoid_pair_matmul(z).double(), torch.sigmoid(x) @ z64, rtol=1e-5, atol=1e-5)
        z64.requires_grad_()
        rp, c = rowptr.to(dev), col.to(dev)
        assert all_pairs._tile_engine(z, "triton") == "triton"
        out = all_pairs.all_pairs_bce_loss(z, rp, c, pos_weight=3.0, backend="triton")
        ref = reference.all_pairs_bce_loss_dense(z64, rp, c, 3.0)
        (dz,) = torch.autograd.grad(out, z)
        (dz_ref,) = torch.autograd.grad(ref, z64)
        torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(dz.double(), dz_ref, rtol=1e-5, atol=1e-5)


def Fn_softplus(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp_min(x, 0) + torch.log1p(torch.exp(-x.abs()))
