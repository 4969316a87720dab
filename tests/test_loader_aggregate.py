"""LinkLoader(aggregate_input=True): the first block's aggregation done in the loader gives the
same encoder outputs and gradients as the gathered features aggregated by the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scalevgae.data import planted_partition, split_edges
from scalevgae.graph import Graph
from scalevgae.loader import LinkLoader
from scalevgae.models import build_model
from scalevgae.sampling import sample_neighbors
from scalevgae.sampling.aggregated import (
    AggregatedBlock,
    aggregate_features,
    input_table,
    sample_aggregated,
    sample_precomputed,
)
from scalevgae.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def data():
    d = planted_partition(600, 10, feature_dim=5, seed=3)
    return d, split_edges(d.graph, seed=2)


def pair(data, x=None, **kw):
    d, sp = data
    args = dict(batch_size=200, fanouts=[4, 3], neg_ratio=1, num_workers=0)
    args.update(kw)
    x = d.x if x is None else x
    mk = lambda agg: LinkLoader(sp.train_graph, x, sp.train_pos, generator=torch.Generator().manual_seed(7),  # noqa: E731
                                aggregate_input=agg, **args)
    return mk(False), mk(True)


@pytest.mark.parametrize("fanouts", [[4, 3], [-1, 2], [0, 0], [1, -1]])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_aggregate_features_matches_block_propagate(data, fanouts, dtype):
    d, sp = data
    g = sp.train_graph
    x = torch.randn(g.num_nodes, 7, dtype=dtype)
    seeds = torch.randperm(g.num_nodes, generator=torch.Generator().manual_seed(1))[:50]
    sub = sample_neighbors(g, seeds, fanouts, generator=torch.Generator().manual_seed(2))
    b0 = sub.blocks[0]
    want = b0.propagate(x[sub.n_id].double()).to(dtype)  # float64 reference of the same block
    got = aggregate_features(b0, sub.n_id, x, g)
    assert got.shape == (b0.num_dst, 7) and got.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got, want, atol=tol, rtol=tol)


@pytest.mark.parametrize("exclude_batch_edges", [False, True])  # sample_aggregated / aggregate_features
@pytest.mark.parametrize("model", ["vgae", "gae"])
@pytest.mark.parametrize("fanouts", [[4, 3], [3, -1]])
def test_loader_batches_give_same_outputs_and_grads(data, exclude_batch_edges, model, fanouts):
    d, _ = data
    plain, agg = pair(data, exclude_batch_edges=exclude_batch_edges, fanouts=fanouts)
    torch.manual_seed(0)
    net = build_model(model, d.x.shape[1], 8, 4, 0.0).double()
    for a, b in zip(plain, agg):
        n_in = a.blocks[0].num_dst
        assert isinstance(b.blocks[0], AggregatedBlock) and b.blocks[0].num_dst == n_in
        assert b.x.shape == (n_in, d.x.shape[1])
        assert torch.equal(b.n_id, a.n_id[:n_in])  # the model's input nodes
        for name in ("src", "dst", "label"):
            assert torch.equal(getattr(a, name), getattr(b, name))
        for p, q in zip(a.blocks[1:], b.blocks[1:]):
            assert torch.equal(p.rowptr, q.rowptr) and torch.equal(p.col, q.col)
            assert torch.equal(p.dst_scale, q.dst_scale) and torch.equal(p.src_scale, q.src_scale)
        torch.testing.assert_close(b.x, a.blocks[0].propagate(a.x), atol=1e-5, rtol=1e-5)
        outs, grads = [], []
        for batch in (a, b):
            net.zero_grad()
            enc = net.encoder(batch.x.double(), batch.blocks)
            enc = enc if isinstance(enc, tuple) else (enc,)
            sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() for o in enc).backward()
            outs.append(torch.cat(enc, 1))
            grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
        torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=1e-5)


def test_numpy_features_keep_the_gather(data, tmp_path):
    d, _ = data
    mm = np.memmap(tmp_path / "x.f32", dtype=np.float32, mode="w+", shape=tuple(d.x.shape))
    mm[:] = d.x.numpy()
    plain, agg = pair(data, x=mm)
    assert not agg.aggregate_input
    a, b = next(iter(plain)), next(iter(agg))
    assert torch.equal(a.x, b.x) and not isinstance(b.blocks[0], AggregatedBlock)


def test_aggregated_block_bias_activation_and_errors():
    blk = AggregatedBlock(3)
    h = torch.tensor([[1.0, -2.0], [-3.0, 4.0], [5.0, -6.0], [9.0, 9.0]])
    bias = torch.tensor([1.0, 1.0])
    torch.testing.assert_close(blk.propagate(h, bias=bias, activation="relu"), torch.relu(h[:3] + bias))
    assert blk.num_src == 3 and blk.num_edges == 0 and blk.to("cpu") is blk
    with pytest.raises(ValueError, match="num_dst"):
        blk.propagate(h[:2])
    with pytest.raises(ValueError, match="activation"):
        blk.propagate(h, activation="tanh")


@pytest.mark.parametrize("dropout,expect", [(0.0, True), (0.3, False)])
def test_trainer_aggregates_only_without_input_dropout(data, dropout, expect):
    d, sp = data
    cfg = TrainConfig(mode="minibatch", epochs=1, steps=2, batch_size=256, dropout=dropout, device="cpu",
                      progress=False, patience=0)
    tr = Trainer(cfg, d.x, sp)
    assert tr.loader.aggregate_input is expect
    calls: list = []
    res = tr.fit(on_step=calls.append)
    assert res.steps == 2 and np.isfinite(res.history[-1]["loss"])
    assert calls == [1, 2]  # the hook sees every optimizer step


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("fanouts", [[5], [4, 3], [2, 3, 2], [-1, 3]])
@pytest.mark.parametrize("replace", [False, True])
def test_sample_aggregated_is_the_same_sample(data, backend, fanouts, replace):
    _, sp = data
    g = sp.train_graph
    x = torch.randn(g.num_nodes, 4, dtype=torch.float64)
    seeds = torch.randperm(g.num_nodes, generator=torch.Generator().manual_seed(5))[:40]
    full = sample_neighbors(g, seeds, fanouts, replace=replace, generator=torch.Generator().manual_seed(9),
                            backend=backend)
    sub, y = sample_aggregated(g, seeds, fanouts, x, replace=replace, generator=torch.Generator().manual_seed(9),
                               backend=backend)
    n_in = full.blocks[0].num_dst
    assert torch.equal(sub.n_id, full.n_id[:n_in]) and isinstance(sub.blocks[0], AggregatedBlock)
    assert sub.blocks[0].num_dst == n_in and len(sub.blocks) == len(fanouts)
    for p, q in zip(full.blocks[1:], sub.blocks[1:]):
        assert torch.equal(p.rowptr, q.rowptr) and torch.equal(p.col, q.col)
    torch.testing.assert_close(y, full.blocks[0].propagate(x[full.n_id]), atol=1e-12, rtol=1e-12)
    with pytest.raises(ValueError, match="at least one fanout"):
        sample_aggregated(g, seeds, [], x)


def _dense_gcn(g: Graph, x: torch.Tensor) -> torch.Tensor:
    """``D̃^-1/2 (A + I) D̃^-1/2 x`` in float64 from a dense adjacency (small graphs only)."""
    n = g.num_nodes
    a = torch.zeros(n, n, dtype=torch.float64)
    rows = torch.repeat_interleave(torch.arange(n), g.rowptr.diff().long())
    a[rows, g.col.long()] = 1.0
    a += torch.eye(n, dtype=torch.float64)
    c = a.sum(1).rsqrt()
    return (c[:, None] * a * c[None, :]) @ x.double()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
def test_input_table_is_the_exact_gcn_aggregation(dtype, index_dtype):
    # a hub, isolated nodes (6, 7) and a pendant node; both directions stored
    e = torch.tensor([[0, 0, 0, 0, 1, 2, 4], [1, 2, 3, 4, 2, 5, 5]])
    g = Graph.from_edge_index(e, 8, undirected=True)
    g = Graph(g.rowptr.to(index_dtype), g.col.to(index_dtype), 8)
    x = torch.randn(8, 16, dtype=torch.float64)[:, ::2]  # non-contiguous
    got = input_table(g, x.to(dtype))
    assert got.shape == (8, 8) and got.dtype == dtype
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 3e-2}[dtype]
    torch.testing.assert_close(got.double(), _dense_gcn(g, x.to(dtype)), atol=tol, rtol=tol)
    with pytest.raises(ValueError, match="floating"):
        input_table(g, torch.ones(8, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="floating"):
        input_table(g, torch.ones(7, 2))


@pytest.mark.parametrize("fanouts", [[-1], [4, -1], [2, 3, -1]])
@pytest.mark.parametrize("replace", [False, True])
def test_sample_precomputed_is_sample_aggregated(data, fanouts, replace):
    _, sp = data
    g = sp.train_graph
    x = torch.randn(g.num_nodes, 4, dtype=torch.float64)
    table = input_table(g, x)
    seeds = torch.randperm(g.num_nodes, generator=torch.Generator().manual_seed(5))[:40]
    want, y = sample_aggregated(g, seeds, fanouts, x, replace=replace, generator=torch.Generator().manual_seed(9))
    got, t = sample_precomputed(g, seeds, fanouts, table, replace=replace, generator=torch.Generator().manual_seed(9))
    assert torch.equal(got.n_id, want.n_id) and isinstance(got.blocks[0], AggregatedBlock)
    assert got.blocks[0].num_dst == want.blocks[0].num_dst and len(got.blocks) == len(fanouts)
    for p, q in zip(want.blocks[1:], got.blocks[1:]):
        for name in ("rowptr", "col", "src_scale", "dst_scale", "self_scale"):
            assert torch.equal(getattr(p, name), getattr(q, name))
    torch.testing.assert_close(t, y, atol=1e-12, rtol=1e-12)
    with pytest.raises(ValueError, match="fanout -1"):
        sample_precomputed(g, seeds, [4, 3], table)
    with pytest.raises(ValueError, match="table"):
        sample_precomputed(g, seeds, [4, -1], table[:-1])


@pytest.mark.parametrize("fanouts,exclude_batch_edges,has_table", [
    ([3, -1], False, True), ([3, 4], False, False), ([3, -1], True, False)])
def test_loader_precomputes_only_an_exact_input_hop(data, fanouts, exclude_batch_edges, has_table):
    d, _ = data
    _, agg = pair(data, fanouts=fanouts, exclude_batch_edges=exclude_batch_edges)
    assert (agg.sampler.table is not None) is has_table
    if has_table:
        torch.testing.assert_close(agg.sampler.table, input_table(agg.graph, d.x))
        b = next(iter(agg))
        torch.testing.assert_close(b.x, agg.sampler.table[b.n_id])


def test_trainer_with_an_exact_input_hop_uses_one_table():
    # Sparse graph: subset validation; the loader's table also serves the validation subset.
    d = planted_partition(3000, avg_degree=3, feature_dim=8, seed=1)
    sp = split_edges(d.graph, 0.1, 0.1, seed=0)
    cfg = TrainConfig(mode="minibatch", fanouts=(4, -1), epochs=1, steps=3, batch_size=128, eval_pairs=20,
                      device="cpu", progress=False, patience=0)
    tr = Trainer(cfg, d.x, sp)
    table = tr.loader.sampler.table
    assert table is not None and tr.val_set.subset
    assert torch.equal(tr.val_set.x, table[tr.val_set.n_id].float())  # read from the table, bit for bit
    res = tr.fit()
    assert res.steps == 3 and np.isfinite(res.history[-1]["loss"])
