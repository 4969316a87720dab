"""VGAE/GAE models: GCN encoders and the auto-encoders (the layer is scalevgae.nn.GCNLayer)."""

from __future__ import annotations

from torch import nn

from scalevgae.models.autoencoder import GAE, MAX_LOGSTD, VGAE
from scalevgae.models.encoders import GCNEncoder, VGAEEncoder

__all__ = ["GAE", "MAX_LOGSTD", "VGAE", "GCNEncoder", "VGAEEncoder", "build_model"]


def build_model(kind: str, in_channels: int, hidden: int = 32, latent: int = 16, dropout: float = 0.0) -> nn.Module:
    """``"vgae"`` -> VGAE(VGAEEncoder), ``"gae"`` -> GAE(GCNEncoder), with the given sizes."""
    if kind == "vgae":
        return VGAE(VGAEEncoder(in_channels, hidden, latent, dropout=dropout))
    if kind == "gae":
        return GAE(GCNEncoder(in_channels, hidden, latent, dropout=dropout))
    raise ValueError(f"model must be 'vgae' or 'gae', got {kind!r}")
