"""scripts/env.sh rebuilds the extension only when its build stamp changes (sources, torch, switches).

Runs the real script on a copy of the build inputs, with a venv whose python forwards to this
interpreter and records (instead of running) ``pip install`` calls."""

import os
import shutil
import stat
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def fake_checkout(tmp_path):
    root = tmp_path / "repo"
    for d in ("scripts", "csrc", "scalevgae"):
        shutil.copytree(os.path.join(REPO, d), root / d, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for f in ("setup.py", "pyproject.toml"):
        shutil.copy(os.path.join(REPO, f), root / f)
    (root / "scalevgae" / "_C.fake.so").write_bytes(b"")
    py = root / ".venv" / "bin" / "python"
    py.parent.mkdir(parents=True)
    log = tmp_path / "pip.log"
    py.write_text(f"""#!/usr/bin/env bash
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "$*" >> {log}; exit 0; fi
PYTHONPATH={root} exec {sys.executable} "$@"
""")
    py.chmod(py.stat().st_mode | stat.S_IEXEC)
    return root, log


def _env_sh(root, **env):
    e = {k: v for k, v in os.environ.items() if k not in ("SCALEVGAE_CUDA_SIM", "SCALEVGAE_REBUILD")}
    e.update(SCALEVGAE_SKIP_PYG="1", **env)
    r = subprocess.run(["bash", "-c", f"source {root}/scripts/env.sh"], capture_output=True, text=True, env=e,
                       cwd="/", timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stderr


def _builds(log):
    return sum("-e ." in ln for ln in open(log).read().splitlines()) if os.path.exists(log) else 0


@pytest.mark.slow  # five runs of env.sh, each importing torch
def test_second_run_does_not_rebuild(fake_checkout):
    root, log = fake_checkout
    assert "building" in _env_sh(root) and _builds(log) == 1
    assert "no rebuild" in _env_sh(root) and _builds(log) == 1
    with open(root / "csrc" / "ops.cpp" if (root / "csrc" / "ops.cpp").exists() else
              next((root / "csrc").rglob("*.cpp")), "a") as f:
        f.write("\n// changed\n")
    _env_sh(root)
    assert _builds(log) == 2  # a source changed
    _env_sh(root, SCALEVGAE_CUDA_SIM="1")
    assert _builds(log) == 3  # a build switch changed
    _env_sh(root, SCALEVGAE_CUDA_SIM="1")
    assert _builds(log) == 3
