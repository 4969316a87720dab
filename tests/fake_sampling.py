"""Test stand-ins for the sampling package's Block and LinkLoader (full neighbourhoods, so a
minibatch encoder output equals the full-graph one on the seeds)."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from scalevgae import Graph
from scalevgae.ops.propagate import gcn_propagate
from scalevgae.sampling import negative_pairs


class FakeBlock:
    """Bipartite block: destinations are the first ``num_dst`` sources; full-graph normalization."""

    def __init__(self, g: Graph, dst: torch.Tensor):
        counts = g.rowptr[dst + 1] - g.rowptr[dst]
        idx = torch.repeat_interleave(g.rowptr[dst], counts) + (
            torch.arange(int(counts.sum())) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts))
        nbr = g.col[idx]
        extra = nbr[~torch.isin(nbr, dst)].unique()
        self.src_nodes = torch.cat([dst, extra])
        local = torch.full((g.num_nodes,), -1, dtype=torch.long)
        local[self.src_nodes] = torch.arange(self.src_nodes.numel())
        self.rowptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
        self.col = local[nbr]
        self.num_dst = dst.numel()
        norm = g.gcn_norm(torch.float64)
        self.src_scale, self.dst_scale = norm[self.src_nodes], norm[dst]

    def propagate(self, x, *, bias=None, activation=None):
        return gcn_propagate(self.rowptr, self.col, x, src_scale=self.src_scale.to(x.dtype),
                             dst_scale=self.dst_scale.to(x.dtype), bias=bias, activation=activation)


def full_blocks(g: Graph, seeds: torch.Tensor, num_layers: int = 2):
    blocks = [FakeBlock(g, seeds)]
    for _ in range(num_layers - 1):
        blocks.insert(0, FakeBlock(g, blocks[0].src_nodes))
    return blocks, blocks[0].src_nodes


class FakeLinkLoader:
    """LinkLoader API stand-in: shuffled positive batches, ``neg_ratio`` uniform non-edges each."""

    def __init__(self, graph, x, pos_pairs, *, batch_size, fanouts, neg_ratio=1, shuffle=True,
                 exclude_batch_edges=False, exclude=None, device=None, generator=None):
        self.graph, self.x, self.pos = graph, x, pos_pairs
        self.batch_size, self.neg_ratio, self.shuffle = batch_size, neg_ratio, shuffle
        self.num_layers = len(fanouts)
        self.gen = generator or torch.Generator()
        self.perm = None
        self.pos_in_epoch = 0

    def __len__(self):
        return -(-self.pos.size(1) // self.batch_size)

    def state_dict(self):
        return {"gen": self.gen.get_state(), "perm": self.perm, "pos": self.pos_in_epoch}

    def load_state_dict(self, sd):
        self.gen.set_state(sd["gen"])
        self.perm, self.pos_in_epoch = sd["perm"], sd["pos"]

    def __iter__(self):
        if self.perm is None or self.pos_in_epoch >= len(self):
            self.perm = torch.randperm(self.pos.size(1), generator=self.gen) if self.shuffle else \
                torch.arange(self.pos.size(1))
            self.pos_in_epoch = 0
        while self.pos_in_epoch < len(self):
            i = self.pos_in_epoch
            pos = self.pos[:, self.perm[i * self.batch_size:(i + 1) * self.batch_size]]
            neg = negative_pairs(self.graph, self.neg_ratio * pos.size(1), generator=self.gen)
            pairs = torch.cat([pos, neg], 1)
            seeds, inv = torch.unique(pairs.reshape(-1), return_inverse=True)
            inv = inv.view(2, -1)
            blocks, inputs = full_blocks(self.graph, seeds, self.num_layers)
            label = torch.cat([torch.ones(pos.size(1)), torch.zeros(neg.size(1))])
            self.pos_in_epoch += 1
            yield SimpleNamespace(blocks=blocks, x=torch.as_tensor(self.x)[inputs], src=inv[0], dst=inv[1],
                                  label=label, num_pos=pos.size(1))
