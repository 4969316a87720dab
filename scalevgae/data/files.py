"""Low-level file reading shared by every data loader: whole files (gunzipped) and .npz archives.

The lowest module of :mod:`scalevgae.data`: it imports nothing from the package.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import zipfile
from typing import Any, Iterator, Union

import numpy as np


def read_bytes(path: Union[str, os.PathLike]) -> bytes:
    """The file's bytes, gunzipped when the name ends in ``.gz``; clear errors for bad archives."""
    path = os.fspath(path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{path}: cannot read ({type(e).__name__}: {e})") from e


@contextlib.contextmanager
def open_npz(path: str) -> Iterator[Any]:
    """The ``.npz`` archive at ``path`` (closed on exit); ValueError for anything but a valid archive."""
    try:
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a valid .npz archive ({type(e).__name__}: {e})") from e
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: expected an .npz archive, found a single array")
    try:
        yield z
    finally:
        z.close()
