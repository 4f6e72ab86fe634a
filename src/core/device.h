// Where tensors live and kernels run: the CPU or one CUDA GPU. The only place that knows whether
// this build has CUDA (device.cpp); everything else asks it, so model code needs no #ifdef.
//
// Device strings: "cpu", "cuda" (= cuda:0), "cuda:N".
#pragma once

#include <string>
#include <string_view>

namespace tuneserve {

struct Device {
  enum class Kind { cpu, cuda };
  Kind kind = Kind::cpu;
  int index = 0;  // GPU ordinal for cuda

  bool is_cuda() const { return kind == Kind::cuda; }
  std::string str() const;  // "cpu" or "cuda:N"
  bool operator==(const Device&) const = default;
};

// Parses a --device value; a clear error naming the value otherwise. Does not check that the GPU
// exists (see require_device).
Device parse_device(std::string_view text);

// True when this build has the CUDA backend (-DTUNESERVE_CUDA=ON).
bool built_with_cuda();
// GPUs usable now: 0 without the CUDA backend, a driver or a device (why_none says which).
int cuda_device_count(std::string* why_none = nullptr);

// Makes `device` usable on this thread (selects the GPU) or throws: "built without CUDA; rebuild
// with -DTUNESERVE_CUDA=ON", or no driver/GPU, or no such ordinal. Memory and kernels of a device:
// kernels/backend.h (backend_for, DeviceBuffer).
void require_device(const Device& device);

}  // namespace tuneserve
