// SVG_HD marks arithmetic helpers compiled for both host and device: the CPU kernels call the
// same functions the CUDA kernels run, so CPU tests exercise the GPU arithmetic.
#pragma once

#ifdef __CUDACC__
#define SVG_HD __host__ __device__
#else
#define SVG_HD
#endif
