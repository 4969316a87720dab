#!/usr/bin/env bash
# The main job from a fresh clone: venv + install, then the propagation benchmark on the
# built-in graph (small sizes; pass --full for 10^5 and 10^6 nodes).
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$PY" benchmarks/bench_propagate.py "${@:---quick}"
