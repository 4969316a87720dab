"""Build scalevgae and its optional C++/CUDA extension ``scalevgae._C``.

Environment switches:
  FORCE_CUDA=1      build the CUDA kernels even if no GPU is visible (needs CUDA_HOME + a CUDA torch)
  FORCE_ONLY_CPU=1  never build the CUDA kernels
  DEBUG=1           -O0 -g instead of -O3
  SCALEVGAE_NO_EXT=1  skip the extension entirely (pure-Python install, reference backend only)
  SCALEVGAE_CUDA_SIM=1  also build scalevgae._C_cuda_sim: the csrc/cuda/*.cu kernels compiled by g++
                    onto the CPU SIMT layer (csrc/cuda_sim/simt.h), so CI runs them without a GPU
  SCALEVGAE_SANITIZE=address,undefined | thread  build only _C_cuda_sim, with those sanitizers
                    (scripts/sanitize_cuda_sim.sh builds it into build/sanitize-*/ and runs it)
"""

import glob
import os

from setuptools import find_packages, setup


def _flag(name: str) -> bool:
    return os.environ.get(name, "0") not in ("", "0", "false", "False")


def _cuda_sim_extension(ext_cls, root: str, csrc: str, debug: bool):
    """scalevgae._C_cuda_sim: csrc/cuda_sim/*.cpp (the .cu kernels included into C++20 TUs and the
    SIMT runtime) plus ops.cpp's schemas under torch.ops.scalevgae_cuda_sim (SVG_CUDA_SIM)."""
    sim = os.path.join(csrc, "cuda_sim")
    sources = sorted(glob.glob(os.path.join(sim, "*.cpp")))
    # -O1: the emulator checks behaviour, not speed; no debug info outside the sanitizer builds.
    cxx = (["-O0", "-g"] if debug else ["-O1"]) + ["-std=c++20", "-Wno-unknown-pragmas"]
    link = []
    sanitize = os.environ.get("SCALEVGAE_SANITIZE", "")
    if sanitize:
        flags = [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-g", "-fno-sanitize-recover=all"]
        cxx += flags
        link += flags
    elif not debug:
        cxx.append("-g0")
    return ext_cls(
        "scalevgae._C_cuda_sim",
        [os.path.relpath(s, root) for s in sources],
        include_dirs=[os.path.join(sim, "include"), csrc],
        define_macros=[("SVG_CUDA_SIM", None)],
        extra_compile_args={"cxx": cxx},
        extra_link_args=link,
    )


def _extensions():
    if _flag("SCALEVGAE_NO_EXT"):
        return [], {}
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

    debug = _flag("DEBUG")
    with_cuda = (
        not _flag("FORCE_ONLY_CPU")
        and CUDA_HOME is not None
        and torch.version.cuda is not None
        and (torch.cuda.is_available() or _flag("FORCE_CUDA"))
    )
    root = os.path.dirname(os.path.abspath(__file__))
    csrc = os.path.join(root, "csrc")
    sources = sorted(glob.glob(os.path.join(csrc, "*.cpp")) + glob.glob(os.path.join(csrc, "cpu", "*.cpp")))
    opt = ["-O0", "-g"] if debug else ["-O3"]
    cxx = opt + ["-fopenmp", "-std=c++17"]
    define_macros = []
    ext_cls = CppExtension
    extra = {"cxx": cxx}
    if with_cuda:
        sources += sorted(glob.glob(os.path.join(csrc, "cuda", "*.cu")))
        define_macros.append(("WITH_CUDA", None))
        extra["nvcc"] = opt + ["-std=c++17", "--expt-relaxed-constexpr", "-lineinfo"]
        ext_cls = CUDAExtension
    ext = ext_cls(
        "scalevgae._C",
        [os.path.relpath(s, root) for s in sources],
        include_dirs=[csrc],
        define_macros=define_macros,
        extra_compile_args=extra,
        extra_link_args=["-fopenmp"],
    )
    exts = [] if os.environ.get("SCALEVGAE_SANITIZE") else [ext]
    if _flag("SCALEVGAE_CUDA_SIM") or os.environ.get("SCALEVGAE_SANITIZE"):
        exts.append(_cuda_sim_extension(CppExtension, root, csrc, debug))
    return exts, {"build_ext": BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = _extensions()

setup(
    name="scalevgae",
    version="0.1.0",
    description="Variational Graph Auto-Encoders on million-node graphs with fused C++/CUDA/Triton kernels",
    packages=find_packages(include=["scalevgae", "scalevgae.*"]),
    python_requires=">=3.9",
    install_requires=["torch>=2.4", "numpy"],
    extras_require={
        "triton": ["triton"],
        "pyg": ["torch_scatter", "torch_sparse", "torch_geometric"],
        "test": ["pytest", "scipy", "scikit-learn", "ruff", "ogb"],
        "bench": ["scipy", "tqdm"],
        "plot": ["matplotlib"],
        "ogb": ["ogb"],  # only to cross-check against OGB's reader and Evaluator; never needed to train
    },
    entry_points={"console_scripts": ["scalevgae=scalevgae.cli:main"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
