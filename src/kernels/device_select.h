// Which device a command runs on: the one place where a --device value (train, eval, predict,
// serve) and, for a SageMaker training job, SM_NUM_GPUS become a Device, checked usable before any
// data or model is loaded, so a bad value or a CPU-only build fails in the first second.
//
// Rules: an explicit value wins and must be usable (an error otherwise, never a silent fallback).
// With none given, a SageMaker job with SM_NUM_GPUS > 0 trains on cuda:0 (cuda:<local rank> for a
// rank of an MPI job) when this build sees a GPU, else on the CPU with a note saying why (a CPU-only
// build on a GPU instance still trains).
// Everything else runs on the CPU.
#pragma once

#include <string>

#include "kernels/device.h"

namespace tuneserve {

struct DeviceRequest {
  std::string value{};              // as given ("cpu", "cuda", "cuda:N"); empty: not given
  std::string source = "--device";  // names where `value` came from in errors
  int sagemaker_gpus = 0;           // SM_NUM_GPUS of a training job; 0: none or not a job
  // A data-parallel rank's index among the ranks on its host: "cuda" and the SageMaker choice mean
  // cuda:<local_rank> (one GPU per rank); an explicit cuda:N is kept.
  int local_rank = 0;
};

struct DeviceChoice {
  Device device;
  std::string note;  // one line for the user when the device was not asked for explicitly; else empty
};

// The decision alone, given the GPUs this process sees (`gpus`, and `why_none` when 0, as
// cuda_device_count reports them). Throws Error "<source>: device '<value>': ..." for a malformed value.
DeviceChoice resolve_device(const DeviceRequest& request, int gpus, const std::string& why_none);

// resolve_device with this machine's GPUs, then require_device on the result: throws Error
// "<source>: device 'cuda:0': tuneserve was built without CUDA; ..." when it cannot be used.
DeviceChoice select_device(const DeviceRequest& request);

}  // namespace tuneserve
