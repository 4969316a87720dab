// cuda_sim stand-in for c10/cuda/CUDAStream.h: one null stream; launches run synchronously.
#pragma once

#include <c10/core/Device.h>

#include "cuda_sim/simt.h"
#include "c10/cuda/CUDAException.h"

namespace c10 {
namespace cuda {
struct CUDAStream {
  cudaStream_t stream() const { return nullptr; }
  operator cudaStream_t() const { return nullptr; }
};
inline CUDAStream getCurrentCUDAStream(c10::DeviceIndex = -1) { return {}; }
inline CUDAStream getDefaultCUDAStream(c10::DeviceIndex = -1) { return {}; }
}  // namespace cuda
}  // namespace c10
