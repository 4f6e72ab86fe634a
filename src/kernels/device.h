// Which devices this build and machine can run on, and making one current on a thread: the dispatch
// side of core/device.h. The only place that knows whether this build has CUDA is dispatch.cpp;
// everything else asks here, so model code needs no #ifdef.
#pragma once

#include <string>

#include "core/device.h"

namespace tuneserve {

// True when this build has the CUDA backend (-DTUNESERVE_CUDA=ON).
bool built_with_cuda();
// GPUs usable now: 0 without the CUDA backend, a driver or a device (why_none says which).
int cuda_device_count(std::string* why_none = nullptr);

// Makes `device` usable on this thread (selects the GPU) or throws: "built without CUDA; rebuild
// with -DTUNESERVE_CUDA=ON", or no driver/GPU, or no such ordinal. Memory and kernels of a device:
// kernels/backend.h (backend_for, DeviceBuffer).
void require_device(const Device& device);

}  // namespace tuneserve
