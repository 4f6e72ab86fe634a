// Summing gradient buffers across the ranks of a data-parallel job, in device memory: the one
// interface behind which MPI (host memory; train/distributed.cpp) and NCCL (GPUs; kernels/cuda/nccl.cpp)
// sit. NCCL is reached only through nccl_collective() here, so nothing above kernels/ names CUDA.
//
// Dimensions: n floats per sum, W ranks.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "core/device.h"

namespace tuneserve {

class GradientCollective {
 public:
  virtual ~GradientCollective() = default;
  // Queues an in-place sum across every rank of `n` floats at `data` (memory of the device the
  // collective was made for). Sums run in the order queued; every rank queues the same sizes in the
  // same order. Returns at once; `data` must not be touched until wait().
  virtual void start(float* data, std::size_t n) = 0;
  // Returns once every queued sum has landed (on a GPU: ordered before any work queued later on the
  // device's stream). Returns the seconds this thread spent blocked.
  virtual double wait() = 0;
  // True where moving bytes costs more than gathering the non-zero rows of a sparse gradient first
  // (host memory, TCP between hosts); false where sums are cheap next to row copies (NVLink).
  virtual bool gather_sparse_rows() const = 0;
};

// NCCL's bootstrap token (ncclUniqueId's bytes): made by one rank, sent to the others by MPI.
std::vector<char> nccl_unique_id();
// A NCCL communicator of `size` ranks on `device` (each rank its own GPU); every rank passes the same
// `unique_id`. Throws "built without CUDA ..." in a CPU-only build, or NCCL's error.
std::unique_ptr<GradientCollective> nccl_collective(const Device& device, const std::vector<char>& unique_id, int rank,
                                                    int size);

}  // namespace tuneserve
