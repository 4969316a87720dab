#!/usr/bin/env bash
# Compile-only check of every CUDA source with nvcc for sm_90 (no GPU needed), and a static gate:
#  * a CUDA syntax or type error fails;
#  * any register spill or local-memory use fails (ptxas -warn-spills / -warn-lmem-usage
#    warnings, or a non-zero stack frame / spill count in --resource-usage);
#  * prints the registers of every kernel (min-max over its template instantiations), its largest
#    stack frame and spill stores, and the theoretical occupancy on sm_90 for the block size it is
#    launched with (README "Registers").
# Uses torch's headers from the active Python; the CPU torch wheel lacks the generated
# c10/cuda/impl/cuda_cmake_macros.h, so a one-line stub stands in for it.
#   CUDA_ARCH=sm_90 (default)   REGISTER_TABLE=path: also write the table there (markdown)
#   CUDA_SOURCES="csrc/cuda/propagate.cu": only those
#   DEVICE_ONLY=1: device code only (nvcc -cubin, no host compile): the same ptxas report, faster
#   extra nvcc flags through nvcc's own NVCC_APPEND_FLAGS, e.g. the README's register-cap
#   experiment: NVCC_APPEND_FLAGS=-DSVG_SPMM_MIN_BLOCKS=4
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
ARCH=${CUDA_ARCH:-sm_90}
if ! command -v nvcc >/dev/null 2>&1; then
  echo "check_cuda_compile: nvcc not found; skipping (CUDA sources not compiled)"
  exit 0
fi
shopt -s nullglob
# shellcheck disable=SC2206  # CUDA_SOURCES is a space-separated list
sources=(${CUDA_SOURCES:-csrc/cuda/*.cu})
if [ ${#sources[@]} -eq 0 ]; then echo "check_cuda_compile: no .cu files"; exit 0; fi
stub=$(mktemp -d)
trap 'rm -rf "$stub"' EXIT
mkdir -p "$stub/c10/cuda/impl"
echo '#define C10_CUDA_BUILD_SHARED_LIBS' > "$stub/c10/cuda/impl/cuda_cmake_macros.h"
mapfile -t incs < <($PY -c "from torch.utils.cpp_extension import include_paths; print('\n'.join(include_paths()))")
phase=-c
[ "${DEVICE_ONLY:-0}" = 1 ] && phase=-cubin
args=("$phase" -std=c++20 -O1 -arch="$ARCH" --expt-relaxed-constexpr -DWITH_CUDA -Icsrc -I"$stub"
      --resource-usage -Xptxas -warn-spills,-warn-lmem-usage)
for i in "${incs[@]}"; do args+=(-I"$i"); done
pyinc=$($PY -c "import sysconfig; print(sysconfig.get_paths()['include'])")
args+=(-I"$pyinc")
status=0
for src in "${sources[@]}"; do
  log="$stub/$(basename "$src").ptxas"
  if nvcc "${args[@]}" "$src" -o "$stub/$(basename "$src").o" >"$log" 2>&1; then
    if grep -Eq 'ptxas warning|[1-9][0-9]* bytes (stack frame|spill)' "$log"; then
      echo "check_cuda_compile: FAIL $src (register spills or local memory):"
      grep -E -B2 'ptxas warning|[1-9][0-9]* bytes (stack frame|spill)' "$log" | c++filt | head -40
      status=1
    else
      echo "check_cuda_compile: OK   $src (no spills, no local memory)"
    fi
  else
    cat "$log"
    echo "check_cuda_compile: FAIL $src"; status=1
  fi
done
# Registers per kernel and the theoretical occupancy on sm_90 (65536 registers and 64 warps per SM,
# 32 blocks per SM, registers allocated per warp in units of 256 after rounding to 8 per thread).
cat > "$stub/table.py" <<'EOF'
import re
import sys

# Threads per block each kernel is launched with (csrc/cuda/*.cu).
BLOCK = {"gcn_spmm_chunks_kernel": 256, "gcn_spmm_fixup_kernel": 256, "gcn_spmm_partition_kernel": 256}
rows, local, name, frame = {}, {}, None, (0, 0)
for line in sys.stdin:
    m = re.search(r"Compiling entry function '(.+)' for", line)
    if m:
        name, frame = m.group(1), (0, 0)
        continue
    m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores", line)
    if m and name:
        frame = (int(m.group(1)), int(m.group(2)))
        continue
    m = re.search(r"Used (\d+) registers", line)
    if m and name:
        k = re.search(r"(\w+_kernel)\b(<(\d+))?", name)  # demangled: ...::gcn_spmm_chunks_kernel<8, c10::Half, ...
        key = k.group(1) if k else name
        if key == "gcn_spmm_chunks_kernel" and k.group(3):  # one row per vector width (V=8: half/bf16)
            key = f"{key} (V={k.group(3)})"
        rows.setdefault(key, []).append(int(m.group(1)))
        local[key] = tuple(max(a, b) for a, b in zip(local.get(key, (0, 0)), frame))
        name = None


def occupancy(regs: int, threads: int) -> float:
    warps = (threads + 31) // 32
    per_warp = ((max(regs, 1) + 7) // 8 * 8 * 32 + 255) // 256 * 256
    blocks = min(65536 // per_warp // warps, 32, 64 // warps)
    return blocks * warps / 64


out = ["| kernel | instantiations | registers | stack / spill stores (bytes, max) | block | occupancy (sm_90) |",
       "|---|---|---|---|---|---|"]
for key in sorted(rows):
    regs = rows[key]
    threads = BLOCK.get(key.split(" ")[0], 256)
    lo, hi = min(regs), max(regs)
    occ = f"{occupancy(hi, threads):.0%}" if lo == hi else f"{occupancy(hi, threads):.0%}-{occupancy(lo, threads):.0%}"
    out.append(f"| {key} | {len(regs)} | {lo}-{hi} | {local[key][0]} / {local[key][1]} | {threads} | {occ} |")
print("\n".join(out))
if len(sys.argv) > 1 and sys.argv[1]:
    with open(sys.argv[1], "w") as f:
        f.write("\n".join(out) + "\n")
EOF
cat "$stub"/*.ptxas | c++filt > "$stub/ptxas.txt"
[ -n "${REGISTER_TABLE:-}" ] && cp "$stub/ptxas.txt" "$REGISTER_TABLE.ptxas.txt"  # the raw ptxas report
"$PY" "$stub/table.py" "${REGISTER_TABLE:-}" < "$stub/ptxas.txt"
exit $status
