// csrc/cuda/decode.cu compiled by g++ onto the CPU SIMT layer (scalevgae._C_cuda_sim).
#include "cuda_sim/simt.h"

#include "cuda/decode.cu"
