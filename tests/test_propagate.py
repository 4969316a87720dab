"""gcn_propagate / scalevgae::gcn_spmm on the reference, cpu, cuda and cuda_sim backends.

Every backend is compared with the float64 reference on fresh random inputs (the seed is in
each failure message). The cpu kernel runs the same per-row arithmetic and merge-path chunking
(csrc/propagate_math.h) as the CUDA kernel, so these tests cover it without a GPU.
"""

from __future__ import annotations

import os

import cuda_sim_support as sim
import pytest
import torch

from scalevgae.csr import coo_to_csr, csr_transpose
from scalevgae.ops import available_backends, dispatch, gcn_propagate, reference

_STATUS = available_backends()


def _backend_param(name: str):
    if name == "cuda_sim":
        return sim.param()
    marks = [pytest.mark.skipif(not _STATUS[name].usable, reason=_STATUS[name].reason)]
    if name == "cuda":
        marks.append(pytest.mark.cuda)
    return pytest.param(name, marks=marks, id=name)


BACKENDS = [_backend_param(b) for b in ("reference", "cpu", "cuda", "cuda_sim")]
KERNEL_BACKENDS = [_backend_param(b) for b in ("cpu", "cuda", "cuda_sim")]
needs_cpu_kernels = pytest.mark.skipif(not _STATUS["cpu"].usable, reason=_STATUS["cpu"].reason)
# Tolerance of a backend's output against the float64 reference, relative to the output scale.
TOL = {torch.float64: 1e-11, torch.float32: 2e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}


def _device(backend: str) -> torch.device:
    return torch.device("cuda" if backend == "cuda" else "cpu")


@pytest.fixture(autouse=True)
def _strict_on_cuda_sim(request):
    yield from sim.strict_if_sim(request)


@pytest.fixture
def gen() -> torch.Generator:
    seed = int.from_bytes(os.urandom(4), "little")
    g = torch.Generator().manual_seed(seed)
    return g  # g.initial_seed() is in failure messages


def random_csr(n_dst, n_src, nnz, gen, idx=torch.int64, *, hub=None, hub_deg=0, dup=0, empty_frac=0.0):
    """Random CSR [n_dst x n_src] that keeps repeated entries (the first `dup` twice), leaves
    about `empty_frac` of the rows empty and gives row `hub` hub_deg extra neighbours."""
    live = torch.nonzero(torch.rand(max(n_dst, 1), generator=gen) >= empty_frac).flatten()
    if n_dst == 0 or live.numel() == 0:
        nnz, live = 0, torch.zeros(1, dtype=torch.long)
    row = live[torch.randint(0, live.numel(), (nnz,), generator=gen)]
    col = torch.randint(0, max(n_src, 1), (nnz,), generator=gen)
    row, col = torch.cat([row, row[:dup]]), torch.cat([col, col[:dup]])
    if hub is not None:
        row = torch.cat([row, torch.full((hub_deg,), hub)])
        col = torch.cat([col, torch.randint(0, n_src, (hub_deg,), generator=gen)])
    # Shuffle columns within rows: kernels must not rely on sorted columns.
    perm = torch.randperm(row.numel(), generator=gen)
    row, col = row[perm], col[perm]
    order = torch.sort(row, stable=True).indices
    row, col = row[order], col[order]
    rowptr = torch.zeros(n_dst + 1, dtype=torch.long)
    rowptr[1:] = torch.cumsum(torch.bincount(row, minlength=n_dst)[:n_dst], 0)
    return rowptr.to(idx), col.to(idx)


def truth(rowptr, col, x, rs, cs, self_loops, bias, relu):
    """The reference on float64 CPU copies of every input."""
    d = lambda t: None if t is None else t.detach().double().cpu()
    return reference.gcn_spmm(rowptr.cpu(), col.cpu(), d(x), d(rs), d(cs), self_loops, d(bias), relu)


def assert_close(y, ref, dtype, gen, what=""):
    scale = max(1.0, float(ref.abs().max())) if ref.numel() else 1.0
    tol = TOL[dtype] * scale
    assert y.shape == ref.shape, (y.shape, ref.shape)
    err = float((y.double().cpu() - ref).abs().max()) if ref.numel() else 0.0
    assert err <= tol, f"{what} max error {err:.3g} > {tol:.3g} (seed {gen.initial_seed()})"


def run(backend, rowptr, col, x, **kw):
    dev = _device(backend)
    mv = lambda t: None if t is None else t.to(dev)
    for k in ("src_scale", "dst_scale", "bias"):
        kw[k] = mv(kw.get(k))
    return gcn_propagate(rowptr.to(dev), col.to(dev), x.to(dev), backend=backend, **kw)


# ---------------------------------------------------------------- forward vs reference
CASES = {
    # name: (n_dst, n_src, nnz, F, kwargs for random_csr)
    "small": (40, 40, 200, 16, {}),
    "empty_rows_isolated": (300, 300, 400, 3, {"empty_frac": 0.6}),
    "duplicates": (50, 50, 400, 33, {"dup": 150}),
    "hub": (2000, 2000, 8000, 5, {"hub": 7, "hub_deg": 20000}),
    "bipartite": (30, 170, 900, 64, {}),
    "wide": (60, 60, 500, 257, {}),
    "f1": (100, 100, 700, 1, {}),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("idx", [torch.int32, torch.int64], ids=["i32", "i64"])
@pytest.mark.parametrize("epilogue", ["plain", "bias_relu", "no_self_loops"])
def test_matches_reference(backend, case, idx, epilogue, gen):
    n_dst, n_src, nnz, F, kw = CASES[case]
    rowptr, col = random_csr(n_dst, n_src, nnz, gen, idx, **kw)
    dt = torch.float64
    x = torch.randn(n_src, F, generator=gen, dtype=dt)
    src = torch.rand(n_src, generator=gen, dtype=dt) + 0.5
    dst = torch.rand(n_dst, generator=gen, dtype=dt) + 0.5
    bias = torch.randn(F, generator=gen, dtype=dt) if epilogue == "bias_relu" else None
    relu = epilogue == "bias_relu"
    loops = epilogue != "no_self_loops"
    y = run(backend, rowptr, col, x, src_scale=src, dst_scale=dst, bias=bias,
            activation="relu" if relu else None, add_self_loops=loops)
    assert y.dtype == dt and y.device.type == _device(backend).type
    assert_close(y, truth(rowptr, col, x, dst, src, loops, bias, relu), dt, gen, case)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision(backend, dtype, gen):
    rowptr, col = random_csr(500, 500, 4000, gen, hub=3, hub_deg=3000)
    x = torch.randn(500, 64, generator=gen).to(dtype)
    bias = torch.randn(64, generator=gen)
    y = run(backend, rowptr, col, x, bias=bias, activation="relu")
    assert y.dtype == dtype
    norm = (rowptr.diff().double() + 1).rsqrt()
    assert_close(y, truth(rowptr, col, x, norm, norm, True, bias, True), dtype, gen)


@pytest.mark.parametrize("backend", BACKENDS)
def test_default_scales_match_dense_gcn(backend, gen):
    """Both scales None on a square graph: Kipf's D̃^-1/2 (A + I) D̃^-1/2 x, A possibly directed."""
    n, F = 60, 7
    rowptr, col = random_csr(n, n, 300, gen, empty_frac=0.2)
    A = torch.zeros(n, n, dtype=torch.float64)
    A.index_put_((reference.csr_rows(rowptr), col), torch.ones(col.numel(), dtype=torch.float64), accumulate=True)
    A_hat = A + torch.eye(n, dtype=torch.float64)
    d = A_hat.sum(1).rsqrt()
    x = torch.randn(n, F, generator=gen, dtype=torch.float64)
    want = d[:, None] * (A_hat @ (d[:, None] * x))
    assert_close(run(backend, rowptr, col, x), want, torch.float64, gen)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_x(backend, gen):
    rowptr, col = random_csr(80, 80, 500, gen)
    big = torch.randn(80, 40, generator=gen, dtype=torch.float64)
    for x in (big[:, ::2], big.t().contiguous().t(), big[:, 3:36]):
        assert not x.is_contiguous()
        norm = (rowptr.diff().double() + 1).rsqrt()
        assert_close(run(backend, rowptr, col, x), truth(rowptr, col, x, norm, norm, True, None, False),
                     torch.float64, gen)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(0, 5, 4), (6, 6, 0), (0, 0, 3), (5, 5, 0)], ids=str)
def test_empty(backend, shape, gen):
    n_dst, n_src, F = shape
    rowptr = torch.zeros(n_dst + 1, dtype=torch.long)
    col = torch.zeros(0, dtype=torch.long)
    x = torch.randn(n_src, F, generator=gen, dtype=torch.float64)
    s_src, s_dst = torch.rand(n_src, dtype=torch.float64), torch.rand(n_dst, dtype=torch.float64)
    y = run(backend, rowptr, col, x, src_scale=s_src, dst_scale=s_dst, bias=torch.ones(F, dtype=torch.float64))
    assert y.shape == (n_dst, F)
    assert_close(y, truth(rowptr, col, x, s_dst, s_src, True, torch.ones(F, dtype=torch.float64), False),
                 torch.float64, gen)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_deterministic(backend, gen):
    """No atomics: two runs give bitwise equal results, hub rows included."""
    n, nnz, hub_deg = (600, 6000, 12000) if backend == "cuda_sim" else (3000, 60000, 40000)  # emulated: smaller
    rowptr, col = random_csr(n, n, nnz, gen, hub=11, hub_deg=hub_deg)
    x = torch.randn(n, 32, generator=gen)
    y = run(backend, rowptr, col, x)
    assert torch.equal(y, run(backend, rowptr, col, x))
    if backend == "cuda_sim":  # the emulated blocks in two other orders, and several at once
        for seed, concurrent in ((1, 1), (2, 4)):
            with sim.block_order(seed, concurrent):
                assert torch.equal(y, run(backend, rowptr, col, x)), (seed, concurrent)
    norm = (rowptr.diff().double() + 1).rsqrt()
    assert_close(y, truth(rowptr, col, x, norm, norm, True, None, False), torch.float32, gen)
    if backend == "cpu":  # large enough for several threads; the result must not depend on their number
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            assert torch.equal(y, run(backend, rowptr, col, x))
        finally:
            torch.set_num_threads(threads)


# ---------------------------------------------------------------- gradients
def gradcheck_x_bias(backend, rowptr, col, n_src, F, relu, gen, **kw):
    """gradcheck of gcn_propagate in x [n_src, F] and bias (float64); kw: scales etc. on the device."""
    dev = _device(backend)
    x = torch.randn(n_src, F, generator=gen, dtype=torch.float64).to(dev).requires_grad_()
    bias = torch.randn(F, generator=gen, dtype=torch.float64).to(dev).requires_grad_()
    rp, cl = rowptr.to(dev), col.to(dev)
    fn = lambda x, b: gcn_propagate(rp, cl, x, bias=b, activation="relu" if relu else None, backend=backend, **kw)
    assert torch.autograd.gradcheck(fn, (x, bias), eps=1e-6, atol=1e-5)


def backward_matches_reference(backend, rowptr, col, x, b, g, gen, **kw):
    """Grads of relu(gcn_propagate) . g in x and bias: `backend` vs the reference's autograd (CPU inputs)."""
    dev = _device(backend)
    kw = {k: v.to(dev) for k, v in kw.items()}
    grads = []
    for be in (backend, "reference"):
        xx = x.clone().to(dev).requires_grad_()
        bb = b.clone().to(dev).requires_grad_()
        y = gcn_propagate(rowptr.to(dev), col.to(dev), xx, bias=bb, activation="relu", backend=be, **kw)
        y.backward(g.to(dev))
        grads.append((xx.grad.double().cpu(), bb.grad.double().cpu()))
    for a, r in zip(grads[0], grads[1]):
        assert_close(a, r, x.dtype, gen)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("layout", ["square_built", "square_transpose", "symmetric", "bipartite"])
def test_gradcheck(backend, relu, layout, gen):
    dev = _device(backend)
    n_dst, n_src, F = (12, 12, 5) if layout != "bipartite" else (9, 16, 5)
    rowptr, col = random_csr(n_dst, n_src, 40, gen, dup=3, empty_frac=0.2)
    kw: dict = {}
    if layout == "symmetric":  # make A symmetric: A + A^T
        row = reference.csr_rows(rowptr)
        rowptr, col = coo_to_csr(torch.cat([row, col]), torch.cat([col, row]), n_dst, n_src, dedup=True)
        kw["symmetric"] = True
    if layout == "square_transpose":
        kw["transpose"] = tuple(t.to(dev) for t in csr_transpose(rowptr, col, n_src))
    if layout == "bipartite":
        kw["src_scale"] = (torch.rand(n_src, generator=gen, dtype=torch.float64) + 0.5).to(dev)
        kw["dst_scale"] = (torch.rand(n_dst, generator=gen, dtype=torch.float64) + 0.5).to(dev)
    gradcheck_x_bias(backend, rowptr, col, n_src, F, relu, gen, **kw)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_backward_matches_reference(backend, gen):
    """Backward on a larger non-symmetric graph with a hub, float32: kernel grads vs autograd of the reference."""
    rowptr, col = random_csr(400, 400, 3000, gen, hub=5, hub_deg=5000)
    x = torch.randn(400, 24, generator=gen, dtype=torch.float64)
    b = torch.randn(24, generator=gen, dtype=torch.float64)
    g = torch.randn(400, 24, generator=gen, dtype=torch.float64)
    backward_matches_reference(backend, rowptr, col, x, b, g, gen)


# ---------------------------------------------------------------- op registration
def _opcheck_samples(dev):
    g = torch.Generator().manual_seed(0)
    out = []
    for idx in (torch.int32, torch.int64):
        rowptr, col = random_csr(20, 26, 90, g, idx)
        x = torch.randn(26, 6, generator=g, dtype=torch.float64)
        rs, cs = torch.rand(20, dtype=torch.float64), torch.rand(26, dtype=torch.float64)
        bias = torch.randn(6, dtype=torch.float64)
        t_rp, t_col = csr_transpose(rowptr, col, 26)
        mv = lambda *ts: [t.to(dev) for t in ts]
        rowptr, col, x, rs, cs, bias, t_rp, t_col = mv(rowptr, col, x, rs, cs, bias, t_rp, t_col)
        out.append((rowptr, col, x.requires_grad_(), rs, cs, True, bias.requires_grad_(), True, t_rp, t_col))
        out.append((rowptr, col, x.float().detach().requires_grad_(), rs.float(), cs.float(), False, None, False,
                    None, None))
    return out


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_opcheck(backend):
    samples = _opcheck_samples(_device(backend))
    if backend == "cuda_sim":  # emulated: int32 with every optional input, int64 float32 plain (CI time)
        samples = samples[::3]
    for args in samples:
        torch.library.opcheck(dispatch.ops_of(backend).gcn_spmm.default, args)


@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_compile_fullgraph(backend, gen):
    dev = _device(backend)
    rowptr, col = random_csr(50, 50, 300, gen)
    rowptr, col = rowptr.to(dev), col.to(dev)
    x = torch.randn(50, 8, generator=gen).to(dev).requires_grad_()
    bias = torch.randn(8, generator=gen).to(dev)

    def layer(x):
        return gcn_propagate(rowptr, col, x, bias=bias, activation="relu", backend=backend).sum(1)

    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    y = compiled(x)
    torch.testing.assert_close(y, layer(x), rtol=1e-5, atol=1e-5)
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


# ---------------------------------------------------------------- bad input
def _good(gen):
    rowptr, col = random_csr(10, 10, 30, gen)
    return rowptr, col, torch.randn(10, 4, generator=gen)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_input(backend, gen):
    rowptr, col, x = _good(gen)
    call = lambda rp=rowptr, c=col, xx=x, **kw: gcn_propagate(rp, c, xx, backend=backend, **kw)
    bad_col = col.clone()
    bad_col[3] = -1
    with pytest.raises(IndexError, match="col"):
        call(c=bad_col)
    bad_col[3] = 10
    with pytest.raises(IndexError, match="col"):
        call(c=bad_col)
    bad_rp = rowptr.clone()
    bad_rp[4], bad_rp[5] = rowptr[5] + 1, rowptr[4]
    with pytest.raises(ValueError, match="rowptr"):
        call(rp=bad_rp)
    with pytest.raises(ValueError, match="rowptr"):
        call(c=col[:-1])
    with pytest.raises(ValueError, match="src_scale"):
        call(src_scale=torch.ones(9), dst_scale=torch.ones(10))
    with pytest.raises(ValueError, match="dst_scale"):
        call(src_scale=torch.ones(10), dst_scale=torch.ones(11))
    with pytest.raises(ValueError, match="bias"):
        call(bias=torch.ones(5))
    with pytest.raises(TypeError, match="col"):
        call(c=col.int())
    with pytest.raises(TypeError, match="x"):
        call(xx=x.long())
    with pytest.raises(TypeError, match="rowptr"):
        call(rp=rowptr.float())
    with pytest.raises(ValueError, match="x"):
        call(xx=x[:, 0])
    with pytest.raises(ValueError, match="activation"):
        call(activation="tanh")
    with pytest.raises(ValueError, match="bipartite"):
        call(rp=rowptr[:-3], c=col[: int(rowptr[-4])])
    with pytest.raises(ValueError, match="n_src >= n_dst"):
        call(xx=x[:5])
    with pytest.raises(ValueError, match="is on"):
        call(bias=torch.ones(4, device="meta"))
    with pytest.raises(ValueError, match="transpose"):
        call(transpose=(rowptr[:-1], col))
    t_rowptr, t_col = csr_transpose(rowptr, col, 10)
    bad_t = t_col.clone()
    bad_t[0] = 10
    with pytest.raises(IndexError, match="transpose col"):
        call(transpose=(t_rowptr, bad_t))
    with pytest.raises(ValueError, match="symmetric"):
        gcn_propagate(rowptr[:-3], col[: int(rowptr[-4])], x, src_scale=torch.ones(10), dst_scale=torch.ones(7),
                      symmetric=True, backend=backend)


@pytest.mark.parametrize("backend", [_backend_param("cpu"), _backend_param("cuda_sim")])
def test_kernel_checks_its_arguments(backend):
    """The compiled op itself rejects what the wrapper would have cast or caught."""
    op = dispatch.ops_of(backend).gcn_spmm
    rowptr, col = torch.tensor([0, 1, 2]), torch.tensor([1, 0])
    x = torch.randn(2, 3)
    with pytest.raises(TypeError, match="dst_scale"):
        op(rowptr, col, x, torch.ones(2, dtype=torch.float64), None, True, None, False, None, None)
    with pytest.raises(ValueError, match="src_scale"):
        op(rowptr, col, x, None, torch.ones(3), True, None, False, None, None)
    with pytest.raises(TypeError, match="col"):
        op(rowptr, col.int(), x, None, None, True, None, False, None, None)
    if backend == "cpu":  # a value check (reads rowptr[-1]); the CUDA kernel leaves it to the Python boundary
        with pytest.raises(ValueError, match="rowptr"):
            op(rowptr, col[:1], x, None, None, True, None, False, None, None)


@needs_cpu_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("F", [16, 64, 37, 128, 256, 100])
def test_cpu_isa_paths(dtype, F, gen, monkeypatch):
    """The cpu kernel is compiled for the baseline ISA and for AVX2 (picked at run time); both agree
    with the reference (SCALEVGAE_CPU_NO_AVX2=1 forces the baseline). F=256 and 100 take the path
    that sums rows in 64-feature register blocks (100: a 64 block and a 36-wide remainder), with a
    hub row cut into several chunks."""
    rowptr, col = random_csr(700, 700, 5000, gen, hub=2, hub_deg=6000)
    x = torch.randn(700, F, generator=gen).to(dtype)
    bias = torch.randn(F, generator=gen)
    norm = (rowptr.diff().double() + 1).rsqrt()
    want = truth(rowptr, col, x, norm, norm, True, bias, True)
    for no_avx2 in ("1", None):
        if no_avx2:
            monkeypatch.setenv("SCALEVGAE_CPU_NO_AVX2", no_avx2)
        else:
            monkeypatch.delenv("SCALEVGAE_CPU_NO_AVX2", raising=False)
        assert_close(run("cpu", rowptr, col, x, bias=bias, activation="relu"), want, dtype, gen, f"no_avx2={no_avx2}")


# ---------------------------------------------------------------- per-row self-loop weight
def truth_self(rowptr, col, x, rs, cs, ss, bias, relu):
    """float64 reference with a self_scale: act(rs * A (cs * x) + ss * x + bias)."""
    d = lambda t: None if t is None else t.detach().double().cpu()
    return reference.gcn_spmm(rowptr.cpu(), col.cpu(), d(x), d(rs), d(cs), True, d(bias), relu, d(ss))


def test_reference_self_scale_is_the_formula(gen):
    """The reference's self_scale path against the formula written out with a dense matrix."""
    n_dst, n_src, F = 15, 22, 4
    rowptr, col = random_csr(n_dst, n_src, 60, gen, dup=5)
    A = torch.zeros(n_dst, n_src, dtype=torch.float64)
    A.index_put_((reference.csr_rows(rowptr), col), torch.ones(col.numel(), dtype=torch.float64), accumulate=True)
    x = torch.randn(n_src, F, generator=gen, dtype=torch.float64)
    rs, cs = torch.rand(n_dst, generator=gen, dtype=torch.float64), torch.rand(n_src, generator=gen, dtype=torch.float64)
    ss, bias = torch.randn(n_dst, generator=gen, dtype=torch.float64), torch.randn(F, generator=gen, dtype=torch.float64)
    want = torch.relu(rs[:, None] * (A @ (cs[:, None] * x)) + ss[:, None] * x[:n_dst] + bias)
    torch.testing.assert_close(truth_self(rowptr, col, x, rs, cs, ss, bias, True), want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["small", "hub", "bipartite", "empty_rows_isolated", "wide"])
@pytest.mark.parametrize("idx", [torch.int32, torch.int64], ids=["i32", "i64"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_self_scale_matches_reference(backend, case, idx, dtype, gen):
    """self_scale (sampled blocks): the self loop weighs self_scale[i], added after dst_scale."""
    n_dst, n_src, nnz, F, kw = CASES[case]
    rowptr, col = random_csr(n_dst, n_src, nnz, gen, idx, **kw)
    x = torch.randn(n_src, F, generator=gen, dtype=torch.float64).to(dtype)
    src = torch.rand(n_src, generator=gen, dtype=torch.float64) + 0.5
    dst = torch.rand(n_dst, generator=gen, dtype=torch.float64) + 0.5
    ss = torch.randn(n_dst, generator=gen, dtype=torch.float64)  # any sign: not a product of the others
    bias = torch.randn(F, generator=gen, dtype=torch.float64)
    for relu, b in ((False, None), (True, bias)):
        y = run(backend, rowptr, col, x, src_scale=src, dst_scale=dst, self_scale=ss.to(_device(backend)), bias=b,
                activation="relu" if relu else None)
        assert y.dtype == dtype
        assert_close(y, truth_self(rowptr, col, x, dst, src, ss, b, relu), dtype, gen, f"{case} relu={relu}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("layout", ["square", "bipartite"])
def test_self_scale_gradcheck(backend, relu, layout, gen):
    """Backward with a self_scale: dx = D_src A^T D_dst g + self_scale * g on the first n_dst rows."""
    dev = _device(backend)
    n_dst, n_src, F = (12, 12, 5) if layout == "square" else (9, 16, 5)
    rowptr, col = random_csr(n_dst, n_src, 40, gen, dup=3, empty_frac=0.2)
    mk = lambda n: (torch.rand(n, generator=gen, dtype=torch.float64) + 0.5).to(dev)
    gradcheck_x_bias(backend, rowptr, col, n_src, F, relu, gen,
                     src_scale=mk(n_src), dst_scale=mk(n_dst), self_scale=mk(n_dst) - 0.9)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_self_scale_backward_matches_reference(backend, gen):
    """float32 bipartite input with a hub (cut into several chunks): grads vs the reference's autograd."""
    n_dst, n_src, F = 300, 700, 24
    rowptr, col = random_csr(n_dst, n_src, 3000, gen, hub=5, hub_deg=20000)
    x = torch.randn(n_src, F, generator=gen)
    b = torch.randn(F, generator=gen)
    g = torch.randn(n_dst, F, generator=gen)
    backward_matches_reference(backend, rowptr, col, x, b, g, gen, src_scale=torch.rand(n_src, generator=gen) + 0.5,
                               dst_scale=torch.rand(n_dst, generator=gen) + 0.5,
                               self_scale=torch.rand(n_dst, generator=gen))


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_self_scale_opcheck(backend):
    dev = _device(backend)
    for args in _opcheck_samples(dev):
        rowptr, col, x, rs, cs, loops, bias, relu, t_rp, t_col = args
        if not loops:
            continue
        ss = torch.rand(rowptr.numel() - 1, dtype=rs.dtype, device=dev)
        torch.library.opcheck(dispatch.ops_of(backend).gcn_spmm.default, (*args, ss))


@pytest.mark.parametrize("backend", BACKENDS)
def test_self_scale_torch_compile_fullgraph(backend, gen):
    dev = _device(backend)
    rowptr, col = random_csr(30, 50, 200, gen)
    rowptr, col = rowptr.to(dev), col.to(dev)
    src, dst, ss = (torch.rand(n, generator=gen).to(dev) for n in (50, 30, 30))
    x = torch.randn(50, 8, generator=gen).to(dev).requires_grad_()

    def layer(x):
        return gcn_propagate(rowptr, col, x, src_scale=src, dst_scale=dst, self_scale=ss, activation="relu",
                             backend=backend).sum(1)

    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    y = compiled(x)
    torch.testing.assert_close(y, layer(x), rtol=1e-5, atol=1e-5)
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


@pytest.mark.parametrize("backend", BACKENDS)
def test_self_scale_bad_input(backend, gen):
    rowptr, col, x = _good(gen)
    call = lambda **kw: gcn_propagate(rowptr, col, x, backend=backend, **kw)
    with pytest.raises(ValueError, match="self_scale"):
        call(self_scale=torch.ones(9))
    with pytest.raises(ValueError, match="self_scale"):
        call(self_scale=torch.ones(10, 1))
    with pytest.raises(TypeError, match="self_scale"):
        call(self_scale=torch.ones(10, dtype=torch.long))
    with pytest.raises(ValueError, match="add_self_loops"):
        call(self_scale=torch.ones(10), add_self_loops=False)
    with pytest.raises(ValueError, match="is on"):
        call(self_scale=torch.ones(10, device="meta"))


@pytest.mark.parametrize("backend", [_backend_param("cpu"), _backend_param("cuda_sim")])
def test_kernel_checks_self_scale(backend):
    op = dispatch.ops_of(backend).gcn_spmm
    rowptr, col = torch.tensor([0, 1, 2]), torch.tensor([1, 0])
    x = torch.randn(3, 3)
    with pytest.raises(ValueError, match="self_scale"):
        op(rowptr, col, x, None, None, True, None, False, None, None, torch.ones(3))  # min(R, C) = 2
    with pytest.raises(TypeError, match="self_scale"):
        op(rowptr, col, x, None, None, True, None, False, None, None, torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="self_loops"):
        op(rowptr, col, x, None, None, False, None, False, None, None, torch.ones(2))


@needs_cpu_kernels
@pytest.mark.parametrize("F", [256, 100])
def test_cpu_blocked_rows_self_scale_and_backward(F, gen):
    """The feature-blocked path (F > 64, not 128) with a self_scale, bias and relu, forward and
    backward (the backward runs the same kernel on the transposed CSR), on a bipartite block."""
    n_dst, n_src = 300, 500
    rowptr, col = random_csr(n_dst, n_src, 3000, gen, torch.int32, hub=1, hub_deg=5000)
    kw = dict(src_scale=torch.rand(n_src, generator=gen) + 0.5, dst_scale=torch.rand(n_dst, generator=gen) + 0.5,
              self_scale=torch.rand(n_dst, generator=gen))
    x0, b0 = torch.randn(n_src, F, generator=gen), torch.randn(F, generator=gen)
    g = torch.randn(n_dst, F, generator=gen)
    out = []
    for be, dt in (("cpu", torch.float32), ("reference", torch.float64)):
        x, b = x0.to(dt).clone().requires_grad_(), b0.to(dt).clone().requires_grad_()
        y = gcn_propagate(rowptr, col, x, bias=b, activation="relu", backend=be, **{k: v.to(dt) for k, v in kw.items()})
        y.backward(g.to(dt))
        out.append((y.detach().double(), x.grad.double(), b.grad.double()))
    for a, r in zip(*out):
        assert_close(a, r, torch.float32, gen, f"F={F}")


@pytest.mark.parametrize("backend", [_backend_param("cuda_sim")])
def test_cuda_sim_tests_run_strict(backend):
    """The cuda_sim runs fill uninitialized memory, so an output a kernel forgets to write is NaN."""
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.empty(4, dtype=torch.float64).isnan().all()
