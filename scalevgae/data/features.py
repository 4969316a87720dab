"""Node features: loading (in memory or memory-mapped), validation, and row gathering."""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np
import torch
from torch import Tensor

from scalevgae.data.files import open_npz, read_bytes

if TYPE_CHECKING:
    from scalevgae.graph import Graph

_FINITE_CHUNK = 1 << 16  # rows per block when scanning a memmap for NaN/inf


def check_features(x: Any, num_nodes: Optional[int], name: str = "x") -> None:
    """x is a 2-D float array/tensor with ``num_nodes`` rows and only finite values.

    Memory-mapped arrays are scanned in blocks, so the check never loads the whole file.
    """
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D [num_nodes, F], got shape {tuple(x.shape)}")
    if num_nodes is not None and x.shape[0] != num_nodes:
        raise ValueError(f"{name} has {x.shape[0]} rows but the graph has {num_nodes} nodes")
    if isinstance(x, Tensor):
        if not x.is_floating_point():
            raise TypeError(f"{name} must be floating point, got {x.dtype}")
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            r = int(bad.any(1).nonzero()[0])
            raise ValueError(f"{name} contains NaN or infinite values (first in row {r})")
        return
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"{name} must hold numbers, got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.integer):
        return
    for a in range(0, x.shape[0], _FINITE_CHUNK):
        block = np.asarray(x[a: a + _FINITE_CHUNK])
        ok = np.isfinite(block).all(1)
        if not ok.all():
            raise ValueError(f"{name} contains NaN or infinite values (first in row {a + int(np.flatnonzero(~ok)[0])})")


def load_features(
    path: Union[str, os.PathLike], *, mmap: bool = True, num_nodes: Optional[int] = None, check: bool = True
) -> Any:
    """Features ``[N, F]`` from ``.npy`` (memory-mapped read-only when ``mmap``), ``.npz`` (key
    ``x``), or a text matrix (``.csv``/``.txt``/``.tsv``, optionally ``.gz``; one row per line).

    Returns a numpy array or memmap for ``.npy`` (pass it to :func:`gather_rows`), a float32
    tensor otherwise. Raises ValueError for a bad shape, NaN/inf values or a malformed file.
    """
    path = os.fspath(path)
    if path.endswith(".npy"):
        try:
            x = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"{path}: not a numeric .npy array ({e})") from e
        if check:
            check_features(x, num_nodes, name=path)
        return x
    if path.endswith(".npz"):
        with open_npz(path) as z:
            if "x" not in z.files:
                raise ValueError(f"{path}: no array named 'x' (has {sorted(z.files)})")
            x = torch.from_numpy(np.ascontiguousarray(z["x"]))
    else:
        x = torch.from_numpy(parse_dense_text(path))
    x = x.float() if not x.is_floating_point() else x
    if check:
        check_features(x, num_nodes, name=path)
    return x


def parse_dense_text(path: Union[str, os.PathLike], dtype: Any = np.float32) -> np.ndarray:
    """A numeric text matrix (comma or whitespace separated, one row per line) as ``[rows, cols]``.

    Parsed in C by ``np.fromstring``; on failure the offending line is located and named.
    """
    path = os.fspath(path)
    data = read_bytes(path).replace(b",", b" ").replace(b"\r", b" ").replace(b"\t", b" ")
    head = data[: data.find(b"\n", 0, 1 << 20) if b"\n" in data[: 1 << 20] else 1 << 20]
    ncols = len(head.split())
    nlines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    try:
        flat = np.fromstring(data, dtype=dtype, sep=" ")
    except ValueError:
        flat = None
    if flat is not None and ncols and flat.size == ncols * nlines:
        return flat.reshape(nlines, ncols)
    # Slow path, only for blank lines or errors: check line by line and name the bad line.
    rows = []
    for i, ln in enumerate(data.split(b"\n")):
        toks = ln.split()
        if not toks:
            continue
        if len(toks) != ncols:
            raise ValueError(f"{path}, line {i + 1}: expected {ncols} values like the first line, got {len(toks)}")
        try:
            rows.append(np.array(toks, dtype=np.float64))
        except ValueError:
            raise ValueError(f"{path}, line {i + 1}: not a number in {ln[:80].decode('utf-8', 'replace')!r}") from None
    if not rows:
        raise ValueError(f"{path}: no numeric rows")
    return np.stack(rows).astype(dtype)


def gather_rows(
    x: Any, idx: Union[Tensor, np.ndarray], *, device: Optional[Union[str, torch.device]] = None,
    dtype: Optional[torch.dtype] = None, pin_memory: bool = False,
) -> Tensor:
    """``x[idx]`` as a tensor, reading only the requested rows.

    Args:
        x: ``[N, F]`` tensor, numpy array or ``np.memmap`` (e.g. ``np.load(path, mmap_mode="r")``).
        idx: ``[B]`` integer row indices in ``[0, N)`` (tensor on any device, or numpy array).
        device: where the result goes (default: ``x``'s device, CPU for numpy input).
        dtype: result dtype (default: float32 for numpy input, ``x.dtype`` for tensors).
        pin_memory: gather numpy rows into page-locked memory and copy to ``device``
            asynchronously (for CUDA training from a memmap).

    Returns:
        ``[B, F]`` tensor. A memmap is read through a zero-copy view, so only the pages holding
        the requested rows are touched.
    """
    if isinstance(idx, Tensor):
        if idx.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"idx must be int32 or int64, got {idx.dtype}")
    else:
        idx = np.asarray(idx)
        if not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"idx must hold integers, got {idx.dtype}")
    if idx.ndim != 1:
        raise ValueError(f"idx must be 1-D, got shape {tuple(idx.shape)}")
    n = x.shape[0]
    if idx.shape[0]:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= n:
            raise IndexError(f"idx has index {lo if lo < 0 else hi} out of range for {n} rows")
    if isinstance(x, Tensor):
        out = x.index_select(0, torch.as_tensor(idx, device=x.device).long())
        return out.to(device=device or out.device, dtype=dtype or out.dtype)
    ii = torch.as_tensor(idx).cpu().long()
    out_dtype = dtype or torch.float32
    try:
        # Zero-copy view of the (memory-mapped) array: index_select touches only the pages of
        # the requested rows, in parallel. The view is never written, so read-only is fine.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            view = torch.from_numpy(x) if isinstance(x, np.ndarray) else None
    except (TypeError, ValueError):  # e.g. big-endian or object arrays
        view = None
    if view is not None and view.dim() >= 1:
        rows = view.index_select(0, ii)
    else:
        r = np.take(np.asarray(x), ii.numpy(), axis=0)
        if r.dtype.kind not in "fiub":
            raise TypeError(f"x must hold numbers, got dtype {r.dtype}")
        rows = torch.from_numpy(np.ascontiguousarray(r.astype(r.dtype.newbyteorder("="), copy=False)))
    out = rows.to(out_dtype)
    if pin_memory:
        out = out.pin_memory()
    return out.to(device, non_blocking=pin_memory) if device is not None else out


def default_features(graph: Graph, dim: int = 32, seed: int = 0) -> Tensor:
    """``[N, dim]`` float32: a standardized ``log(1 + degree)`` column and ``dim - 1`` fixed
    Gaussian columns (seeded, scaled by ``1/sqrt(dim - 1)``).

    The random columns let the GCN tell nodes apart (a fixed stand-in for learnable node
    embeddings, without ``N x d`` parameters); the degree column carries structure. O(N dim).
    """
    if dim < 1:
        raise ValueError(f"dim must be positive, got {dim}")
    deg = torch.log1p(graph.degree().double().cpu())
    deg = (deg - deg.mean()) / deg.std().clamp_min(1e-12) if deg.numel() > 1 else deg * 0
    gen = torch.Generator().manual_seed(seed)
    rnd = torch.randn(graph.num_nodes, dim - 1, generator=gen) / max(dim - 1, 1) ** 0.5
    return torch.cat([deg.float()[:, None], rnd], 1)
