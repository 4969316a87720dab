"""Scale smoke test: minibatch VGAE on a 1e5-node built-in graph learns links in bounded memory."""

from __future__ import annotations

import pytest
import torch

from benchmarks.common import peak_rss_gb, reset_peak_rss
from scalevgae.data.split import split_edges
from scalevgae.data.synthetic import planted_partition
from scalevgae.train import TrainConfig, Trainer

NODES = 100_000
STEPS = 150
# Peak resident memory of training + full-graph inference on 1e5 nodes (graph, split and
# features already resident: ~0.1 GB). Measured ~0.6 GB of process RSS including torch itself;
# the bound leaves room for allocator noise, yet catches anything O(N^2) or a per-step leak.
PEAK_RSS_BOUND_GB = 1.5


@pytest.mark.slow
def test_minibatch_vgae_1e5_nodes_learns_in_bounded_memory():
    data = planted_partition(NODES, avg_degree=16, feature_dim=64, seed=0)
    split = split_edges(data.graph, 0.05, 0.10, seed=0)
    can_measure = reset_peak_rss()
    cfg = TrainConfig(mode="minibatch", epochs=1, steps=STEPS, lr=0.01, neg_ratio=1, batch_size=2048,
                      fanouts=(10, 5), patience=None, seed=0, device="cpu", amp="off", progress=False)
    trainer = Trainer(cfg, data.x, split)
    res = trainer.fit()
    assert res.steps == STEPS
    z = trainer.embed()
    assert z.shape == (NODES, 16) and bool(torch.isfinite(z).all())
    auc, ap = trainer.evaluate(split.test_pos, split.test_neg, z=z)
    assert auc > 0.8, f"test AUC {auc:.3f} after {STEPS} steps"
    assert ap > 0.7, f"test AP {ap:.3f}"
    if can_measure:
        peak_gb = peak_rss_gb()
        assert peak_gb < PEAK_RSS_BOUND_GB, f"peak RSS {peak_gb:.2f} GB >= {PEAK_RSS_BOUND_GB} GB"
