"""InnerProductDecoder with PyG's interface, on the fused edge decoding op."""

from __future__ import annotations

import os
from typing import Optional

import torch
from torch import Tensor

from scalevgae.ops.decode import edge_logits
from scalevgae.ops.validate import check_float_tensor, check_index_range


class DenseOutputTooLarge(RuntimeError):
    """``forward_all`` would allocate an N×N matrix that does not fit."""


def available_memory_bytes(device: torch.device) -> int:
    """Free memory on ``device``: ``cudaMemGetInfo`` on CUDA, ``MemAvailable`` on CPU (Linux),
    a conservative 4 GiB where it cannot be read."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    if hasattr(os, "sysconf"):
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            pass
    return 4 << 30


class InnerProductDecoder(torch.nn.Module):
    r"""``σ(z_i · z_j)`` link decoder with PyG's interface (``torch_geometric.nn.InnerProductDecoder``).

    Args:
        max_dense_bytes: largest N×N output ``forward_all`` may allocate. None: half of the
            memory currently available on ``z``'s device.
        backend: backend for ``edge_logits`` (None: automatic).
    """

    def __init__(self, max_dense_bytes: Optional[int] = None, *, backend: Optional[str] = None):
        super().__init__()
        self.max_dense_bytes = max_dense_bytes
        self.backend = backend

    def forward(self, z: Tensor, edge_index: Tensor, sigmoid: bool = True) -> Tensor:
        """Probabilities (logits with ``sigmoid=False``) of the pairs ``edge_index`` ``[2, E]``
        under ``z`` ``[N, D]``: ``[E]``."""
        check_float_tensor(z, "z", dim=2)
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError("edge_index must be a [2, E] tensor")
        if edge_index.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"edge_index must be int32 or int64, got {edge_index.dtype}")
        check_index_range(edge_index.reshape(-1), z.size(0), "edge_index")
        value = edge_logits(z, edge_index[0], edge_index[1], backend=self.backend).to(z.dtype)  # PyG's dtype
        return torch.sigmoid(value) if sigmoid else value

    def forward_all(self, z: Tensor, sigmoid: bool = True) -> Tensor:
        """The dense ``[N, N]`` matrix ``σ(z zᵀ)``; raises :class:`DenseOutputTooLarge` when it
        would not fit (use ``scalevgae.ops.topk_links`` for the best partners of every node)."""
        check_float_tensor(z, "z", dim=2)
        n = z.size(0)
        need = n * n * z.element_size()
        limit = self.max_dense_bytes
        if limit is None:
            limit = available_memory_bytes(z.device) // 2
        if need > limit:
            raise DenseOutputTooLarge(
                f"forward_all would allocate a {n}x{n} {z.dtype} matrix ({need / 2**30:.2f} GiB), more than "
                f"the limit of {limit / 2**30:.2f} GiB; use scalevgae.ops.topk_links(z, k) for the k best "
                f"partners of each node, or decode only the pairs you need with forward(z, edge_index)")
        adj = z @ z.t()
        return torch.sigmoid(adj) if sigmoid else adj
