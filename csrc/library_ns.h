// Which torch op namespace and dispatch key this translation unit registers into.
//   default (nvcc / the C++ extension):  TORCH_LIBRARY(scalevgae), .cu kernels under CUDA
//   SVG_CUDA_SIM (scalevgae._C_cuda_sim, see csrc/cuda_sim/): TORCH_LIBRARY(scalevgae_cuda_sim),
//   the same .cu kernels, compiled by g++ onto the CPU SIMT layer, under the CPU key.
// The SVG_ wrappers expand SVG_NS before TORCH_LIBRARY pastes it into identifiers.
#pragma once

#include <torch/library.h>

#ifndef SVG_NS
#ifdef SVG_CUDA_SIM
#define SVG_NS scalevgae_cuda_sim
#else
#define SVG_NS scalevgae
#endif
#endif

#ifdef SVG_CUDA_SIM
#define SVG_CUDA_KEY CPU
#else
#define SVG_CUDA_KEY CUDA
#endif

#define SVG_LIBRARY(ns, m) TORCH_LIBRARY(ns, m)
#define SVG_LIBRARY_IMPL(ns, key, m) TORCH_LIBRARY_IMPL(ns, key, m)
