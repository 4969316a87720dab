"""Drop-in PyG modules backed by scalevgae's fused ops.

Swap two lines of a PyG VGAE script::

    from scalevgae.nn import GCNConv, InnerProductDecoder   # instead of torch_geometric.nn's
    model = torch_geometric.nn.VGAE(Encoder(...), InnerProductDecoder())

GCNLayer is the package's own GCN layer (weight ``[in, out]``, no bias by default) that the
encoders in scalevgae.models stack; GCNConv is a PyG-shaped adapter over the same code.
"""

from scalevgae.nn.conv import GCNConv
from scalevgae.nn.decoder import DenseOutputTooLarge, InnerProductDecoder, available_memory_bytes
from scalevgae.nn.gcn_layer import GCNLayer

__all__ = ["DenseOutputTooLarge", "GCNConv", "GCNLayer", "InnerProductDecoder", "available_memory_bytes"]
