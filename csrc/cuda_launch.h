// The one kernel-launch form of every .cu file:
//   SVG_LAUNCH(grid, block, shared_bytes, stream, kernel<T...>)(args...);
// is `kernel<T...><<<grid, block, shared_bytes, stream>>>(args...)` under nvcc and a launch on
// the CPU SIMT layer (csrc/cuda_sim/simt.h) when compiled as scalevgae._C_cuda_sim. The kernel
// goes last so template arguments may contain commas.
#pragma once

#ifdef SVG_CUDA_SIM
#include "cuda_sim/simt.h"
#define SVG_LAUNCH(grid, block, smem, stream, ...)                                       \
  ::svg_sim::Launch((grid), (block), (smem), (stream), #__VA_ARGS__, __FILE__, __LINE__) \
      .bind([](auto... svg_args) { __VA_ARGS__(svg_args...); })
#else
#define SVG_LAUNCH(grid, block, smem, stream, ...) \
  __VA_ARGS__<<<(grid), (block), (smem), (stream)>>>
#endif
