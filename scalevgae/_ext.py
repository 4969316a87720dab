"""Loads the optional compiled extensions and answers "does the build have op X".

``scalevgae._C``: the C++ CPU kernels (and the CUDA ones when built with CUDA), op namespace
``torch.ops.scalevgae``. ``scalevgae._C_cuda_sim`` (built only with ``SCALEVGAE_CUDA_SIM=1``, for
tests): the CUDA kernel sources compiled for the CPU through the SIMT emulator, registering the
same schemas under ``torch.ops.scalevgae_cuda_sim`` on CPU tensors.

Without ``_C`` the package works on the reference backend; the first op that falls back says so
once. Importing an extension registers its kernels.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import Optional

import torch

NAMESPACE = "scalevgae"
SIM_NAMESPACE = "scalevgae_cuda_sim"


def _load(module: str) -> tuple[Optional[ModuleType], Optional[str]]:
    try:
        return importlib.import_module(module), None
    except ImportError as e:  # not built, or built against another torch
        return None, f"{type(e).__name__}: {e}"


_C, _ERROR = _load("scalevgae._C")
_C_SIM, _SIM_ERROR = _load("scalevgae._C_cuda_sim")

_warned = False


def loaded() -> bool:
    """Whether the compiled extension ``_C`` imported."""
    return _C is not None


def error() -> str | None:
    """Why the extension did not import (None if it did)."""
    return _ERROR


def with_cuda() -> bool:
    """Whether the extension was compiled with its CUDA kernels."""
    return _C is not None and bool(_C.with_cuda())


def init_num_threads_here() -> None:
    """Run ``_C``'s own copy of ATen's lazy per-thread thread-count initialisation in the calling
    thread (see ``scalevgae._threads``); nothing without ``_C``."""
    if _C is not None:
        _C.init_num_threads_here()


def release_recycled_buffers() -> None:
    """Unmap the CPU sampler's kept output buffers (csrc/cpu/recycled_buffer.h); nothing without
    ``_C``."""
    if _C is not None:
        _C.release_recycled_buffers()


def sim_loaded() -> bool:
    """Whether the CUDA-on-CPU emulation build ``_C_cuda_sim`` imported."""
    return _C_SIM is not None


def sim_error() -> str | None:
    """Why ``_C_cuda_sim`` did not import (None if it did)."""
    return _SIM_ERROR


def namespaces() -> tuple[str, ...]:
    """The op namespaces of the compiled extensions that imported."""
    return tuple(ns for ns, m in ((NAMESPACE, _C), (SIM_NAMESPACE, _C_SIM)) if m is not None)


def has_op(name: str, namespace: str = NAMESPACE) -> bool:
    """Whether the loaded extension of ``namespace`` registers op ``name`` (a stale build may not)."""
    if namespace not in namespaces():
        return False
    try:
        getattr(getattr(torch.ops, namespace), name)
    except (AttributeError, RuntimeError):
        return False
    return True


def qualified_ops(name: str) -> list[str]:
    """``"<ns>::<name>"`` for every loaded namespace that has op ``name``: where to register its
    fake kernel and autograd (one registration path for every compiled backend)."""
    return [f"{ns}::{name}" for ns in namespaces() if has_op(name, ns)]


def warn_fallback_once() -> None:
    global _warned
    if not _warned and _C is None:
        _warned = True
        warnings.warn(
            "scalevgae: compiled extension not available "
            f"({_ERROR}); using the pure-PyTorch reference backend (slow). "
            "Build it with `pip install --no-build-isolation -e .`.",
            RuntimeWarning,
            stacklevel=3,
        )
