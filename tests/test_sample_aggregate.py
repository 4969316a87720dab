"""sample_aggregate: the input layer's sample and aggregation in one pass, on every backend, against
the reference (sample_adj, then the weighted sum in torch) on fresh random inputs."""

from __future__ import annotations

import cuda_sim_support as sim
import pytest
import torch

from scalevgae import Graph, _ext
from scalevgae.ops import dispatch, reference
from scalevgae.ops.sample import sample_aggregate

needs_ext = pytest.mark.skipif(not _ext.loaded(), reason="compiled extension not built")
COMPILED = [pytest.param("cpu", marks=needs_ext), sim.param(),
            pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(),
                                                                            reason="no CUDA device")])]
# (fanout, replace): every neighbour, none, Floyd (k <= 32), ranks (k > 32), a hub's share, with replacement
CASES = [(-1, False), (0, False), (3, False), (40, False), (3000, False), (7, True), (0, True)]


@pytest.fixture(autouse=True)
def _strict_on_cuda_sim(request):
    yield from sim.strict_if_sim(request)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def hub_graph(seed: int) -> Graph:
    """A 5000-neighbour hub (node 0), random edges with duplicates, and isolated nodes (ids >= n - 50)."""
    g_ = gen(seed)
    n = 6000
    hub_nbrs = torch.randperm(n - 51, generator=g_)[:5000] + 1
    hub = torch.stack([torch.zeros_like(hub_nbrs), hub_nbrs])
    rnd = torch.randint(1, n - 50, (2, 12_000), generator=g_)
    return Graph.from_edge_index(torch.cat([hub, rnd, rnd[:, :500]], 1), num_nodes=n)


def the_nodes(n: int, seed: int) -> torch.Tensor:
    """The hub, isolated nodes, random nodes and one repeated node."""
    g_ = gen(seed)
    rnd = torch.randperm(n, generator=g_)[:400]
    return torch.cat([torch.tensor([0, n - 1, n - 2]), rnd, rnd[:1]])


def features(n: int, f: int, dtype: torch.dtype, seed: int, contiguous: bool) -> torch.Tensor:
    x = torch.randn(n, 2 * f, dtype=torch.float64, generator=gen(seed)).to(dtype)
    return x[:, ::2] if not contiguous else x[:, :f].contiguous()


def run(backend: str, g: Graph, nodes, x, fanout, replace, idx=torch.int64, seed=123, hop=1):
    dev = "cuda" if backend == "cuda" else "cpu"
    norm = g.gcn_norm(reference.acc_dtype(x.dtype))
    return sample_aggregate(g.rowptr.to(idx).to(dev), g.col.to(idx).to(dev), nodes.to(dev), x.to(dev),
                            norm.to(dev), fanout, replace, seed, hop, backend=backend).cpu()


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("idx", [torch.int64, torch.int32])
@pytest.mark.parametrize("f,contiguous", [(16, True), (64, False), (7, True), (130, False)])
def test_equals_reference_float64(backend, idx, f, contiguous):
    g = hub_graph(f)
    nodes = the_nodes(g.num_nodes, f + 1)
    x = features(g.num_nodes, f, torch.float64, f + 2, contiguous)
    for fanout, replace in CASES:
        got = run(backend, g, nodes, x, fanout, replace, idx)
        want = reference.sample_aggregate(g.rowptr, g.col, nodes, x, g.gcn_norm(torch.float64), fanout, replace,
                                          123, 1)
        assert got.shape == (nodes.numel(), f) and got.dtype == torch.float64
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12, msg=lambda m, c=(fanout, replace): f"{c}: {m}")


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_low_precision_against_float64_reference(backend, dtype):
    g = hub_graph(3)
    nodes = the_nodes(g.num_nodes, 4)
    x = features(g.num_nodes, 32, dtype, 5, True)
    got = run(backend, g, nodes, x, 5, False)
    want = reference.sample_aggregate(g.rowptr, g.col, nodes, x.double(), g.gcn_norm(torch.float64), 5, False,
                                      123, 1)
    assert got.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got.double(), want, atol=tol, rtol=tol)


@pytest.mark.parametrize("backend", COMPILED)
def test_the_sample_is_sample_adj(backend):
    """Each row sums exactly the neighbours sample_adj draws with the same (seed, hop): with one-hot
    features y[i, u] is u's number of draws times its weight."""
    g_ = gen(11)
    n = 300
    g = Graph.from_edge_index(torch.randint(0, n - 10, (2, 3000), generator=g_), num_nodes=n)
    nodes = torch.cat([torch.randperm(n, generator=g_)[:60], torch.tensor([n - 1])])
    x = torch.eye(n, dtype=torch.float64)
    c = g.gcn_norm(torch.float64)
    for fanout, replace in [(3, False), (40, False), (4, True)]:
        y = run(backend, g, nodes, x, fanout, replace, seed=77, hop=3)
        rp, col = reference.sample_adj(g.rowptr, g.col, nodes, fanout, replace, 77, 3)
        self_w, scale = reference.sample_aggregate_weights(g.rowptr, nodes, rp, c)
        counts = torch.zeros(nodes.numel(), n, dtype=torch.float64)
        counts.index_put_((reference.csr_rows(rp), col), torch.ones(col.numel(), dtype=torch.float64), accumulate=True)
        want = counts * c[None, :] * scale[:, None]
        want[torch.arange(nodes.numel()), nodes] += self_w
        torch.testing.assert_close(y, want, atol=1e-12, rtol=1e-12)
        if fanout < 40:  # rows are subsampled (with 40 every row keeps all ~20 neighbours)
            assert not torch.equal(run(backend, g, nodes, x, fanout, replace, seed=78, hop=3), y)  # another sample
            assert not torch.equal(run(backend, g, nodes, x, fanout, replace, seed=77, hop=2), y)


@pytest.mark.parametrize("backend", ["reference", *COMPILED])
def test_gradcheck(backend):
    g = hub_graph(21)
    nodes = torch.tensor([0, 5, 17, g.num_nodes - 1, 5])
    sub = torch.randperm(g.num_nodes, generator=gen(1))[:40]
    keep = torch.zeros(g.num_nodes, dtype=torch.bool)
    keep[sub] = True
    keep[nodes] = True
    x = torch.randn(g.num_nodes, 3, dtype=torch.float64, generator=gen(2)).requires_grad_()
    for fanout, replace in [(4, False), (3, True), (-1, False)]:
        fn = lambda x_, f=fanout, r=replace: run(backend, g, nodes, x_, f, r)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x,), fast_mode=True)
        # against the reference's autograd on every entry of x
        (got,) = torch.autograd.grad((fn(x) * torch.arange(3.0, dtype=torch.float64)).sum(), x)
        ref = reference.sample_aggregate(g.rowptr, g.col, nodes, x, g.gcn_norm(torch.float64), fanout, replace, 123, 1)
        (want,) = torch.autograd.grad((ref * torch.arange(3.0, dtype=torch.float64)).sum(), x)
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("backend", COMPILED)
def test_opcheck(backend):
    dev = "cuda" if backend == "cuda" else "cpu"
    g = hub_graph(31)
    nodes = the_nodes(g.num_nodes, 32)[:50].to(dev)
    op = dispatch.ops_of(backend).sample_aggregate.default
    for idx in (torch.int64, torch.int32):
        x = torch.randn(g.num_nodes, 4, dtype=torch.float64, device=dev, requires_grad=True)
        args = (g.rowptr.to(idx).to(dev), g.col.to(idx).to(dev), nodes, x, g.gcn_norm(torch.float64).to(dev),
                3, False, 7, 0)
        torch.library.opcheck(op, args)


@needs_ext
def test_threads_and_empty_inputs():
    g = hub_graph(41)
    nodes = the_nodes(g.num_nodes, 42).repeat(12)  # enough rows for both threads
    x = features(g.num_nodes, 16, torch.float32, 43, True)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = run("cpu", g, nodes, x, 5, False)
        torch.set_num_threads(2)
        b = run("cpu", g, nodes, x, 5, False)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(a, b)
    for k in (0, 1, 2, 5):  # fewer rows than the pipeline's depth
        got = run("cpu", g, nodes[:k], x, 5, False)
        assert got.shape == (k, 16) and torch.equal(got, a[:k])
    assert run("cpu", g, nodes, x[:, :0], 5, False).shape == (nodes.numel(), 0)


@needs_ext
def test_recycled_outputs_never_alias():
    """The CPU op hands out recycled output buffers (csrc/cpu/recycled_buffer.h): outputs alive at
    the same time never share memory, a freed buffer handed out again is fully rewritten (isolated
    nodes and rows without a sample included), and the same sizes reuse a freed buffer."""
    g = hub_graph(51)
    nodes = the_nodes(g.num_nodes, 52).repeat(20)  # ~8 000 rows: 2 MB of float64 at F = 32
    x = features(g.num_nodes, 32, torch.float64, 53, True)
    norm = g.gcn_norm(torch.float64)
    alive, freed, reused = [], [], 0
    for i in range(16):
        fanout, seed = CASES[i % len(CASES)][0], 200 + i
        y = run("cpu", g, nodes, x, fanout, False, seed=seed)
        want = reference.sample_aggregate(g.rowptr, g.col, nodes, x, norm, fanout, False, seed, 1)
        torch.testing.assert_close(y, want, atol=1e-12, rtol=1e-12)
        reused += y.data_ptr() in freed
        alive.append((y, want))
        freed = []
        if i % 3 == 2:  # free two of the live outputs: their buffers may come back
            freed = [alive[0][0].data_ptr(), alive[1][0].data_ptr()]
            del alive[:2]
    assert len({y.data_ptr() for y, _ in alive}) == len(alive)
    for y, want in alive:  # nothing handed out later wrote into a live output
        torch.testing.assert_close(y, want, atol=1e-12, rtol=1e-12)
    assert reused > 0


@needs_ext
def test_argument_errors():
    g = hub_graph(51)
    nodes = torch.tensor([1, 2])
    x = torch.randn(g.num_nodes, 4)
    op = torch.ops.scalevgae.sample_aggregate
    norm = g.gcn_norm(torch.float32)
    with pytest.raises(TypeError, match="norm must be Float"):
        op(g.rowptr, g.col, nodes, x, norm.double(), 3, False, 0, 0)
    with pytest.raises(ValueError, match=r"x must have shape \[6000, F\]"):
        op(g.rowptr, g.col, nodes, x[:-1], norm, 3, False, 0, 0)
    with pytest.raises(ValueError, match="norm must have shape"):
        op(g.rowptr, g.col, nodes, x, norm[:-1], 3, False, 0, 0)
    with pytest.raises(TypeError, match="nodes must be int64"):
        op(g.rowptr, g.col, nodes.int(), x, norm, 3, False, 0, 0)
    with pytest.raises(ValueError, match="fanout must be >= -1"):
        op(g.rowptr, g.col, nodes, x, norm, -2, False, 0, 0)
    with pytest.raises(TypeError, match="x must be a floating-point"):
        op(g.rowptr, g.col, nodes, x.long(), norm, 3, False, 0, 0)
