"""Shared skip rules for the Triton test files: they run on a GPU, or on the CPU in Triton's
interpreter (TRITON_INTERPRET=1 must be set before triton is imported; scripts/test.sh exports it
on GPU-less machines)."""

import importlib.util
import os

import pytest
import torch

HAS_TRITON = importlib.util.find_spec("triton") is not None
CUDA = torch.cuda.is_available()
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

TRITON_MARKS = [
    pytest.mark.triton,
    pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed"),
    pytest.mark.skipif(not (CUDA or INTERPRET),
                       reason="no CUDA device and TRITON_INTERPRET=1 not set (set it before triton is imported)"),
]

DEV = torch.device("cuda" if CUDA else "cpu")
