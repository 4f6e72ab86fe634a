// Shared helpers for tests: where ../shared is, and skipping with a clear message without it.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>

#include "core/error.h"

namespace tuneserve::testing {

inline std::string shared_path(const std::string& relative) {
  return std::string(TUNESERVE_SHARED_DIR) + "/" + relative;
}

inline std::string binary_path() { return TUNESERVE_BINARY; }

// The message of the tuneserve::Error that f throws, or "(no error)" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Runs a shell command line; returns its exit status (-1 if it did not exit) and stdout+stderr.
inline int run_command(const std::string& cmd, std::string& out) {
  FILE* pipe = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!pipe) return -1;
  char buf[65536];
  out.clear();
  std::size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, got);
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace tuneserve::testing

// Skips the current test, naming the missing reference file, when ../shared is not beside the checkout.
#define TUNESERVE_REQUIRE_SHARED(relative)                                                    \
  do {                                                                                        \
    const std::string tuneserve_required_ = ::tuneserve::testing::shared_path(relative);      \
    if (!std::filesystem::exists(tuneserve_required_))                                        \
      GTEST_SKIP() << "reference material missing: " << tuneserve_required_                   \
                   << " (tests read ../shared beside the checkout)";                          \
  } while (0)
