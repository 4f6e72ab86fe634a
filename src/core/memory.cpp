// Available memory from /proc/meminfo and the cgroup's limit (see memory.h).
#include "core/memory.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace tuneserve {
namespace {

std::optional<std::size_t> read_number(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word) || word == "max") return std::nullopt;
  try {
    return static_cast<std::size_t>(std::stoull(word));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// A "key value" line of a file like /proc/meminfo or memory.stat, times `unit`.
std::optional<std::size_t> read_field(const std::string& path, const std::string& key, std::size_t unit) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string name;
    unsigned long long value = 0;
    if (fields >> name >> value && (name == key || name == key + ":")) return static_cast<std::size_t>(value) * unit;
  }
  return std::nullopt;
}

// limit - (usage - inactive page cache) of the cgroup files in `dir`, when it has a limit.
std::optional<std::size_t> cgroup_room(const std::string& dir, const char* limit_file, const char* usage_file,
                                       const char* inactive_key) {
  const auto limit = read_number(dir + "/" + limit_file);
  const auto usage = read_number(dir + "/" + usage_file);
  // cgroup v1 writes a huge number (a page-rounded 2^63) for "no limit".
  if (!limit || !usage || *limit >= (std::size_t{1} << 60)) return std::nullopt;
  const std::size_t inactive = read_field(dir + "/memory.stat", inactive_key, 1).value_or(0);
  const std::size_t used = *usage > inactive ? *usage - inactive : 0;
  return *limit > used ? *limit - used : 0;
}

// The process's own cgroup v2 directory ("0::/path" in /proc/self/cgroup).
std::string cgroup2_dir() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("0::", 0) == 0) return "/sys/fs/cgroup" + line.substr(3);
  return "/sys/fs/cgroup";
}

}  // namespace

std::optional<std::size_t> available_memory() {
  std::optional<std::size_t> room = read_field("/proc/meminfo", "MemAvailable", 1024);
  for (auto cgroup : {cgroup_room(cgroup2_dir(), "memory.max", "memory.current", "inactive_file"),
                      cgroup_room("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes",
                                  "total_inactive_file")})
    if (cgroup) room = room ? std::min(*room, *cgroup) : *cgroup;
  return room;
}

void tune_allocator_for_server() {
#if defined(__GLIBC__)
  // A fixed threshold also stops glibc's sliding trim threshold (twice the mmap threshold).
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(kServerMmapThreshold));
#endif
}

void release_free_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

std::string format_bytes(std::size_t bytes) {
  constexpr double kMiB = 1024.0 * 1024.0;
  const double mib = static_cast<double>(bytes) / kMiB;
  if (mib >= 1024.0) return fmt::format("{:.1f} GiB", mib / 1024.0);
  if (mib >= 1.0) return fmt::format("{:.0f} MiB", mib);
  return fmt::format("{} bytes", bytes);
}

}  // namespace tuneserve
