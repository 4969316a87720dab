// cuda_sim stand-in for c10/cuda/CUDAException.h: launch errors are thrown by the emulator itself.
#pragma once

#define C10_CUDA_KERNEL_LAUNCH_CHECK() \
  do {                                 \
  } while (0)
#define C10_CUDA_CHECK(expr) \
  do {                       \
    (void)(expr);            \
  } while (0)
