# Sourced by scripts/demo.sh and scripts/test.sh: create or reuse the virtualenv and install
# what scalevgae needs, then build the extension. Safe to run again (everything is reused).
#   SCALEVGAE_VENV   venv directory (default .venv)
#   SCALEVGAE_SKIP_PYG=1  do not install torch_scatter/torch_sparse/torch_geometric
#   TORCH_SPEC       torch requirement (default torch==2.13.0, the local CPU wheel on this machine;
#                    on a GPU machine install a CUDA torch in the venv first, it is kept)
#   SCALEVGAE_REBUILD=1   rebuild the extension even when its build stamp is unchanged
# The build is skipped when a stamp of csrc/, setup.py, pyproject.toml, Python/torch versions and
# the build switches (SCALEVGAE_CUDA_SIM, SCALEVGAE_SANITIZE, FORCE_CUDA, FORCE_ONLY_CPU, DEBUG,
# SCALEVGAE_NO_EXT, CUDA_HOME) matches the last successful build of this checkout.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${SCALEVGAE_VENV:-.venv}
say() { echo "env.sh: $*" >&2; }
if [ ! -x "$VENV/bin/python" ]; then
  say "creating the virtualenv $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
PY="$ROOT/$VENV/bin/python"
[ -x "$PY" ] || PY="$VENV/bin/python"
export PY
pip_q() { "$PY" -m pip install -q --disable-pip-version-check "$@"; }
if ! "$PY" -c "import torch" 2>/dev/null; then
  say "installing ${TORCH_SPEC:-torch==2.13.0} (a minute or more)"
  pip_q "${TORCH_SPEC:-torch==2.13.0}"
fi
if ! "$PY" -c "import numpy, scipy, pytest, ruff, ninja, tqdm, sklearn, matplotlib, triton" 2>/dev/null; then
  say "installing numpy scipy pytest ruff ninja tqdm scikit-learn matplotlib triton"
  pip_q numpy scipy pytest ruff ninja tqdm scikit-learn matplotlib triton
fi
# torch_scatter / torch_sparse: the prebuilt wheels in ../shared/wheels when they match this
# Python and torch; otherwise a source build (tens of minutes on 2 cores).
if [ "${SCALEVGAE_SKIP_PYG:-0}" != "1" ] && ! "$PY" -c "import torch_sparse, torch_scatter, torch_geometric" 2>/dev/null; then
  tag=$("$PY" -c "import sys, torch; print(f'cp{sys.version_info[0]}{sys.version_info[1]}', torch.__version__)")
  wheels=("$ROOT"/../shared/wheels/torch_scatter-*.whl "$ROOT"/../shared/wheels/torch_sparse-*.whl)
  if [ "$tag" = "cp311 2.13.0+cpu" ] && [ -f "${wheels[0]}" ] && [ -f "${wheels[1]}" ]; then
    say "installing torch_scatter/torch_sparse from ../shared/wheels"
    pip_q --no-deps "${wheels[@]}"
  else
    echo "env.sh: no matching prebuilt torch_scatter/torch_sparse wheels for $tag; building from source" >&2
    pip_q --no-build-isolation torch_scatter torch_sparse
  fi
  say "installing torch_geometric"
  pip_q torch_geometric
fi
# Optional: tests cross-check OGB's reader/Evaluator. Without its `outdated` dependency, which would
# look up ogb's latest version online at every import.
"$PY" -c "import ogb, pandas" 2>/dev/null || { pip_q --no-deps ogb && pip_q pandas six; }
# The package and its C++ (and, with a CUDA torch, CUDA) extension, rebuilt only when the stamp changed.
build_stamp() {
  {
    "$PY" -c "import sys, torch; print(sys.version, torch.__version__, torch.version.cuda)"
    for v in SCALEVGAE_CUDA_SIM SCALEVGAE_SANITIZE FORCE_CUDA FORCE_ONLY_CPU DEBUG SCALEVGAE_NO_EXT CUDA_HOME; do
      echo "$v=${!v:-}"
    done
    echo "$ROOT"
    find csrc setup.py pyproject.toml -type f -print0 2>/dev/null | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -d' ' -f1
}
STAMP_FILE="$VENV/.scalevgae-build-stamp"
stamp=$(build_stamp)
built() {  # this checkout is the installed one, and its extension exists unless SCALEVGAE_NO_EXT
  "$PY" -c "import os, sys, scalevgae; sys.exit(0 if os.path.realpath(scalevgae.__file__).startswith(
    os.path.realpath(sys.argv[1]) + os.sep) else 1)" "$ROOT" 2>/dev/null &&
    { [ "${SCALEVGAE_NO_EXT:-0}" = "1" ] || compgen -G "scalevgae/_C*.so" >/dev/null; }
}
if [ "${SCALEVGAE_REBUILD:-0}" != "1" ] && [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$stamp" ] && built; then
  say "extension up to date (csrc/, setup.py, torch and build switches unchanged): no rebuild"
else
  say "building scalevgae and its C++ extension (pip install -e .; about 4 min on 2 cores) ..."
  t0=$SECONDS
  pip_q --no-build-isolation -e .
  echo "$stamp" > "$STAMP_FILE"
  say "build done in $((SECONDS - t0)) s"
fi
