"""Compile the all-pairs Triton kernels (triton/all_pairs.py) for a GPU without having one.

Sibling of ``aot_check`` (same pipeline: TTIR -> TTGIR -> LLVM -> PTX -> cubin through triton's
bundled ptxas), for the launch configurations ``all_pairs`` picks on a GPU.

    TRITON_INTERPRET=0 python -m scalevgae.ops.triton.aot_check_all_pairs [--arch 90]
"""

from __future__ import annotations

import os
import sys

import torch

from scalevgae.ops.triton.aot_check import _TT, make_compiler, run_cli

# (z dtype, F): 16 the usual VGAE latent size (row block in registers), 100 / 200 walk feature
# slices (200: two output feature blocks, no fused pass)
CASES = [(torch.float32, 16), (torch.float32, 200), (torch.float16, 16), (torch.bfloat16, 64),
         (torch.float64, 16), (torch.float64, 100)]


def compile_all(arch: int = 90, verbose: bool = True) -> list[tuple[str, str]]:
    """Compile each all-pairs kernel per case; returns (name, resources)."""
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise RuntimeError("aot_check_all_pairs needs TRITON_INTERPRET unset or 0")
    import triton

    from scalevgae.ops.triton import all_pairs as AP

    done: list[tuple[str, str]] = []
    comp = make_compiler(arch, done, verbose)

    for dtype, F in CASES:
        xt = _TT[dtype]
        acc = "fp64" if dtype == torch.float64 else "fp32"
        dc = AP._dot_consts(dtype)
        block, block_k, nw = AP._config(F, dtype)
        fo = AP._fo_block(F, dtype)
        single = F <= block_k
        types = dict(z_ptr="*" + xt, part_ptr="*fp64", out_ptr="*" + acc, N="i32", F="i32",
                     stride_r="i64", stride_f="i64", stride_or="i64")
        tag = f"{xt} F={F} B{block} K{block_k} w{nw}"
        comp(AP._softplus_sum_kernel, types, dict(dc, SINGLE_K=single, BLOCK=block, BLOCK_K=block_k), nw, tag)
        mm = dict(dc, SINGLE_K=single, BLOCK_M=block, BLOCK_N=block, BLOCK_K=block_k, BLOCK_FO=fo)
        comp(AP._sigmoid_matmul_kernel, types, dict(mm, WITH_SUM=False), nw, f"{tag} FO{fo}")
        if triton.cdiv(F, fo) == 1:  # the fused pass runs only with one output feature block
            comp(AP._sigmoid_matmul_kernel, types, dict(mm, WITH_SUM=True), nw, f"{tag} FO{fo} +sum")
    return done


def main(argv: list[str] | None = None) -> int:
    return run_cli(compile_all, "all-pairs kernel variants", __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
