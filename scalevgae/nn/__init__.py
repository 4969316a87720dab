"""Drop-in PyG modules backed by scalevgae's fused ops.

Swap two lines of a PyG VGAE script::

    from scalevgae.nn import GCNConv, InnerProductDecoder   # instead of torch_geometric.nn's
    model = torch_geometric.nn.VGAE(Encoder(...), InnerProductDecoder())
"""

from scalevgae.nn.conv import GCNConv
from scalevgae.nn.decoder import DenseOutputTooLarge, InnerProductDecoder, available_memory_bytes

__all__ = ["DenseOutputTooLarge", "GCNConv", "InnerProductDecoder", "available_memory_bytes"]
