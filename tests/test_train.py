import json
import os

import pytest
import torch
from fake_sampling import FakeLinkLoader

from scalevgae.data import planted_partition, split_edges
from scalevgae.sampling.aggregated import AggregatedBlock
from scalevgae.train import TrainConfig, Trainer, all_pairs_loss, kipf_weights, sampled_loss, self_loop_weight


@pytest.fixture(scope="module")
def data():
    d = planted_partition(80, avg_degree=6, feature_dim=16, seed=3)
    return d, split_edges(d.graph, 0.1, 0.1, seed=0)


def test_all_pairs_loss_is_kipf(data):
    d, sp = data
    g = sp.train_graph
    z = torch.randn(g.num_nodes, 4, dtype=torch.float64)
    n, e = g.num_nodes, g.num_edges
    a = torch.eye(n, dtype=torch.float64)
    ei = g.edge_index
    a[ei[0], ei[1]] = 1
    pw = (n * n - e) / e
    norm = n * n / (2 * (n * n - e))
    logits = z @ z.t()
    ref = norm * torch.nn.functional.binary_cross_entropy_with_logits(logits, a, pos_weight=torch.tensor(pw))
    assert kipf_weights(n, e) == pytest.approx((pw, norm))
    torch.testing.assert_close(all_pairs_loss(z, g).double(), ref, rtol=1e-5, atol=1e-6)
    # The sampled form with every non-edge as a negative is the same loss up to the
    # (N^2 - E - N) / (N^2 - E) count of the negatives' mean.
    neg = (a == 0).nonzero().t()
    src, dst = torch.cat([ei[0], neg[0]]), torch.cat([ei[1], neg[1]])
    label = torch.cat([torch.ones(e), torch.zeros(neg.size(1))])
    s = sampled_loss(z, src, dst, label, self_loop_weight(g))
    neg_mean = torch.nn.functional.softplus(logits[neg[0], neg[1]]).mean()
    expect = s.double() - 0.5 * neg_mean * n / (n * n - e)
    torch.testing.assert_close(all_pairs_loss(z, g).double(), expect, rtol=1e-5, atol=1e-6)


def run(data, tmp_path=None, **kw):
    d, sp = data
    kw.setdefault("progress", False)
    tr = Trainer(TrainConfig(**kw), d.x, sp, out_dir=None if tmp_path is None else str(tmp_path),
                 loader_factory=FakeLinkLoader)
    return tr, tr.fit()


@pytest.mark.parametrize("model", ["vgae", "gae"])
def test_full_mode_learns_and_restores_best(data, tmp_path, model):
    tr, res = run(data, tmp_path, model=model, epochs=40, seed=1, patience=0)
    assert res.epochs_run == 40 and res.steps == 40
    assert res.best_val_auc > 0.75
    auc, ap = tr.evaluate(tr.split.val_pos, tr.split.val_neg)
    assert auc == pytest.approx(res.best_val_auc) and ap == pytest.approx(res.best_val_ap)
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == list(range(1, 41))
    assert {"loss", "val_auc", "val_ap", "pairs_per_s"} <= set(rows[0])
    assert max(r["val_auc"] for r in rows) == pytest.approx(res.best_val_auc)  # full mode monitors AUC


@pytest.mark.parametrize("monitor", ["auc+ap", "ap"])
def test_monitor_selects_the_restored_epoch(data, monitor):
    tr, res = run(data, epochs=40, seed=1, patience=0, monitor=monitor)
    rows = [r for r in res.history if "val_auc" in r]
    score = (lambda r: r["val_auc"] + r["val_ap"]) if monitor == "auc+ap" else (lambda r: r["val_ap"])
    assert max(rows, key=score)["epoch"] == res.best_epoch
    assert tr.evaluate(tr.split.val_pos, tr.split.val_neg) == (res.best_val_auc, res.best_val_ap)
    # The rule ran on the monitored score (on this small graph all three pick the same epoch).
    want = (res.best_val_auc + res.best_val_ap) / 2 if monitor == "auc+ap" else res.best_val_ap
    assert tr.state["best_val_score"] == pytest.approx(want) and want != pytest.approx(res.best_val_auc)


def test_early_stopping(data):
    tr, res = run(data, epochs=200, lr=0.05, patience=5, min_delta=0.0, seed=0)
    assert res.stopped_early and res.epochs_run < 200
    assert res.epochs_run - res.best_epoch == 5


def test_sampled_full_mode_sgd_and_steps(data):
    tr, res = run(data, epochs=30, full_max_nodes=10, neg_ratio=3, optimizer="sgd", lr=0.05, patience=0)
    assert not tr.all_pairs and res.steps == 30 and res.best_val_auc > 0.6
    tr, res = run(data, epochs=100, steps=7)
    assert res.steps == 7 and res.epochs_run == 7


def test_amp_bf16_cpu(data):
    tr, res = run(data, epochs=5, amp="bf16")
    assert res.best_val_auc > 0.5 and all(torch.isfinite(p).all() for p in tr.model.parameters())


def test_config_errors(data):
    for bad in (dict(model="x"), dict(mode="x"), dict(optimizer="x"), dict(hidden=0), dict(epochs=0),
                dict(dropout=1.0), dict(mode="minibatch", fanouts=(5,)), dict(amp="fp8"), dict(monitor="f1")):
        with pytest.raises(ValueError):
            TrainConfig(**bad).resolved()
    d, sp = data
    with pytest.raises(ValueError, match="rows"):
        Trainer(TrainConfig(), d.x[:5], sp)
    assert TrainConfig(mode="minibatch").resolved().lr == 0.01


def _same_weights(a, b):
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka


@pytest.mark.parametrize("mode,kill", [("full", 7), ("full", 10), ("minibatch", 5), ("minibatch", 9)])
def test_resume_equals_uninterrupted(data, tmp_path, mode, kill):
    kw = dict(model="vgae", mode=mode, epochs=6 if mode == "minibatch" else 12, batch_size=40,
              checkpoint_every=2 if mode == "minibatch" else 5, seed=4, dropout=0.1, lr=0.01,
              eval_steps=3)  # minibatch: validations inside epochs too
    ref, res_ref = run(data, tmp_path / "a", **kw)
    d, sp = data
    out = str(tmp_path / "b")
    cfg = TrainConfig(progress=False, **kw)
    assert Trainer(cfg, d.x, sp, out_dir=out, loader_factory=FakeLinkLoader).fit(max_steps_this_call=kill) is None
    assert os.path.isfile(os.path.join(out, "checkpoint.pt"))
    tr = Trainer(cfg, d.x, sp, out_dir=out, loader_factory=FakeLinkLoader)
    res = tr.fit(resume=True)
    _same_weights(ref, tr)
    assert res.steps == res_ref.steps and res.best_epoch == res_ref.best_epoch
    assert res.best_val_auc == res_ref.best_val_auc
    rows_a = [json.loads(line) for line in open(tmp_path / "a" / "metrics.jsonl")]
    rows_b = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [(r["epoch"], r["loss"], r.get("val_auc")) for r in rows_a] == \
        [(r["epoch"], r["loss"], r.get("val_auc")) for r in rows_b]
    assert sum("val_auc" in r for r in rows_a) >= 4


def test_minibatch_mode_with_loader(data):
    tr, res = run(data, mode="minibatch", epochs=15, batch_size=32, lr=0.01, patience=0)
    assert tr.steps_per_epoch == len(tr.loader) > 1
    assert res.steps == 15 * tr.steps_per_epoch and res.best_val_auc > 0.7


@pytest.mark.slow
@pytest.mark.parametrize("model,bar_auc,bar_ap", [("vgae", 0.914, 0.926), ("gae", 0.910, 0.920)])
def test_cora_quality_one_seed(model, bar_auc, bar_ap):
    from scalevgae.data.planetoid import find_planetoid_root, load_planetoid

    root = find_planetoid_root()
    if root is None or not os.path.isfile(os.path.join(root, "ind.cora.x")):
        pytest.skip("Cora files not found (../shared/datasets/planetoid or $SCALEVGAE_PLANETOID_ROOT)")
    d = load_planetoid(root, "cora")
    sp = split_edges(d.graph, 0.05, 0.10, seed=0)
    tr = Trainer(TrainConfig(model=model, seed=0, progress=False), d.x, sp)
    tr.fit()
    auc, ap = tr.evaluate(sp.test_pos, sp.test_neg)
    assert auc >= bar_auc - 0.015 and ap >= bar_ap - 0.015, (auc, ap)


@pytest.mark.slow
def test_cora_quality_minibatch_one_seed():
    from scalevgae.data.planetoid import find_planetoid_root, load_planetoid
    root = find_planetoid_root()
    if root is None or not os.path.isfile(os.path.join(root, "ind.cora.x")):
        pytest.skip("Cora files not found (../shared/datasets/planetoid or $SCALEVGAE_PLANETOID_ROOT)")
    d = load_planetoid(root, "cora")
    sp = split_edges(d.graph, 0.05, 0.10, seed=0)
    tr = Trainer(TrainConfig(model="vgae", mode="minibatch", seed=0, progress=False), d.x, sp)
    tr.fit()
    auc, ap = tr.evaluate(sp.test_pos, sp.test_neg)
    assert auc >= 0.914 - 0.015 and ap >= 0.926 - 0.015, (auc, ap)


def test_all_pairs_loss_drops_heldout_terms(data):
    # The held-out correction equals the dense loss with the held-out pairs' terms removed.
    d, sp = data
    g = sp.train_graph
    n, e = g.num_nodes, g.num_edges
    z = torch.randn(n, 4, dtype=torch.float64)
    held = torch.cat([sp.val_pos, sp.test_pos], 1)
    held = torch.cat([held, held.flip(0)], 1)
    a = torch.eye(n, dtype=torch.float64)
    ei = g.edge_index
    a[ei[0], ei[1]] = 1
    pw, norm = kipf_weights(n, e)
    terms = torch.nn.functional.binary_cross_entropy_with_logits(z @ z.t(), a, pos_weight=torch.tensor(pw),
                                                                 reduction="none")
    terms[held[0], held[1]] = 0
    ref = norm * terms.sum() / (n * n)
    got = all_pairs_loss(z, g, held)
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, all_pairs_loss(z, g))  # the correction is not a no-op


@pytest.mark.parametrize("exclude", [True, False])
def test_minibatch_negatives_never_heldout(exclude):
    # A dense small graph: held-out edges are a large share of the non-edges of the training
    # graph, so without the exclusion some negatives would hit them.
    from scalevgae.data import planted_partition as pp

    d = pp(40, avg_degree=20, feature_dim=4, seed=0)
    sp = split_edges(d.graph, 0.15, 0.15, seed=0)
    cfg = TrainConfig(mode="minibatch", batch_size=64, neg_ratio=5, epochs=1, progress=False,
                      exclude_heldout=exclude)
    tr = Trainer(cfg, d.x, sp)
    held = torch.cat([sp.val_pos, sp.test_pos], 1)
    held_keys = set((held[0] * 40 + held[1]).tolist()) | set((held[1] * 40 + held[0]).tolist())
    hits = 0
    for _ in range(3):
        for b in tr.loader:
            nid = b.n_id
            neg = b.label == 0
            s, t = nid[b.src[neg]], nid[b.dst[neg]]
            hits += sum(k in held_keys for k in (s * 40 + t).tolist())
    assert (hits == 0) if exclude else (hits > 0)


def test_full_sampled_negatives_never_heldout(monkeypatch):
    from scalevgae.data import planted_partition as pp
    from scalevgae.sampling.membership import has_pairs
    from scalevgae.train import trainer as trainer_mod

    d = pp(40, avg_degree=20, feature_dim=4, seed=0)
    sp = split_edges(d.graph, 0.15, 0.15, seed=0)
    drawn = []

    def spy(*a, **k):
        out = trainer_mod_negative_pairs(*a, **k)
        drawn.append(out)
        return out

    trainer_mod_negative_pairs = trainer_mod.negative_pairs
    monkeypatch.setattr(trainer_mod, "negative_pairs", spy)
    tr = Trainer(TrainConfig(mode="full", full_max_nodes=10, neg_ratio=50, epochs=3, progress=False), d.x, sp)
    assert not tr.all_pairs
    tr.fit()
    assert drawn and tr.heldout_graph is not None
    neg = torch.cat(drawn, 1)
    assert neg.size(1) >= 3 * 50 * sp.train_pos.size(1)
    assert not bool(has_pairs(tr.heldout_graph, neg[0], neg[1]).any())


def _dense_kipf_vgae(x, sp, seed, epochs, exclude_heldout, ema=0.0):
    """tkipf/gae's VGAE written densely (N x N), the ground truth for full mode on tiny graphs
    (with the log-std head starting at zero, our default)."""
    f = torch.nn.functional
    g = sp.train_graph
    n = g.num_nodes
    ei = g.edge_index
    a = torch.zeros(n, n)
    a[ei[0], ei[1]] = 1
    at = a + torch.eye(n)
    d = at.sum(1).pow(-0.5)
    an = d[:, None] * at * d[None]
    torch.manual_seed(seed)

    def glorot(i, o):
        r = (6 / (i + o)) ** 0.5
        return torch.nn.Parameter(torch.rand(i, o) * 2 * r - r)

    w0, wm, ws = glorot(x.size(1), 32), glorot(32, 16), glorot(32, 16)
    with torch.no_grad():
        ws.zero_()  # our default log-std head init (VGAEEncoder logstd_init="zeros"); draws unchanged
    avg = [w.detach().clone() for w in (w0, wm, ws)]
    opt = torch.optim.Adam([w0, wm, ws], lr=0.01)
    e = a.sum()
    pw, norm = (n * n - e) / e, n * n / (2 * (n * n - e))
    keep = torch.ones(n, n)
    if exclude_heldout:
        held = torch.cat([sp.val_pos, sp.test_pos], 1)
        keep[held[0], held[1]] = keep[held[1], held[0]] = 0
    for _ in range(epochs):
        h = f.relu(an @ (x @ w0))
        mu, ls = an @ (h @ wm), an @ (h @ ws)
        z = mu + torch.randn_like(mu) * ls.exp()
        terms = f.binary_cross_entropy_with_logits(z @ z.t(), at, pos_weight=pw, reduction="none")
        rec = norm * (terms * keep).sum() / (n * n)
        kl = -(0.5 / n) * (1 + 2 * ls - mu**2 - ls.exp() ** 2).sum(1).mean()
        opt.zero_grad()
        (rec + kl).backward()
        opt.step()
        with torch.no_grad():
            for a_, w in zip(avg, (w0, wm, ws)):
                a_.mul_(ema).add_(w, alpha=1 - ema)
    w0, wm = avg[0], avg[1]
    with torch.no_grad():
        return an @ (f.relu(an @ (x @ w0)) @ wm)


@pytest.mark.parametrize("exclude,ema", [(False, 0.0), (True, 0.0), (True, 0.8)])
def test_full_mode_is_tkipf_vgae(exclude, ema):
    # Same seed, same RNG draws: the trainer's full mode follows the dense reference recipe.
    d = planted_partition(60, avg_degree=6, feature_dim=12, seed=5)
    sp = split_edges(d.graph, 0.1, 0.1, seed=0)
    x = torch.as_tensor(d.x).float()
    tr = Trainer(TrainConfig(model="vgae", mode="full", seed=3, epochs=8, patience=0, progress=False,
                             exclude_heldout=exclude, ema_decay=ema), x, sp)
    res = tr.fit()  # restores the best-validation epoch's (averaged) weights: compare with that epoch
    ref = _dense_kipf_vgae(x, sp, 3, res.best_epoch, exclude, ema)
    torch.testing.assert_close(tr.embed(), ref, rtol=1e-4, atol=1e-5)
    other = _dense_kipf_vgae(x, sp, 3, res.best_epoch, not exclude, ema)
    assert not torch.allclose(tr.embed(), other, rtol=1e-4, atol=1e-5)  # the held-out terms matter


def test_ema_defaults_and_checks():
    assert TrainConfig(mode="full").resolved().ema_decay == 0.95
    assert TrainConfig(mode="minibatch").resolved().ema_decay == 0.99
    assert (TrainConfig(mode="full").resolved().monitor, TrainConfig(mode="minibatch").resolved().monitor) == \
        ("auc", "auc+ap")
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0).resolved()
    assert (TrainConfig(mode="full").resolved().patience, TrainConfig(mode="minibatch").resolved().patience) == (10, 3)
    assert TrainConfig(mode="minibatch", patience=0).resolved().patience == 0  # 0: never stop early
    with pytest.raises(ValueError, match="patience"):
        TrainConfig(patience=-1).resolved()


def test_plateau_min_delta_stops_on_creep(data):
    # A rise smaller than min_delta does not restart the plateau clock: stopping comes earlier
    # than with min_delta=0, and the restored weights are still the best-validation ones.
    kw = dict(epochs=200, lr=0.01, patience=5, seed=0)
    _, strict = run(data, min_delta=0.0, **kw)
    tr, loose = run(data, min_delta=0.05, **kw)
    assert loose.stopped_early and loose.epochs_run < strict.epochs_run
    rows = [r for r in loose.history if "val_auc" in r]
    ref, bad = -1.0, 0
    for r in rows:  # the rule, replayed from the log
        bad = 0 if r["val_auc"] - 0.05 > ref else bad + 1
        ref = r["val_auc"] if bad == 0 else ref
    assert bad == 5 and len(rows) == loose.epochs_run
    assert tr.evaluate(tr.split.val_pos, tr.split.val_neg) == (loose.best_val_auc, loose.best_val_ap)
    assert max(r["val_auc"] for r in rows) == loose.best_val_auc


def test_time_budget_ends_cleanly_and_resume_honours_it(data, tmp_path):
    d, sp = data
    cfg = TrainConfig(epochs=100000, patience=0, time_budget=1.0, progress=False)
    tr = Trainer(cfg, d.x, sp, out_dir=str(tmp_path))
    res = tr.fit()
    assert res.out_of_time and not res.stopped_early and 0 < res.epochs_run < 100000
    last = res.history[-1]
    assert "val_auc" in last and 1.0 <= last["elapsed_s"] < 30  # evaluated at the end
    assert os.path.isfile(tmp_path / "checkpoint.pt")  # and checkpointed
    # Resuming with the same budget does nothing more; a larger budget trains on.
    again = Trainer(cfg, d.x, sp, out_dir=str(tmp_path)).fit(resume=True)
    assert again.steps == res.steps and again.out_of_time
    more = Trainer(TrainConfig(epochs=100000, patience=0, time_budget=2.0, progress=False), d.x, sp,
                   out_dir=str(tmp_path)).fit(resume=True)
    assert more.steps > res.steps and more.out_of_time and more.history[-1]["elapsed_s"] >= 2.0


def test_resume_honours_plateau_state(data, tmp_path):
    # Killed in the middle of a plateau: the resumed run stops at the same evaluation.
    kw = dict(epochs=300, lr=0.05, patience=8, min_delta=0.002, seed=2, checkpoint_every=1)
    _, ref = run(data, tmp_path / "a", **kw)
    assert ref.stopped_early
    d, sp = data
    cfg = TrainConfig(progress=False, **kw)
    out = str(tmp_path / "b")
    kill = ref.steps - 3  # inside the final patience window
    assert Trainer(cfg, d.x, sp, out_dir=out).fit(max_steps_this_call=kill) is None
    res = Trainer(cfg, d.x, sp, out_dir=out).fit(resume=True)
    assert res.stopped_early and res.steps == ref.steps and res.best_epoch == ref.best_epoch


def test_mode_auto_choice(data):
    d, sp = data
    tr = Trainer(TrainConfig(progress=False, epochs=1), d.x, sp)
    assert tr.cfg.mode == "full" and tr.all_pairs and "auto" in tr.mode_reason
    tr = Trainer(TrainConfig(progress=False, epochs=1, auto_full_nodes=50), d.x, sp, loader_factory=FakeLinkLoader)
    assert tr.cfg.mode == "minibatch" and "80 nodes > auto_full_nodes=50" in tr.mode_reason
    assert (tr.cfg.lr, tr.cfg.ema_decay, tr.cfg.monitor) == (0.01, 0.99, "auc+ap")  # minibatch defaults follow
    assert (tr.cfg.patience, tr.eval_steps) == (3, 25)
    full = Trainer(TrainConfig(progress=False, epochs=1), d.x, sp)
    assert (full.cfg.patience, full.eval_steps) == (10, 1)
    assert TrainConfig(mode="full").choose_mode(10**9)[0] == "full"


def test_minibatch_validates_within_epochs(data):
    tr, res = run(data, mode="minibatch", epochs=3, batch_size=8, lr=0.01, patience=0, eval_steps=3)
    rows, spe = res.history, tr.steps_per_epoch
    assert tr.eval_steps == 3 and spe > 8 and spe % 3 and res.steps == 3 * spe
    evals = set(range(3, 3 * spe + 1, 3)) | {3 * spe}
    assert [r["step"] for r in rows] == sorted(evals | {spe, 2 * spe})  # a row per evaluation and per epoch
    assert [r["step"] for r in rows if "val_auc" in r] == sorted(evals)
    assert rows[0]["epoch"] == round(3 / spe, 4) and rows[-1]["epoch"] == 3


@pytest.mark.parametrize("model", ["vgae", "gae"])
def test_subset_validation_is_exact(model):
    # A sparse graph: the 2-hop blocks of a small subset of the validation pairs are a small
    # share of it, so the subset path is taken; its scores equal full inference on those pairs.
    from scalevgae.train.evaluation import ValidationSet

    d = planted_partition(3000, avg_degree=3, feature_dim=8, seed=1)
    sp = split_edges(d.graph, 0.1, 0.1, seed=0)
    x = torch.as_tensor(d.x).float()
    tr = Trainer(TrainConfig(model=model, epochs=3, eval_pairs=20, ema_decay=0.0, progress=False), x, sp)
    assert tr.val_set.subset and tr.val_set.pos.size(1) == 20 == tr.val_set.neg.size(1)
    tr.fit()
    pos, neg = tr.val_set.global_pairs()
    m = tr.validate()
    assert (m["auc"], m["ap"]) == tr.evaluate(pos, neg)  # the same numbers as full inference
    with torch.no_grad():
        z_sub = tr.model.encode(tr.val_set.x, tr.val_set.blocks) if model == "gae" else None
    if z_sub is not None:
        torch.testing.assert_close(z_sub, tr.embed()[tr.val_set.n_id[: z_sub.size(0)]], rtol=1e-5, atol=1e-6)
    # The first layer's aggregation was applied once, from x by global id (no outer-hop rows kept).
    assert isinstance(tr.val_set.blocks[0], AggregatedBlock)
    assert tr.val_set.x.size(0) == tr.val_set.blocks[0].num_dst == tr.val_set.n_id.numel()
    # Same seed, same subset; the numpy path gathers the outer hop's rows instead, same scores.
    other = ValidationSet(sp.train_graph, x.numpy(), sp.val_pos, sp.val_neg, num_pairs=20, seed=tr.cfg.seed + 3,
                          device=torch.device("cpu"))
    assert torch.equal(other.global_pairs()[0], pos) and not isinstance(other.blocks[0], AggregatedBlock)
    assert other.x.size(0) > tr.val_set.x.size(0)
    assert other.score(tr.model, tr._embed) == m
    # With the loader's input table (fanout -1 at the input layer) the same aggregation is read from it.
    from scalevgae.sampling.aggregated import input_table

    tab = ValidationSet(sp.train_graph, x, sp.val_pos, sp.val_neg, num_pairs=20, seed=tr.cfg.seed + 3,
                        device=torch.device("cpu"), table=input_table(sp.train_graph, x))
    assert torch.equal(tab.n_id, tr.val_set.n_id) and isinstance(tab.blocks[0], AggregatedBlock)
    torch.testing.assert_close(tab.x, tr.val_set.x, rtol=1e-5, atol=1e-6)
    assert tab.score(tr.model, tr._embed) == pytest.approx(m, abs=1e-6)
    # Dense graph: the blocks would cover it, so full inference on all pairs.
    dense = Trainer(TrainConfig(epochs=1, eval_pairs=20, progress=False), *_data80())
    assert not dense.val_set.subset


def test_validation_set_decides_before_building_blocks():
    # The input layer's edge count decides (blocks are built only when used), and both outcomes
    # advance the global RNG alike (one draw, as before), so training noise does not depend on it.
    from scalevgae.train.evaluation import MAX_BLOCK_EDGE_SHARE, ValidationSet

    sparse = split_edges(planted_partition(3000, avg_degree=3, feature_dim=8, seed=1).graph, 0.1, 0.1, seed=0)
    dense = split_edges(planted_partition(300, avg_degree=40, feature_dim=8, seed=1).graph, 0.1, 0.1, seed=0)
    draws = []
    for sp in (sparse, dense):
        torch.manual_seed(5)
        vs = ValidationSet(sp.train_graph, torch.zeros(sp.train_graph.num_nodes, 1), sp.val_pos, sp.val_neg,
                           num_pairs=20, seed=0, device=torch.device("cpu"))
        draws.append(torch.rand(1))
        if sp is sparse:
            assert vs.subset
            # the input layer (aggregated in place) has every edge of the 1-hop nodes
            hop1 = vs.n_id[: vs.blocks[0].num_dst]
            assert 0 < int(sp.train_graph.degree()[hop1].sum()) <= MAX_BLOCK_EDGE_SHARE * sp.train_graph.num_edges
            assert vs.blocks[1].num_src == hop1.numel()
        else:
            assert not vs.subset and not hasattr(vs, "blocks")
    torch.manual_seed(5)
    torch.randint(0, 2**63 - 1, (1,))  # the one draw of a sampling seed
    assert torch.equal(draws[0], torch.rand(1)) and torch.equal(draws[1], draws[0])


def _data80():
    d = planted_partition(80, avg_degree=6, feature_dim=16, seed=3)
    return d.x, split_edges(d.graph, 0.1, 0.1, seed=0)
