// NCCL all-reduce for data-parallel gradients (kernels/cuda/nccl.h). Each sum waits, on the
// communication stream, for an event recorded on the compute stream when it was queued (the backward
// kernels that wrote the bucket), and wait() makes the compute stream wait for the last sum: the host
// never blocks, and the optimizer's kernels run after the sums.
//
// Dimensions: n floats per sum.
#include "kernels/cuda/nccl.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>

#include "core/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/runtime.h"

namespace tuneserve::cuda {

namespace {

void check_nccl(ncclResult_t result, const char* what) {
  if (result != ncclSuccess) fail("NCCL: {}: {}", what, ncclGetErrorString(result));
}

class NcclCollective final : public GradientCollective {
 public:
  NcclCollective(int device, const std::vector<char>& unique_id, int rank, int size) {
    if (unique_id.size() != sizeof(ncclUniqueId))
      fail("NCCL: the unique id has {} bytes, not {}", unique_id.size(), sizeof(ncclUniqueId));
    set_device(device);
    ncclUniqueId id;
    std::memcpy(&id, unique_id.data(), sizeof id);
    check_nccl(ncclCommInitRank(&comm_, size, id, rank), "ncclCommInitRank");
    TUNESERVE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    TUNESERVE_CUDA_CHECK(cudaEventCreateWithFlags(&queued_, cudaEventDisableTiming));
    TUNESERVE_CUDA_CHECK(cudaEventCreateWithFlags(&summed_, cudaEventDisableTiming));
  }
  ~NcclCollective() override {
    // Errors here resurface at the next checked call; a destructor must not throw.
    cudaStreamSynchronize(stream_);
    ncclCommDestroy(comm_);
    cudaEventDestroy(summed_);
    cudaEventDestroy(queued_);
    cudaStreamDestroy(stream_);
  }
  NcclCollective(const NcclCollective&) = delete;
  NcclCollective& operator=(const NcclCollective&) = delete;

  void start(float* data, std::size_t n) override {
    TUNESERVE_CUDA_CHECK(cudaEventRecord(queued_, current_stream()));
    TUNESERVE_CUDA_CHECK(cudaStreamWaitEvent(stream_, queued_, 0));
    check_nccl(ncclAllReduce(data, data, n, ncclFloat, ncclSum, comm_, stream_), "ncclAllReduce");
  }
  double wait() override {
    TUNESERVE_CUDA_CHECK(cudaEventRecord(summed_, stream_));
    TUNESERVE_CUDA_CHECK(cudaStreamWaitEvent(current_stream(), summed_, 0));
    return 0.0;  // the host does not block; the compute stream waits
  }
  bool gather_sparse_rows() const override { return false; }

 private:
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t queued_ = nullptr, summed_ = nullptr;
};

}  // namespace

std::vector<char> nccl_unique_id() {
  ncclUniqueId id;
  check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  std::vector<char> out(sizeof id);
  std::memcpy(out.data(), &id, sizeof id);
  return out;
}

std::unique_ptr<GradientCollective> nccl_collective(int device, const std::vector<char>& unique_id, int rank, int size) {
  return std::make_unique<NcclCollective>(device, unique_id, rank, size);
}

}  // namespace tuneserve::cuda
