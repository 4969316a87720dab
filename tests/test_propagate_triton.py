"""Triton gcn_spmm (scalevgae_triton::gcn_spmm) against the float64 reference.

Runs on a GPU, or on the CPU in Triton's interpreter (TRITON_INTERPRET=1 must be set before
triton is imported; scripts/test.sh exports it on GPU-less machines). Graphs stay small because
the interpreter executes every program in Python.
"""

from __future__ import annotations

import pytest
import torch
from triton_support import CUDA as _CUDA
from triton_support import DEV, TRITON_MARKS

from scalevgae.csr import coo_to_csr, csr_transpose, gcn_norm
from scalevgae.ops import gcn_propagate, reference

pytestmark = TRITON_MARKS
TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}


@pytest.fixture(scope="module")
def tp():
    from scalevgae.ops.triton import propagate

    return propagate


def random_csr(n_dst, n_src, nnz, gen, idx=torch.int64, hub=None, hub_deg=0, dup=0):
    """CSR [n_dst x n_src], entries kept when repeated (the first `dup` are stored twice);
    optional hub row `hub` with hub_deg more entries."""
    row = torch.randint(0, max(n_dst, 1), (nnz,), generator=gen)
    col = torch.randint(0, n_src, (nnz,), generator=gen)
    row, col = torch.cat([row, row[:dup]]), torch.cat([col, col[:dup]])
    if hub is not None:
        row = torch.cat([row, torch.full((hub_deg,), hub)])
        col = torch.cat([col, torch.randint(0, n_src, (hub_deg,), generator=gen)])
    rowptr, col = coo_to_csr(row, col, n_dst, n_src, dedup=False)
    return rowptr.to(idx).to(DEV), col.to(idx).to(DEV)


def scales(n, gen, dtype):
    return (torch.rand(n, generator=gen, dtype=torch.float64) + 0.5).to(dtype).to(DEV)


def truth(rowptr, col, x, rs, cs, self_loops, bias, relu):
    """The reference on float64 copies of every float input."""
    d = lambda t: None if t is None else t.double()
    return reference.gcn_spmm(rowptr, col, x.double(), d(rs), d(cs), self_loops, d(bias), relu)


def check(y, want, dtype):
    assert y.dtype == dtype and y.shape == want.shape
    tol = TOL[dtype]
    torch.testing.assert_close(y.double(), want, rtol=tol, atol=tol * max(1.0, (float(want.abs().max()) if want.numel() else 0.0)))


@pytest.mark.parametrize("idx", [torch.int32, torch.int64])
@pytest.mark.parametrize("F", [1, 5, 33])
@pytest.mark.parametrize("bias_relu", [False, True])
def test_random_graph_empty_rows_duplicates(tp, idx, F, bias_relu):
    """40 rows, 60 entries: many empty rows and isolated nodes, and repeated (row, col) pairs."""
    gen = torch.Generator().manual_seed(F * 7 + (idx == torch.int32) + 2 * bias_relu)
    n = 40
    rowptr, col = random_csr(n, n, 60, gen, idx, dup=20)
    deg = rowptr.diff()
    assert int((deg == 0).sum()) > 0 and col.numel() == 80
    x = torch.randn(n, F, generator=gen).to(DEV)
    s = gcn_norm(rowptr).to(DEV)
    bias = torch.randn(F, generator=gen).to(DEV) if bias_relu else None
    y = tp.gcn_spmm(rowptr, col, x, s, s, True, bias, bias_relu)
    check(y, truth(rowptr, col, x, s, s, True, bias, bias_relu), torch.float32)
    # no scales, no self loops
    y = tp.gcn_spmm(rowptr, col, x, None, None, False, None, False)
    check(y, truth(rowptr, col, x, None, None, False, None, False), torch.float32)


def test_hub_row(tp):
    """A hub row with 2*10^4 neighbours takes the split path (default tunables)."""
    gen = torch.Generator().manual_seed(1)
    n, F = 100, 3
    rowptr, col = random_csr(n, n, 300, gen, torch.int64, hub=17, hub_deg=20_000)
    assert int(rowptr.diff().max()) > tp.LONG_ROW_THRESHOLD
    x = torch.randn(n, F, generator=gen).to(DEV)
    s = gcn_norm(rowptr).to(DEV)
    bias = torch.randn(F, generator=gen).to(DEV)
    y = tp.gcn_spmm(rowptr, col, x, s, s, True, bias, True)
    check(y, truth(rowptr, col, x, s, s, True, bias, True), torch.float32)


@pytest.mark.parametrize("idx", [torch.int32, torch.int64])
def test_split_path_small_tunables(tp, idx):
    """Most rows long with tiny chunks; one row has more chunks than a BLOCK_C tile (loop)."""
    gen = torch.Generator().manual_seed(2)
    n, F = 30, 6
    rowptr, col = random_csr(n, n, 150, gen, idx, hub=3, hub_deg=300)
    x = torch.randn(n, F, generator=gen).to(DEV)
    rs, cs = scales(n, gen, torch.float32), scales(n, gen, torch.float32)
    bias = torch.randn(F, generator=gen).to(DEV)
    want = truth(rowptr, col, x, rs, cs, True, bias, True)
    for chunk, thresh in ((4, 6), (1, 0), (8, 8)):
        y = tp.gcn_spmm_launch(rowptr, col, x, rs, cs, True, bias, True, chunk=chunk, long_row_threshold=thresh)
        check(y, want, torch.float32)


def test_bipartite_and_more_rows_than_x(tp):
    """Bipartite block (n_dst < n_src) and the backward's shape (rows >= x.size(0): no self loop there)."""
    gen = torch.Generator().manual_seed(3)
    n_dst, n_src, F = 12, 50, 9
    rowptr, col = random_csr(n_dst, n_src, 80, gen)
    x = torch.randn(n_src, F, generator=gen).to(DEV)
    rs, cs = scales(n_dst, gen, torch.float32), scales(n_src, gen, torch.float32)
    y = tp.gcn_spmm(rowptr, col, x, rs, cs, True, None, False)
    check(y, truth(rowptr, col, x, rs, cs, True, None, False), torch.float32)
    t_rowptr, t_col = csr_transpose(rowptr, col, n_src)
    g = torch.randn(n_dst, F, generator=gen).to(DEV)
    for thresh in (None, 1):
        y = tp.gcn_spmm_launch(t_rowptr, t_col, g, cs, rs, True, None, False, chunk=2, long_row_threshold=thresh)
        check(y, truth(t_rowptr, t_col, g, cs, rs, True, None, False), torch.float32)


def test_non_contiguous_x(tp):
    gen = torch.Generator().manual_seed(4)
    n, F = 25, 7
    rowptr, col = random_csr(n, n, 70, gen)
    s = gcn_norm(rowptr).to(DEV)
    for x in (torch.randn(n, 2 * F, generator=gen).to(DEV)[:, ::2], torch.randn(F, n, generator=gen).to(DEV).t()):
        assert not x.is_contiguous()
        y = tp.gcn_spmm(rowptr, col, x, s, s, True, None, False)
        check(y, truth(rowptr, col, x, s, s, True, None, False), torch.float32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes(tp, dtype):
    """Half inputs accumulate in float32 (scales/bias float32); float64 accumulates in float64."""
    gen = torch.Generator().manual_seed(5)
    n, F = 30, 10
    rowptr, col = random_csr(n, n, 90, gen, hub=0, hub_deg=40)
    acc = reference.acc_dtype(dtype)
    x = torch.randn(n, F, generator=gen).to(dtype).to(DEV)
    s = gcn_norm(rowptr, acc).to(DEV)
    bias = torch.randn(F, generator=gen).to(acc).to(DEV)
    want = truth(rowptr, col, x, s, s, True, bias, True)
    check(tp.gcn_spmm(rowptr, col, x, s, s, True, bias, True), want, dtype)
    check(tp.gcn_spmm_launch(rowptr, col, x, s, s, True, bias, True, chunk=8, long_row_threshold=16), want, dtype)


def test_empty_shapes(tp):
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(5, 4, generator=gen).to(DEV)
    rp0 = torch.zeros(6, dtype=torch.int64, device=DEV)
    c0 = torch.zeros(0, dtype=torch.int64, device=DEV)
    check(tp.gcn_spmm(rp0, c0, x, None, None, True, None, False), truth(rp0, c0, x, None, None, True, None, False),
          torch.float32)
    assert tp.gcn_spmm(rp0[:1], c0, x, None, None, True, None, False).shape == (0, 4)
    assert tp.gcn_spmm(rp0, c0, x[:, :0], None, None, True, None, False).shape == (5, 0)


def test_public_function_backend_triton():
    gen = torch.Generator().manual_seed(7)
    n, F = 40, 6
    rowptr, col = random_csr(n, n, 100, gen, torch.int32)
    x = torch.randn(n, F, generator=gen).to(DEV)
    bias = torch.randn(F, generator=gen).to(DEV)
    y = gcn_propagate(rowptr, col, x, bias=bias, activation="relu", backend="triton")
    want = gcn_propagate(rowptr, col, x.double(), bias=bias.double(), activation="relu", backend="reference")
    check(y, want, torch.float32)


def _grad_case(gen, n_dst, n_src):
    rowptr, col = random_csr(n_dst, n_src, 3 * n_dst, gen, hub=2, hub_deg=12)
    rs, cs = scales(n_dst, gen, torch.float64), scales(n_src, gen, torch.float64)
    return rowptr, col, rs, cs


def test_gradcheck_float64(tp):
    """Backward through the transposed CSR (bipartite, non-symmetric), in float64."""
    gen = torch.Generator().manual_seed(8)
    rowptr, col, rs, cs = _grad_case(gen, n_dst=5, n_src=7)
    x = torch.randn(7, 2, generator=gen, dtype=torch.float64).to(DEV).requires_grad_()
    bias = torch.randn(2, generator=gen, dtype=torch.float64).to(DEV).requires_grad_()
    fn = lambda x, b: tp.gcn_spmm(rowptr, col, x, rs, cs, True, b, True)
    assert torch.autograd.gradcheck(fn, (x, bias), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("given_transpose", [False, True])
def test_backward_float32_vs_reference_float64(tp, given_transpose):
    gen = torch.Generator().manual_seed(9)
    n_dst, n_src, F = 20, 26, 5
    rowptr, col = random_csr(n_dst, n_src, 60, gen, torch.int32, hub=4, hub_deg=30)
    rs, cs = scales(n_dst, gen, torch.float32), scales(n_src, gen, torch.float32)
    x0 = torch.randn(n_src, F, generator=gen).to(DEV)
    b0 = torch.randn(F, generator=gen).to(DEV)
    gy = torch.randn(n_dst, F, generator=gen).to(DEV)
    t = csr_transpose(rowptr, col, n_src) if given_transpose else (None, None)
    x, b = x0.clone().requires_grad_(), b0.clone().requires_grad_()
    (tp.gcn_spmm(rowptr, col, x, rs, cs, True, b, True, *t) * gy).sum().backward()
    xr, br = x0.double().requires_grad_(), b0.double().requires_grad_()
    (reference.gcn_spmm(rowptr, col, xr, rs.double(), cs.double(), True, br, True) * gy.double()).sum().backward()
    check(x.grad, xr.grad, torch.float32)
    check(b.grad, br.grad, torch.float32)


def test_opcheck(tp):
    gen = torch.Generator().manual_seed(10)
    rowptr, col, rs, cs = _grad_case(gen, n_dst=6, n_src=8)
    rs, cs = rs.float(), cs.float()
    x = torch.randn(8, 3, generator=gen).to(DEV).requires_grad_()
    bias = torch.randn(3, generator=gen).to(DEV).requires_grad_()
    torch.library.opcheck(torch.ops.scalevgae_triton.gcn_spmm.default,
                          (rowptr, col, x, rs, cs, True, bias, True, None, None))


def test_errors(tp, monkeypatch):
    gen = torch.Generator().manual_seed(11)
    rowptr, col = random_csr(5, 5, 8, gen)
    x = torch.randn(5, 2, generator=gen).to(DEV)
    with pytest.raises(TypeError, match="dst_scale"):
        tp.gcn_spmm(rowptr, col, x, torch.ones(5, dtype=torch.float64, device=DEV), None, True, None, False)
    with pytest.raises(ValueError, match="src_scale"):
        tp.gcn_spmm(rowptr, col, x, None, torch.ones(4, device=DEV), True, None, False)
    with pytest.raises(TypeError, match="rowptr and col"):
        tp.gcn_spmm(rowptr.int(), col, x, None, None, True, None, False)
    with pytest.raises(TypeError, match="x must be"):
        tp.gcn_spmm(rowptr, col, x.int(), None, None, True, None, False)
    if not _CUDA:
        monkeypatch.setenv("TRITON_INTERPRET", "0")
        with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
            tp.gcn_spmm(rowptr, col, x, None, None, True, None, False)


def test_torch_compile_fullgraph(tp):
    """The op is opaque to the compiler (fake kernel for shapes); forward and backward trace in one graph."""
    gen = torch.Generator().manual_seed(12)
    n, F = 15, 4
    rowptr, col = random_csr(n, n, 40, gen)
    s = gcn_norm(rowptr).to(DEV)
    lin = torch.randn(F, F, generator=gen).to(DEV)

    def layer(x, b):
        return torch.ops.scalevgae_triton.gcn_spmm(rowptr, col, x @ lin, s, s, True, b, True, None, None).sum(0)

    x0 = torch.randn(n, F, generator=gen).to(DEV)
    b0 = torch.randn(F, generator=gen).to(DEV)
    x, b = x0.clone().requires_grad_(), b0.clone().requires_grad_()
    out = torch.compile(layer, fullgraph=True, backend="aot_eager")(x, b)
    out.sum().backward()
    xr, br = x0.double().requires_grad_(), b0.double().requires_grad_()
    ref = reference.gcn_spmm(rowptr, col, xr @ lin.double(), s.double(), s.double(), True, br, True).sum(0)
    ref.sum().backward()
    check(out, ref.detach(), torch.float32)
    check(x.grad, xr.grad, torch.float32)
    check(b.grad, br.grad, torch.float32)


@pytest.mark.parametrize("mode", ["symmetric", "transpose", "none"])
def test_public_function_backward(mode):
    """gcn_propagate(backend='triton') backward on a symmetric graph, with each way of getting A^T."""
    gen = torch.Generator().manual_seed(13)
    n, F = 30, 4
    row, col = torch.randint(0, n, (2, 60), generator=gen)
    rowptr, col = coo_to_csr(torch.cat([row, col]), torch.cat([col, row]), n, n)
    rowptr, col = rowptr.to(DEV), col.to(DEV)
    kw = {"symmetric": mode == "symmetric"}
    if mode == "transpose":
        kw["transpose"] = csr_transpose(rowptr, col, n)
    x0 = torch.randn(n, F, generator=gen).to(DEV)
    x, xr = x0.clone().requires_grad_(), x0.double().requires_grad_()
    gy = torch.randn(n, F, generator=gen).to(DEV)
    (gcn_propagate(rowptr, col, x, activation="relu", backend="triton", **kw) * gy).sum().backward()
    (gcn_propagate(rowptr, col, xr, activation="relu", backend="reference") * gy.double()).sum().backward()
    check(x.grad, xr.grad, torch.float32)


# ---------------------------------------------------------------- per-row self-loop weight
def truth_self(rowptr, col, x, rs, cs, ss, bias, relu):
    d = lambda t: None if t is None else t.double()
    return reference.gcn_spmm(rowptr, col, x.double(), d(rs), d(cs), True, d(bias), relu, d(ss))


@pytest.mark.parametrize("idx", [torch.int32, torch.int64])
@pytest.mark.parametrize("split", [False, True], ids=["rows", "split"])
def test_self_scale(tp, idx, split):
    """self_scale: row i's self loop is self_scale[i] * x[i], added after dst_scale; both the short-row
    and the split (long-row) epilogues; bipartite, as a sampled block."""
    gen = torch.Generator().manual_seed(14 + split + 2 * (idx == torch.int32))
    n_dst, n_src, F = 20, 45, 7
    rowptr, col = random_csr(n_dst, n_src, 90, gen, idx, hub=3, hub_deg=40)
    x = torch.randn(n_src, F, generator=gen).to(DEV)
    rs, cs = scales(n_dst, gen, torch.float32), scales(n_src, gen, torch.float32)
    ss = (torch.randn(n_dst, generator=gen)).to(DEV)
    bias = torch.randn(F, generator=gen).to(DEV)
    tun = dict(chunk=4, long_row_threshold=6) if split else {}
    for relu, b in ((False, None), (True, bias)):
        y = tp.gcn_spmm_launch(rowptr, col, x, rs, cs, True, b, relu, self_scale=ss, **tun)
        check(y, truth_self(rowptr, col, x, rs, cs, ss, b, relu), torch.float32)
    # the backward's shape: more rows than x, self_scale over x's rows
    t_rowptr, t_col = csr_transpose(rowptr, col, n_src)
    g = torch.randn(n_dst, F, generator=gen).to(DEV)
    y = tp.gcn_spmm_launch(t_rowptr, t_col, g, cs, rs, True, None, False, self_scale=ss, **tun)
    check(y, truth_self(t_rowptr, t_col, g, cs, rs, ss, None, False), torch.float32)


def test_self_scale_gradcheck_and_opcheck(tp):
    gen = torch.Generator().manual_seed(16)
    rowptr, col, rs, cs = _grad_case(gen, n_dst=5, n_src=7)
    ss = scales(5, gen, torch.float64) - 0.9
    x = torch.randn(7, 2, generator=gen, dtype=torch.float64).to(DEV).requires_grad_()
    bias = torch.randn(2, generator=gen, dtype=torch.float64).to(DEV).requires_grad_()
    fn = lambda x, b: tp.gcn_spmm(rowptr, col, x, rs, cs, True, b, True, None, None, ss)
    assert torch.autograd.gradcheck(fn, (x, bias), eps=1e-6, atol=1e-6)
    torch.library.opcheck(torch.ops.scalevgae_triton.gcn_spmm.default,
                          (rowptr, col, x.float().detach().requires_grad_(), rs.float(), cs.float(), True,
                           bias.float().detach().requires_grad_(), True, None, None, ss.float()))
    with pytest.raises(ValueError, match="self_scale"):
        tp.gcn_spmm(rowptr, col, x, rs, cs, True, None, False, None, None, ss[:-1])
    with pytest.raises(ValueError, match="self_loops"):
        tp.gcn_spmm(rowptr, col, x, rs, cs, False, None, False, None, None, ss)


def test_self_scale_public_function():
    gen = torch.Generator().manual_seed(17)
    n_dst, n_src, F = 14, 30, 5
    rowptr, col = random_csr(n_dst, n_src, 50, gen, torch.int32)
    kw = dict(src_scale=scales(n_src, gen, torch.float32), dst_scale=scales(n_dst, gen, torch.float32),
              self_scale=scales(n_dst, gen, torch.float32))
    x0 = torch.randn(n_src, F, generator=gen).to(DEV)
    gy = torch.randn(n_dst, F, generator=gen).to(DEV)
    x, xr = x0.clone().requires_grad_(), x0.double().requires_grad_()
    y = gcn_propagate(rowptr, col, x, activation="relu", backend="triton", **kw)
    yr = gcn_propagate(rowptr, col, xr, activation="relu", backend="reference", **{k: v.double() for k, v in kw.items()})
    check(y, yr.detach(), torch.float32)
    (y * gy).sum().backward()
    (yr * gy.double()).sum().backward()
    check(x.grad, xr.grad, torch.float32)
