"""The PyG recipe for minibatch VGAE, as a PyG user would write it (peer for bench_train.py).

LinkNeighborLoader (num_neighbors, 1:1 negatives) + GCNConv encoder + torch_geometric.nn.VGAE,
Adam, KL scaled by 1/N per step. Run as a subprocess by bench_train.py so that peak RSS is its own.
"""

from __future__ import annotations

from typing import Collection

import torch
from torch import nn

from benchmarks.common import Stopwatch


def pyg_vgae(in_channels: int, hidden: int = 32, latent: int = 16) -> nn.Module:
    """PyG's examples/autoencoder.py VGAE: a GCNConv layer, then GCNConv heads for mu and log-std."""
    from torch_geometric.nn import VGAE, GCNConv

    class Encoder(nn.Module):
        def __init__(self, cin: int):
            super().__init__()
            self.conv1 = GCNConv(cin, hidden)
            self.conv_mu = GCNConv(hidden, latent)
            self.conv_logstd = GCNConv(hidden, latent)

        def forward(self, x, edge_index):
            h = self.conv1(x, edge_index).relu()
            return self.conv_mu(h, edge_index), self.conv_logstd(h, edge_index)

    return VGAE(Encoder(in_channels))


def run(data, split, *, steps: int, batch_size: int, fanouts: list[int], hidden: int, latent: int,
        lr: float, seed: int, device: torch.device, eval_at: Collection[int] = ()) -> dict:
    """Train ``steps`` steps and score the test pairs; ``eval_at``: also score after these step
    counts (off the clock), returned as ``curve``."""
    from torch_geometric.data import Data
    from torch_geometric.loader import LinkNeighborLoader

    from scalevgae.metrics import link_scores

    torch.manual_seed(seed)
    n = data.num_nodes
    train_ei = split.train_graph.edge_index
    pyg = Data(x=data.x, edge_index=train_ei, num_nodes=n)
    loader = LinkNeighborLoader(pyg, num_neighbors=fanouts, edge_label_index=split.train_pos,
                                batch_size=batch_size, neg_sampling_ratio=1.0, shuffle=True)
    model = pyg_vgae(data.x.size(1), hidden, latent).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def embed() -> torch.Tensor:  # full-graph mu on the training graph
        model.eval()
        with torch.no_grad():
            z = model.encode(data.x.to(device), train_ei.to(device))
        model.train()
        return z

    def scores(z: torch.Tensor) -> tuple[float, float]:
        with torch.no_grad():
            pos = (z[split.test_pos[0]] * z[split.test_pos[1]]).sum(-1)
            neg = (z[split.test_neg[0]] * z[split.test_neg[1]]).sum(-1)
        return link_scores(pos, neg)

    model.train()
    pairs = 0
    curve = []
    it = iter(loader)
    clock = Stopwatch()
    for step in range(1, steps + 1):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        batch = batch.to(device)
        opt.zero_grad()
        z = model.encode(batch.x, batch.edge_index)
        pos = batch.edge_label_index[:, batch.edge_label == 1]
        neg = batch.edge_label_index[:, batch.edge_label == 0]
        loss = model.recon_loss(z, pos, neg) + model.kl_loss() / n
        loss.backward()
        opt.step()
        pairs += batch.edge_label.numel()
        if step in eval_at:
            with clock.paused():
                curve.append(dict(steps=step, train_pairs=pairs, **dict(zip(("test_auc", "test_ap"), scores(embed())))))
    train_s = clock.elapsed()
    clock = Stopwatch()
    z = embed()
    infer_s = clock.elapsed()
    auc, ap = scores(z)
    return dict(system="pyg", steps=steps, train_s=train_s, steps_per_s=steps / train_s,
                pairs_per_s=pairs / train_s, train_pairs=pairs, inference_s=infer_s,
                test_auc=auc, test_ap=ap, curve=curve)
