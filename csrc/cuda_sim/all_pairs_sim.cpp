// csrc/cuda/all_pairs.cu compiled by g++ onto the CPU SIMT layer (scalevgae._C_cuda_sim).
#include "cuda_sim/simt.h"

#include "cuda/all_pairs.cu"
