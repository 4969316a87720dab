"""GAE and VGAE with PyG's interface (encode, decode, recon_loss, kl_loss, test) plus
bounded-memory full-graph inference (``embed``)."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from scalevgae.graph import Graph
from scalevgae.metrics import link_scores
from scalevgae.models.encoders import VGAEEncoder
from scalevgae.nn.decoder import InnerProductDecoder
from scalevgae.sampling.negative import negative_pairs

MAX_LOGSTD = 10.0  # as PyG: exp(2 * 10) is still finite in float32


def _pairs(edge_index: Tensor, name: str) -> Tensor:
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index).__name__
        raise ValueError(f"{name} must be a [2, E] index tensor, got {shape}")
    return edge_index


class GAE(nn.Module):
    """Graph auto-encoder: ``z = encoder(x, edge_index)``, ``p(A_ij) = sigmoid(z_i . z_j)``.

    Args:
        encoder: a module called as ``encoder(x, edge_index)`` returning z ``[n, d]`` (e.g.
            :class:`~scalevgae.models.GCNEncoder`, or any PyG encoder).
        decoder: a PyG-style decoder ``decoder(z, edge_index, sigmoid=True)``; None is the fused
            :class:`scalevgae.nn.InnerProductDecoder`.
    """

    def __init__(self, encoder: nn.Module, decoder: Optional[nn.Module] = None):
        super().__init__()
        self.encoder = encoder
        self.decoder = InnerProductDecoder() if decoder is None else decoder

    def reset_parameters(self) -> None:
        for m in (self.encoder, self.decoder):
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """Alias for :meth:`encode`."""
        return self.encode(*args, **kwargs)

    def encode(self, *args: Any, **kwargs: Any) -> Tensor:
        """z = ``encoder(*args, **kwargs)``: PyG's ``encode(x, edge_index)``, with ``edge_index`` a
        ``[2, E]`` tensor, SparseTensor, torch.sparse ``adj_t``, Graph (z ``[num_nodes, d]``) or a list
        of sampled blocks (z ``[blocks[-1].num_dst, d]``) for this package's encoders."""
        return self.encoder(*args, **kwargs)

    def decode(self, z: Tensor, edge_index: Tensor, sigmoid: bool = True) -> Tensor:
        """Edge probabilities ``sigmoid(z_src . z_dst)`` ``[E]`` for ``edge_index [2, E]``."""
        return self.decoder(z, _pairs(edge_index, "edge_index"), sigmoid=sigmoid)

    def _bce(self, z: Tensor, pairs: Tensor, label: float) -> Tensor:
        logits = self.decoder(z, pairs, sigmoid=False)
        return nn.functional.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))

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
    def embed(self, x: Any, edge_index: Any, *, batch_size: int = 65536,
              device: Optional[torch.device] = None) -> Tensor:
        """Full-graph embeddings ``[num_nodes, d]`` without sampling (eval mode). VGAE returns mu.

        On a :class:`~scalevgae.Graph` with an encoder that has ``inference``, layer by layer in
        chunks of ``batch_size`` rows (bounded memory; x may be a numpy memmap); otherwise one
        ``encoder(x, edge_index)`` call.
        """
        if isinstance(x, Graph):
            raise TypeError("embed takes (x, edge_index) in PyG's order, got (Graph, ...)")
        was = self.training
        self.eval()
        try:
            if not (isinstance(edge_index, Graph) and hasattr(self.encoder, "inference")):
                dev = device or next(self.parameters()).device
                adj = edge_index.to(dev) if hasattr(edge_index, "to") else edge_index
                return self._mean(self.encoder(torch.as_tensor(x).to(dev), adj))
            return self._mean(self._inference(x, edge_index, batch_size=batch_size, device=device))
        finally:
            self.train(was)

    def _inference(self, x: Any, graph: Graph, **kwargs: Any) -> Any:
        return self.encoder.inference(x, graph, **kwargs)

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

    def encode(self, *args: Any, **kwargs: Any) -> Tensor:
        """z ``[n, d]`` from ``encoder(*args, **kwargs)`` (see :meth:`GAE.encode`); keeps mu and
        logstd for :meth:`kl_loss`."""
        mu, logstd = self.encoder(*args, **kwargs)
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

    def _inference(self, x: Any, graph: Graph, **kwargs: Any) -> Any:
        if isinstance(self.encoder, VGAEEncoder):  # embed returns mu: skip the logstd head
            kwargs["logstd"] = False
        return self.encoder.inference(x, graph, **kwargs)

    def _mean(self, out: Any) -> Tensor:
        return out[0]
