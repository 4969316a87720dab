"""VGAE/GAE models: GCN layers and encoders on full graphs or sampled blocks."""

from __future__ import annotations

from torch import nn

from scalevgae.models.autoencoder import GAE, MAX_LOGSTD, VGAE
from scalevgae.models.conv import GraphConv, glorot_
from scalevgae.models.encoders import GCNEncoder, VGAEEncoder

__all__ = ["GAE", "MAX_LOGSTD", "VGAE", "GCNEncoder", "GraphConv", "VGAEEncoder", "build_model", "glorot_"]


def build_model(kind: str, in_channels: int, hidden: int = 32, latent: int = 16, dropout: float = 0.0) -> nn.Module:
    """``"vgae"`` -> VGAE(VGAEEncoder), ``"gae"`` -> GAE(GCNEncoder), with the given sizes."""
    if kind == "vgae":
        return VGAE(VGAEEncoder(in_channels, hidden, latent, dropout=dropout))
    if kind == "gae":
        return GAE(GCNEncoder(in_channels, hidden, latent, dropout=dropout))
    raise ValueError(f"model must be 'vgae' or 'gae', got {kind!r}")
