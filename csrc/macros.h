#pragma once
// Functions shared by the CPU and CUDA kernels are written once, for both.
#ifdef __CUDACC__
#define HYPERDML_HD __host__ __device__ __forceinline__
#else
#define HYPERDML_HD inline
#endif
