"""Compile every Triton kernel of scalevgae for a GPU without having one (ahead of time).

The interpreter (TRITON_INTERPRET=1) checks what the kernels compute but not that they compile:
it accepts code the real compiler rejects. This lowers each kernel, for the launch configurations
the host code picks, through Triton's NVIDIA pipeline (TTIR -> TTGIR -> LLVM -> PTX -> cubin via
the ptxas bundled with triton) for a given SM architecture, and reports registers and spills.

    TRITON_INTERPRET=0 python -m scalevgae.ops.triton.aot_check [--arch 90]

Must run with TRITON_INTERPRET unset or 0 (the kernels must be real JITFunctions).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

import torch

_TT = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.float64: "fp64"}


def _resources(cubin: bytes) -> str:
    """'REG:n ... LOCAL:n' from the bundled cuobjdump, or '' when it is not there."""
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    if not os.path.exists(tool):
        return ""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
    m = re.search(r"REG:(\d+).*?SHARED:(\d+).*?LOCAL:(\d+)", out)
    return f"regs {m.group(1)} shared {m.group(2)} local(spill) {m.group(3)}" if m else ""


def make_compiler(arch: int, done: list[tuple[str, str]], verbose: bool) -> Any:
    """``comp(fn, types, consts, num_warps, tag)``: compile one kernel variant for sm_<arch> and
    append ``(name[tag], resources)`` to ``done`` (shared with ``aot_check_all_pairs``)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    target = GPUTarget("cuda", arch, 32)

    def comp(fn: Any, types: dict[str, str], consts: dict[str, Any], num_warps: int, tag: str) -> None:
        sig = {n: ("constexpr" if n in consts else types[n]) for n in fn.arg_names}
        t = time.perf_counter()
        k = triton.compile(ASTSource(fn, sig, consts), target=target, options=dict(num_warps=num_warps))
        res = _resources(k.asm["cubin"])
        done.append((f"{fn.__name__}[{tag}]", res))
        if verbose:
            print(f"sm_{arch} {fn.__name__:26s} {tag:36s} {time.perf_counter() - t:5.1f}s  {res}", flush=True)

    return comp


def compile_all(arch: int = 90, verbose: bool = True) -> list[tuple[str, str]]:
    """Compile each kernel for several dtype / index / tile configurations; returns (name, resources)."""
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise RuntimeError("aot_check needs TRITON_INTERPRET unset or 0")
    import triton.language as tl

    from scalevgae.ops.triton import decode as D
    from scalevgae.ops.triton import propagate as P

    done: list[tuple[str, str]] = []
    comp = make_compiler(arch, done, verbose)

    cases = [(torch.float32, "i64", 64, 16.0), (torch.float16, "i32", 16, 16.0),
             (torch.bfloat16, "i64", 256, 4.0), (torch.float64, "i32", 100, 40.0)]
    for dtype, it, F, avg_deg in cases:
        xt = _TT[dtype]
        acc = "fp64" if dtype == torch.float64 else "fp32"
        ACC = tl.float64 if acc == "fp64" else tl.float32
        block_f, block_e, nw = P._launch_config(F, avg_deg, torch.empty(0, dtype=dtype).element_size())
        tag = f"{xt} {it} F={F} E{block_e}xF{block_f} w{nw}"
        p = lambda t: "*" + t
        types = dict(rowptr_ptr=p(it), col_ptr=p(it), x_ptr=p(xt), rs_ptr=p(acc), cs_ptr=p(acc), ss_ptr=p(acc), w_ptr=p(acc),
                     bias_ptr=p(acc), y_ptr=p(xt), n_x="i32", F="i32", n_fb="i32", long_thresh="i64",
                     stride_xr="i64", stride_xf="i32", stride_yr="i32", chunk_start_ptr="*i64",
                     chunk_end_ptr="*i64", part_ptr=p(acc), long_rows_ptr="*i64", cptr_ptr="*i64")
        flags = dict(SELF_LOOPS=True, HAS_RS=True, HAS_CS=True, HAS_SS=True, HAS_BIAS=True, RELU=True, ACC=ACC)
        comp(P._rows_kernel, types, dict(flags, HAS_W=False, BLOCK_E=block_e, BLOCK_F=block_f), nw, tag)
        comp(P._rows_kernel, types, dict(flags, HAS_W=True, BLOCK_E=block_e, BLOCK_F=block_f), nw, tag + " +w")
        ce = max(block_e, min(64, 4096 // block_f))
        cw = max(1, min(8, ce * block_f // 512))
        comp(P._chunk_kernel, types, dict(HAS_CS=True, HAS_W=False, ACC=ACC, BLOCK_E=ce, BLOCK_F=block_f),
             cw, f"{xt} {it} F={F} E{ce}xF{block_f} w{cw}")
        comp(P._long_rows_kernel, types, dict(flags, BLOCK_C=32, BLOCK_F=block_f), nw, tag)
        dtypes = dict(z_ptr=p(xt), src_ptr=p(it), dst_ptr=p(it), out_ptr=p(acc), coef_ptr=p(acc), dz_ptr=p(acc),
                      E="i64", F="i32", n_fb="i32", stride_zr="i64", stride_zf="i64")
        dot_f, dot_e = D._dot_config(F)
        comp(D._edge_dot_kernel, dtypes, dict(ACC=ACC, BLOCK_E=dot_e, BLOCK_F=dot_f), 4,
             f"{xt} {it} F={F} E{dot_e}xF{dot_f} w4")
        g_f, g_e = D._grad_config(F)
        comp(D._edge_grad_atomic_kernel, dtypes, dict(ACC=ACC, BLOCK_E=g_e, BLOCK_F=g_f), 4,
             f"{xt} {it} F={F} E{g_e}xF{g_f} w4")
    return done


def run_cli(compile_fn: Any, what: str, description: str, argv: list[str] | None = None) -> int:
    """``--arch N``: compile with ``compile_fn(arch)`` and print how many ``what`` compiled."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--arch", type=int, default=90, help="SM architecture, e.g. 80, 90")
    args = ap.parse_args(argv)
    n = len(compile_fn(args.arch))
    print(f"compiled {n} {what} for sm_{args.arch}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(compile_all, "kernel variants", __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
