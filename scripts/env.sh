# Sourced by scripts/demo.sh and scripts/test.sh: create or reuse the virtualenv and install
# what scalevgae needs, then build the extension. Safe to run again (everything is reused).
#   SCALEVGAE_VENV   venv directory (default .venv)
#   SCALEVGAE_SKIP_PYG=1  do not install torch_scatter/torch_sparse/torch_geometric
#   TORCH_SPEC       torch requirement (default torch==2.13.0, the local CPU wheel on this machine;
#                    on a GPU machine install a CUDA torch in the venv first, it is kept)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${SCALEVGAE_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
PY="$ROOT/$VENV/bin/python"
[ -x "$PY" ] || PY="$VENV/bin/python"
export PY
pip_q() { "$PY" -m pip install -q --disable-pip-version-check "$@"; }
if ! "$PY" -c "import torch" 2>/dev/null; then
  pip_q "${TORCH_SPEC:-torch==2.13.0}"
fi
"$PY" -c "import numpy, scipy, pytest, ruff, ninja, tqdm, sklearn, matplotlib, triton" 2>/dev/null ||
  pip_q numpy scipy pytest ruff ninja tqdm scikit-learn matplotlib triton
# torch_scatter / torch_sparse: the prebuilt wheels in ../shared/wheels when they match this
# Python and torch; otherwise a source build (tens of minutes on 2 cores).
if [ "${SCALEVGAE_SKIP_PYG:-0}" != "1" ] && ! "$PY" -c "import torch_sparse, torch_scatter, torch_geometric" 2>/dev/null; then
  tag=$("$PY" -c "import sys, torch; print(f'cp{sys.version_info[0]}{sys.version_info[1]}', torch.__version__)")
  wheels=("$ROOT"/../shared/wheels/torch_scatter-*.whl "$ROOT"/../shared/wheels/torch_sparse-*.whl)
  if [ "$tag" = "cp311 2.13.0+cpu" ] && [ -f "${wheels[0]}" ] && [ -f "${wheels[1]}" ]; then
    pip_q --no-deps "${wheels[@]}"
  else
    echo "env.sh: no matching prebuilt torch_scatter/torch_sparse wheels for $tag; building from source" >&2
    pip_q --no-build-isolation torch_scatter torch_sparse
  fi
  pip_q torch_geometric
fi
"$PY" -c "import ogb, pandas" 2>/dev/null || pip_q ogb  # optional: tests cross-check OGB's reader/Evaluator
# The package and its C++ (and, with a CUDA torch, CUDA) extension; ninja rebuilds only what changed.
pip_q --no-build-isolation -e .
