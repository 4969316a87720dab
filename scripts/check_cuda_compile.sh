#!/usr/bin/env bash
# Compile-only check of every CUDA source with nvcc (no GPU needed): a CUDA syntax or type
# error fails. Uses torch's headers from the active Python; the CPU torch wheel lacks the
# generated c10/cuda/impl/cuda_cmake_macros.h, so a one-line stub stands in for it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if ! command -v nvcc >/dev/null 2>&1; then
  echo "check_cuda_compile: nvcc not found; skipping (CUDA sources not compiled)"
  exit 0
fi
shopt -s nullglob
sources=(csrc/cuda/*.cu)
if [ ${#sources[@]} -eq 0 ]; then echo "check_cuda_compile: no .cu files"; exit 0; fi
stub=$(mktemp -d)
trap 'rm -rf "$stub"' EXIT
mkdir -p "$stub/c10/cuda/impl"
echo '#define C10_CUDA_BUILD_SHARED_LIBS' > "$stub/c10/cuda/impl/cuda_cmake_macros.h"
mapfile -t incs < <($PY -c "from torch.utils.cpp_extension import include_paths; print('\n'.join(include_paths()))")
args=(-c -std=c++20 -O1 -arch=sm_90 --expt-relaxed-constexpr -DWITH_CUDA -Icsrc -I"$stub")
for i in "${incs[@]}"; do args+=(-I"$i"); done
pyinc=$($PY -c "import sysconfig; print(sysconfig.get_paths()['include'])")
args+=(-I"$pyinc")
status=0
for src in "${sources[@]}"; do
  if nvcc "${args[@]}" "$src" -o "$stub/$(basename "$src").o"; then
    echo "check_cuda_compile: OK   $src"
  else
    echo "check_cuda_compile: FAIL $src"; status=1
  fi
done
exit $status
