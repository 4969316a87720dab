#!/usr/bin/env bash
# The main job from a fresh clone: venv + install, then a short VGAE training on the built-in
# synthetic graph (minibatch mode, sampled neighborhoods, fused kernels), writing runs/demo/.
# Extra arguments go to `scalevgae train` (e.g. --nodes 1000000 --steps 20).
set -euo pipefail
source "$(dirname "$0")/env.sh"
# --overwrite: each demo replaces the previous runs/demo (metrics.json there has every figure).
"$PY" -m scalevgae train --dataset synthetic --nodes 20000 --mode minibatch --epochs 3 --out runs/demo --overwrite "$@"
