// NCCL behind kernels/collective.h: gradient sums between the GPUs of a data-parallel job, one GPU per
// rank, on a stream of their own so they overlap the backward kernels still queued on the compute
// stream. Reached only through kernels/dispatch.cpp.
#pragma once

#include <memory>
#include <vector>

#include "kernels/collective.h"

namespace tuneserve::cuda {

std::vector<char> nccl_unique_id();
std::unique_ptr<GradientCollective> nccl_collective(int device, const std::vector<char>& unique_id, int rank, int size);

}  // namespace tuneserve::cuda
