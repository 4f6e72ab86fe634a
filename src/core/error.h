// Errors: one exception type that carries where a problem is (file, line, field) and what it is.
// Every user-facing failure goes through it so the CLI and the server can print or return it as is.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace tuneserve {

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message) : std::runtime_error(std::move(message)) {}
};

// Error("{}: line {}: {}", path, line, reason) - formatted in place.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace tuneserve
