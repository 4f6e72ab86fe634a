// Helpers for the data tests: small crafted input files in a per-process temporary directory,
// and running a command line (test_util.h).
#pragma once

#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "core/error.h"
#include "test_util.h"

namespace tuneserve::testing {

inline std::filesystem::path data_temp_dir() {
  static const std::filesystem::path dir = [] {
    auto p = std::filesystem::temp_directory_path() / ("tuneserve_data_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(p);
    return p;
  }();
  return dir;
}

// Writes `content` byte for byte (gzip-compressed when the name ends in .gz); returns the path.
inline std::string write_file(const std::string& name, const std::string& content) {
  const auto path = (data_temp_dir() / name).string();
  if (path.ends_with(".gz")) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, content.data(), static_cast<unsigned>(content.size()));
    gzclose(f);
  } else {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
  }
  return path;
}

}  // namespace tuneserve::testing
