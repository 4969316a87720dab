"""scalevgae: Variational Graph Auto-Encoders on million-node graphs."""

from scalevgae import metrics, models, nn, ops, train
from scalevgae.graph import Graph
from scalevgae.models import GAE, VGAE, GCNEncoder, GraphConv, VGAEEncoder
from scalevgae.ops import available_backends
from scalevgae.train import TrainConfig, Trainer

__version__ = "0.1.0"
__all__ = [
    "GAE",
    "GCNEncoder",
    "Graph",
    "GraphConv",
    "TrainConfig",
    "Trainer",
    "VGAE",
    "VGAEEncoder",
    "__version__",
    "available_backends",
    "metrics",
    "models",
    "nn",
    "ops",
    "train",
]
