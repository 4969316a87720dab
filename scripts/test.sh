#!/usr/bin/env bash
# The whole test suite from a fresh clone: venv + install + lint + CUDA compile check + pytest.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -m "not slow"`: the fast tier, without the
# tests marked slow).
set -euo pipefail
export SCALEVGAE_CUDA_SIM=1  # also build scalevgae._C_cuda_sim: the CUDA kernels on the CPU emulator
source "$(dirname "$0")/env.sh"
"$PY" -m ruff check scalevgae tests benchmarks
PYTHON="$PY" bash scripts/check_cuda_compile.sh
# Without a GPU, Triton kernels run in its interpreter on the CPU.
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  export TRITON_INTERPRET=1
fi
# --durations=25: the slowest tests in every run's log (CI's too), to keep the "not slow" tier fast.
"$PY" -m pytest -q --durations=25 "$@"
