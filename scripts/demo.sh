#!/usr/bin/env bash
# The main job from a fresh clone: venv + install, then a short VGAE training on the built-in
# synthetic graph (minibatch mode, sampled neighborhoods, fused kernels), writing runs/demo/.
# Extra arguments go to `scalevgae train` (e.g. --nodes 1000000 --steps 20).
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$PY" -m scalevgae train --dataset synthetic --nodes 20000 --mode minibatch --epochs 3 --out runs/demo "$@"
echo "--- runs/demo/metrics.json"
"$PY" -c "import json; m = json.load(open('runs/demo/metrics.json')); print({k: m[k] for k in ('test_auc', 'test_ap', 'val_auc', 'seconds', 'train_pairs_per_s')})"
