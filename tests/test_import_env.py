"""`import scalevgae` sets OMP_WAIT_POLICY=PASSIVE and THP_MEM_ALLOC_ENABLE=1 unless the user set them."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env_after_import(**preset: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "THP_MEM_ALLOC_ENABLE")}
    env.update(preset)
    code = "import os, scalevgae; print(os.environ['OMP_WAIT_POLICY'], os.environ['THP_MEM_ALLOC_ENABLE'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


def test_import_sets_defaults_and_keeps_the_users_settings():
    assert _env_after_import() == ["PASSIVE", "1"]
    assert _env_after_import(OMP_WAIT_POLICY="ACTIVE", THP_MEM_ALLOC_ENABLE="0") == ["ACTIVE", "0"]
