// fp32 <-> bf16 conversion on the CPU, the twin of kernels/cuda's to_bf16 / from_bf16: the operands
// of bf16 matrix products are rounded here (round to nearest even; core/dtype.h's round_to_bf16 is
// the reference, AVX512-BF16's vcvtne2ps2bf16 the fast path).
//
// Dimensions: n elements. Outputs are written (=).
#pragma once

#include <cstddef>

#include "core/dtype.h"

namespace tuneserve {

// out (n) = bf16 of inp (n), and back (exact: every bf16 is an fp32).
void to_bf16(Bf16* out, const float* inp, std::size_t n);
void from_bf16(float* out, const Bf16* inp, std::size_t n);

}  // namespace tuneserve
