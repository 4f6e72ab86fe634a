// The CUDA Backend table (kernels/backend.h) over this folder's kernels; kernels/dispatch.cpp is its one
// user (backend_for), compiled only with -DTUNESERVE_CUDA=ON.
//
// Dimensions: none (see kernels/backend.h).
#pragma once

#include "kernels/backend.h"

namespace tuneserve::cuda {

// The table for cuda:0 (backend_for copies it per ordinal; the functions act on the current GPU).
const Backend& backend();

}  // namespace tuneserve::cuda
