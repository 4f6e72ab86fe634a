// What was built: version, git commit and build settings, for `tuneserve --version` and the
// public API. The definition is generated at build time (cmake/build_info.cmake).
#pragma once

namespace tuneserve {

struct BuildInfo {
  const char* version;     // "0.1.0" (CMake project version)
  const char* commit;      // `git describe --always --dirty` of the source tree, "unknown" outside git
  const char* build_type;  // CMAKE_BUILD_TYPE: "Release", "Debug", ...
  const char* target;      // "x86-64-v3" (portable) or "native" (-march=native)
};

const BuildInfo& build_info();

}  // namespace tuneserve
