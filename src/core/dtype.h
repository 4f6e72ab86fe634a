// Element types: the one DType enum of the project (safetensors files name them, kernels compute in
// F32 or BF16), the bf16 storage type, and the compute dtype a user picks (--dtype fp32|bf16).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace tuneserve {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char* dtype_name(DType dtype);  // safetensors' spelling: "F32", "BF16", ...
std::size_t dtype_size(DType dtype);  // bytes per element
std::optional<DType> dtype_from_name(std::string_view name);  // "F32" -> F32; nullopt when unknown

// bf16 storage: the top 16 bits of an fp32 (the layout of __nv_bfloat16 and AVX512-BF16).
struct Bf16 {
  std::uint16_t bits;
};

// Round to nearest even as AVX512-BF16's vcvtneps2bf16 does: NaN stays a (quiet) NaN, and
// subnormal inputs become signed zeros (the instruction treats them as zero). Written with selects,
// not branches, so a loop of it vectorises (the LayerNorm that writes its bf16 output relies on it).
inline Bf16 round_to_bf16(float x) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(x);
  const std::uint32_t nearest = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const std::uint32_t nan = (u >> 16) | 0x40u, zero = (u >> 16) & 0x8000u;
  return {static_cast<std::uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? nan
                                     : (u & 0x7f800000u) == 0     ? zero
                                                                   : nearest)};
}
inline float bf16_value(Bf16 x) { return std::bit_cast<float>(static_cast<std::uint32_t>(x.bits) << 16); }

// What the matrix products of a model compute in: fp32, or bf16 operands with fp32 accumulation.
// "fp32" | "bf16" (also "float32", "bfloat16"); a clear error naming the value otherwise.
DType parse_compute_dtype(std::string_view text);
const char* compute_dtype_name(DType dtype);  // "fp32" | "bf16"

}  // namespace tuneserve
