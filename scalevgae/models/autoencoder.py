"""GAE and VGAE with PyG's interface (encode, decode, recon_loss, kl_loss, test) plus
bounded-memory full-graph inference (``embed``)."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from scalevgae.graph import Graph
from scalevgae.metrics import link_scores
from scalevgae.ops.decode import edge_bce_loss, edge_logits
from scalevgae.sampling.negative import negative_pairs

MAX_LOGSTD = 10.0  # as PyG: exp(2 * 10) is still finite in float32


def _pairs(edge_index: Tensor, name: str) -> Tensor:
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index).__name__
        raise ValueError(f"{name} must be a [2, E] index tensor, got {shape}")
    return edge_index


class GAE(nn.Module):
    """Graph auto-encoder: ``z = encoder(graph, x)``, ``p(A_ij) = sigmoid(z_i . z_j)``.

    Args:
        encoder: a module called as ``encoder(graph_or_blocks, x)`` returning z ``[n, d]``
            (e.g. :class:`~scalevgae.models.GCNEncoder`).
        decoder: optional PyG-style decoder ``decoder(z, edge_index, sigmoid=True)``; None is the
            inner product through the fused ``scalevgae.ops`` decoder.
    """

    def __init__(self, encoder: nn.Module, decoder: Optional[nn.Module] = None):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def reset_parameters(self) -> None:
        for m in (self.encoder, self.decoder):
            if m is not None and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """Alias for :meth:`encode`."""
        return self.encode(*args, **kwargs)

    def encode(self, graph_or_blocks: Any, x: Tensor) -> Tensor:
        """z ``[n, d]`` for a Graph (n = num_nodes) or blocks (n = ``blocks[-1].num_dst``)."""
        return self.encoder(graph_or_blocks, x)

    def _logits(self, z: Tensor, edge_index: Tensor) -> Tensor:
        if self.decoder is not None:
            return self.decoder(z, edge_index, sigmoid=False)
        return edge_logits(z, edge_index[0], edge_index[1])

    def decode(self, z: Tensor, edge_index: Tensor, sigmoid: bool = True) -> Tensor:
        """Edge probabilities ``sigmoid(z_src . z_dst)`` ``[E]`` for ``edge_index [2, E]``."""
        logits = self._logits(z, _pairs(edge_index, "edge_index"))
        return torch.sigmoid(logits) if sigmoid else logits

    def _bce(self, z: Tensor, pairs: Tensor, label: float) -> Tensor:
        lab = torch.full((pairs.size(1),), label, dtype=z.dtype, device=z.device)
        if self.decoder is not None:
            return nn.functional.binary_cross_entropy_with_logits(self._logits(z, pairs), lab)
        return edge_bce_loss(z, pairs[0], pairs[1], lab)

    def recon_loss(self, z: Tensor, pos_edge_index: Tensor, neg_edge_index: Optional[Tensor] = None) -> Tensor:
        """Mean BCE on the positive pairs plus mean BCE on the negative pairs (PyG's loss).

        pos_edge_index ``[2, P]``; neg_edge_index ``[2, Q]``, or None to sample ``P`` uniform
        pairs that are neither self pairs nor in ``pos_edge_index``.
        """
        pos = _pairs(pos_edge_index, "pos_edge_index")
        if neg_edge_index is None:
            known = Graph.from_edge_index(pos.detach(), z.size(0), undirected=False)
            neg_edge_index = negative_pairs(known, pos.size(1))
        neg = _pairs(neg_edge_index, "neg_edge_index")
        return self._bce(z, pos, 1.0) + self._bce(z, neg, 0.0)

    @torch.no_grad()
    def test(self, z: Tensor, pos_edge_index: Tensor, neg_edge_index: Tensor) -> tuple[float, float]:
        """(ROC-AUC, average precision) of the positive vs the negative pairs (computed in torch)."""
        pos = self.decode(z, pos_edge_index, sigmoid=False)
        neg = self.decode(z, neg_edge_index, sigmoid=False)
        return link_scores(pos, neg)

    @torch.no_grad()
    def embed(self, graph: Graph, x: Any, *, batch_size: int = 65536,
              device: Optional[torch.device] = None) -> Tensor:
        """Full-graph embeddings ``[num_nodes, d]`` without sampling, layer by layer in chunks of
        ``batch_size`` rows (bounded memory; x may be a numpy memmap). VGAE returns mu."""
        was = self.training
        self.eval()
        try:
            if not hasattr(self.encoder, "inference"):
                dev = device or next(self.parameters()).device
                return self._mean(self.encoder(graph.to(dev), torch.as_tensor(x).to(dev)))
            return self._mean(self.encoder.inference(graph, x, batch_size=batch_size, device=device))
        finally:
            self.train(was)

    def _mean(self, out: Any) -> Tensor:
        return out


class VGAE(GAE):
    """Variational graph auto-encoder: the encoder returns ``(mu, logstd)``; in training
    ``z = mu + eps * exp(logstd)``, in eval ``z = mu``. logstd is clamped at ``MAX_LOGSTD``.
    """

    def __init__(self, encoder: nn.Module, decoder: Optional[nn.Module] = None):
        super().__init__(encoder, decoder)
        self.__mu__: Optional[Tensor] = None
        self.__logstd__: Optional[Tensor] = None

    def reparametrize(self, mu: Tensor, logstd: Tensor) -> Tensor:
        if self.training:
            return mu + torch.randn_like(logstd) * torch.exp(logstd)
        return mu

    def encode(self, graph_or_blocks: Any, x: Tensor) -> Tensor:
        """z ``[n, d]``; keeps mu and logstd for :meth:`kl_loss`."""
        mu, logstd = self.encoder(graph_or_blocks, x)
        logstd = logstd.clamp(max=MAX_LOGSTD)
        self.__mu__, self.__logstd__ = mu, logstd
        return self.reparametrize(mu, logstd)

    def kl_loss(self, mu: Optional[Tensor] = None, logstd: Optional[Tensor] = None) -> Tensor:
        """``KL(N(mu, sigma^2) || N(0, I))`` summed over latent dims, mean over nodes (PyG's).

        Defaults to the mu/logstd of the last :meth:`encode`.
        """
        mu = self.__mu__ if mu is None else mu
        logstd = self.__logstd__ if logstd is None else logstd.clamp(max=MAX_LOGSTD)
        if mu is None or logstd is None:
            raise RuntimeError("kl_loss() needs mu and logstd: call encode() first or pass them")
        mu, logstd = mu.float(), logstd.float()
        return -0.5 * torch.mean(torch.sum(1 + 2 * logstd - mu**2 - logstd.exp() ** 2, dim=1))

    def _mean(self, out: Any) -> Tensor:
        return out[0]
