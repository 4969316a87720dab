"""Every CUDA kernel on the CPU SIMT emulator under AddressSanitizer + UndefinedBehaviorSanitizer
(scripts/sanitize_cuda_sim.sh address: its own build in build/sanitize-address/, a reduced input
set, a fresh Python with libasan preloaded). The ThreadSanitizer run (several blocks at once) is
`bash scripts/sanitize_cuda_sim.sh thread`, outside CI for time; the layer's own TSan test
(tests/test_cuda_sim_layer.py) runs in CI."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not found")
@pytest.mark.skipif(not glob.glob(str(ROOT / "scalevgae" / "_C.*.so")), reason="scalevgae._C not built")
def test_kernels_under_asan_ubsan():
    env = dict(os.environ, PYTHON=sys.executable)
    r = subprocess.run(["bash", "scripts/sanitize_cuda_sim.sh", "address"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=3600)
    tail = (r.stdout + r.stderr)[-6000:]
    assert r.returncode == 0, tail
    assert "sanitizer_checks: all checks passed" in r.stdout, tail
    assert "ERROR: AddressSanitizer" not in r.stderr and "runtime error:" not in r.stderr, tail
