// OpenCL C source of the backend's kernels, compiled once per device (see OpenclDevice::program).
#pragma once

#include <string_view>

namespace mixserve::opencl {

/// The whole kernel program as OpenCL C 1.2 source (needs no extension: fp16 weights are read
/// with vload_half, which is core).
std::string_view kernel_source();

/// Kernel names in kernel_source().
inline constexpr const char* kQuantizeQ8_0Kernel = "quantize_q8_0";
inline constexpr const char* kMatMulF32Kernel = "matmul_f32";
inline constexpr const char* kMatMulF16Kernel = "matmul_f16";
inline constexpr const char* kMatMulQ8_0Kernel = "matmul_q8_0";
inline constexpr const char* kMatMulQ4_0Kernel = "matmul_q4_0";
/// Token-tiled mat_mul kernels (kMatMulTokenTile tokens per work-item), for n_tok >= the tile.
inline constexpr const char* kMatMulF32TiledKernel = "matmul_f32_tiled";
inline constexpr const char* kMatMulF16TiledKernel = "matmul_f16_tiled";
inline constexpr const char* kMatMulQ8_0TiledKernel = "matmul_q8_0_tiled";
inline constexpr const char* kMatMulQ4_0TiledKernel = "matmul_q4_0_tiled";
inline constexpr const char* kRmsNormKernel = "rms_norm";
inline constexpr const char* kSwiGLUKernel = "swiglu";
inline constexpr const char* kAddKernel = "add_f32";

/// Tokens one work-item of a tiled mat_mul kernel computes (reusing each weight load); passed
/// to the program as -DTOKEN_TILE=<n>.
inline constexpr int kMatMulTokenTile = 4;

/// Values per Q8_0/Q4_0 block and bytes per block (must match src/quant/quant.h).
inline constexpr int kBlockElems = 32;
/// Bytes of one Q8_0 block: fp16 scale + 32 int8.
inline constexpr int kQ8_0BlockBytes = 34;
/// Bytes of one Q4_0 block: fp16 scale + 16 bytes of nibbles.
inline constexpr int kQ4_0BlockBytes = 18;

}  // namespace mixserve::opencl
