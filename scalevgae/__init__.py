"""scalevgae: Variational Graph Auto-Encoders on million-node graphs."""

from scalevgae import nn, ops
from scalevgae.graph import Graph
from scalevgae.ops import available_backends

__version__ = "0.1.0"
__all__ = ["Graph", "available_backends", "nn", "ops", "__version__"]
