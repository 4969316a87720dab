// cuda_sim stand-in for c10/cuda/CUDAGuard.h: kernels run on the CPU, there is no device to set.
#pragma once

#include <c10/core/Device.h>
#include <c10/util/Optional.h>

namespace c10 {
namespace cuda {
struct CUDAGuard {
  explicit CUDAGuard(c10::Device) {}
  explicit CUDAGuard(c10::DeviceIndex) {}
};
struct OptionalCUDAGuard {
  OptionalCUDAGuard() = default;
  explicit OptionalCUDAGuard(std::optional<c10::Device>) {}
};
}  // namespace cuda
}  // namespace c10
