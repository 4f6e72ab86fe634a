// Device values: parsing and printing (core/device.h).
#include "core/device.h"

#include <charconv>

#include "core/error.h"

namespace tuneserve {

std::string Device::str() const { return is_cuda() ? "cuda:" + std::to_string(index) : "cpu"; }

Device parse_device(std::string_view text) {
  if (text == "cpu") return {};
  if (text == "cuda") return {Device::Kind::cuda, 0};
  if (text.starts_with("cuda:")) {
    const std::string_view digits = text.substr(5);
    int index = -1;
    const auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (!digits.empty() && err == std::errc() && end == digits.data() + digits.size() && index >= 0)
      return {Device::Kind::cuda, index};
  }
  fail("device '{}': expected cpu, cuda or cuda:N (N = GPU ordinal, 0-based)", text);
}

}  // namespace tuneserve
