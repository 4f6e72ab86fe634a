// Tensor views (core/tensor.h): how errors print them.
#include "core/tensor.h"

#include <fmt/format.h>

namespace tuneserve {

std::string Tensor::describe() const {
  std::string dims;
  for (int i = 0; i < rank; ++i) dims += (i ? ", " : "") + std::to_string(shape[static_cast<std::size_t>(i)]);
  return fmt::format("{} [{}]{} on {}", dtype_name(dtype), dims,
                     row_stride ? fmt::format(" (rows {} apart)", row_stride) : "", device.str());
}

}  // namespace tuneserve
