// Where tensors live and kernels run: the CPU or one CUDA GPU, as a value. Whether this build and
// machine can use a device, and the kernels of each, are the kernels layer's (kernels/device.h,
// kernels/backend.h), so core stays free of any backend.
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
// exists (see require_device in kernels/device.h).
Device parse_device(std::string_view text);

}  // namespace tuneserve
