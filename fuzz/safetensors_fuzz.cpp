// libFuzzer target for safetensors headers (checkpoint/safetensors.cpp): the input is a whole
// file's bytes. A header that parses must describe tensors lying inside the data section, so every
// tensor is then read. Any exception other than tuneserve::Error is a finding.
#include <cstddef>
#include <cstdint>
#include <span>

#include "checkpoint/safetensors.h"
#include "core/error.h"

using namespace tuneserve;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const SafeTensorsHeader header = parse_safetensors_header(std::span(data, size), "fuzz.safetensors");
    std::size_t sum = 0;
    for (const TensorInfo& t : header.tensors) {
      // Reading touches every byte the header promised (ASan checks they are inside the input).
      for (std::size_t i = t.begin; i < t.end; ++i) sum += data[header.data_start + i];
      if (static_cast<std::size_t>(t.numel()) * dtype_size(t.dtype) != t.end - t.begin) __builtin_trap();
    }
    return sum == 0xFFFFFFFF ? 1 : 0;
  } catch (const Error&) {
  }
  return 0;
}
