#!/usr/bin/env bash
# Builds scalevgae._C_cuda_sim with sanitizers and runs a reduced set of CUDA-kernel-vs-CPU checks
# (tests/cuda_sim/sanitizer_checks.py: every kernel of csrc/cuda) on the CPU SIMT emulator:
#   bash scripts/sanitize_cuda_sim.sh address   # ASan + UBSan (CI runs it: tests/test_cuda_sim_sanitize.py)
#   bash scripts/sanitize_cuda_sim.sh thread    # TSan, 4 blocks at once (races between blocks)
# The build lives in build/sanitize-<kind>/ (ninja: incremental); the checks run in a fresh Python
# with the sanitizer runtime preloaded. Exit status: the checks' (a sanitizer report aborts them).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
kind=${1:-address}
case $kind in
  address) flags=address,undefined runtime=libasan.so blocks=2 ;;
  thread) flags=thread runtime=libtsan.so blocks=4 ;;
  *) echo "usage: $0 address|thread" >&2; exit 2 ;;
esac
out=build/sanitize-$kind
SCALEVGAE_SANITIZE=$flags "$PY" setup.py -q build_ext --build-lib "$out/lib" --build-temp "$out/tmp"
so=$(ls "$out"/lib/scalevgae/_C_cuda_sim*.so)
preload=$("${CXX:-g++}" -print-file-name="$runtime")
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66}
echo "sanitize_cuda_sim: $flags, $so"
LD_PRELOAD=$preload "$PY" tests/cuda_sim/sanitizer_checks.py --so "$so" --blocks $blocks --seed 3 "${@:2}"
