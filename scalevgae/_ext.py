"""Loads the optional compiled extension ``scalevgae._C`` (C++ CPU and CUDA kernels).

Without it the package works on the reference backend; the first op that falls back says so
once. Importing ``_C`` registers the ``torch.ops.scalevgae.*`` kernels.
"""

from __future__ import annotations

import warnings

try:
    from scalevgae import _C  # noqa: F401

    _ERROR: str | None = None
except ImportError as e:  # not built, or built against another torch
    _C = None
    _ERROR = f"{type(e).__name__}: {e}"

_warned = False


def loaded() -> bool:
    """Whether the compiled extension imported."""
    return _C is not None


def error() -> str | None:
    """Why the extension did not import (None if it did)."""
    return _ERROR


def with_cuda() -> bool:
    """Whether the extension was compiled with its CUDA kernels."""
    return _C is not None and bool(_C.with_cuda())


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
