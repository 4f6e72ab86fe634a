// CPUs available to this process: affinity mask and cgroup v1/v2 CPU quota (see cpus.h).
#include "core/cpus.h"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <string_view>
#include <vector>

namespace tuneserve {
namespace {

namespace fs = std::filesystem;

std::string first_line(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

std::optional<double> number(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  long long v = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return static_cast<double>(v);
}

// The cgroup path of this process for a v1 controller ("cpu") or v2 (controller empty), from
// /proc/self/cgroup lines "ID:CONTROLLERS:PATH".
std::optional<std::string> cgroup_path(const fs::path& root, std::string_view controller) {
  std::ifstream in(root / "proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    const auto a = line.find(':');
    const auto b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string_view controllers = std::string_view(line).substr(a + 1, b - a - 1);
    const std::string path = line.substr(b + 1);
    if (controller.empty()) {
      if (line.compare(0, a, "0") == 0 && controllers.empty()) return path;
      continue;
    }
    for (std::string_view rest = controllers; !rest.empty();) {
      const auto comma = rest.find(',');
      if (rest.substr(0, comma) == controller) return path;
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  return std::nullopt;
}

// Folders from the process's cgroup up to the hierarchy's root; inside a container with its own
// cgroup namespace the recorded path may not exist under the mount, whose root is then the cgroup.
std::vector<fs::path> cgroup_chain(const fs::path& mount, const std::string& path) {
  std::vector<fs::path> chain;
  fs::path rel = fs::path(path).relative_path();
  for (;;) {
    if (fs::is_directory(mount / rel)) chain.push_back(mount / rel);
    if (rel.empty()) break;
    rel = rel.parent_path();
  }
  return chain;
}

struct Quota {
  double cpus;
  fs::path file;
};

void keep_lowest(std::optional<Quota>& best, double cpus, const fs::path& file) {
  if (cpus > 0 && (!best || cpus < best->cpus)) best = Quota{cpus, file};
}

std::optional<Quota> v2_quota(const fs::path& root) {
  const auto path = cgroup_path(root, "");
  const fs::path mount = root / "sys/fs/cgroup";
  if (!path || !fs::exists(mount / "cgroup.controllers")) return std::nullopt;
  std::optional<Quota> best;
  for (const fs::path& dir : cgroup_chain(mount, *path)) {
    // "max 100000" (no limit) or "QUOTA PERIOD" in microseconds.
    const std::string line = first_line(dir / "cpu.max");
    const auto space = line.find(' ');
    if (space == std::string::npos) continue;
    const auto quota = number(std::string_view(line).substr(0, space));
    const auto period = number(std::string_view(line).substr(space + 1));
    if (quota && period && *period > 0) keep_lowest(best, *quota / *period, dir / "cpu.max");
  }
  return best;
}

std::optional<Quota> v1_quota(const fs::path& root) {
  const auto path = cgroup_path(root, "cpu");
  if (!path) return std::nullopt;
  std::optional<Quota> best;
  for (const char* name : {"cpu,cpuacct", "cpu", "cpuacct,cpu"}) {
    const fs::path mount = root / "sys/fs/cgroup" / name;
    if (!fs::is_directory(mount)) continue;
    for (const fs::path& dir : cgroup_chain(mount, *path)) {
      const auto quota = number(first_line(dir / "cpu.cfs_quota_us"));   // -1: no limit
      const auto period = number(first_line(dir / "cpu.cfs_period_us"));
      if (quota && period && *period > 0) keep_lowest(best, *quota / *period, dir / "cpu.cfs_quota_us");
    }
    break;
  }
  return best;
}

int affinity_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

}  // namespace

int CpuBudget::available() const {
  int n = affinity;
  if (quota) n = std::min(n, static_cast<int>(std::ceil(*quota - 1e-9)));
  return std::max(1, n);
}

CpuBudget cpu_budget(const std::filesystem::path& root, std::optional<int> affinity) {
  CpuBudget budget;
  budget.affinity = affinity ? std::max(1, *affinity) : affinity_count();
  std::optional<Quota> q = v2_quota(root);
  if (!q) q = v1_quota(root);
  if (q) {
    budget.quota = q->cpus;
    budget.quota_source = (fs::path("/") / q->file.lexically_relative(root)).string();
  }
  return budget;
}

int available_cpus() {
  static const int n = cpu_budget().available();
  return n;
}

int cpus_per_pass(int passes) { return std::max(1, available_cpus() / std::max(1, passes)); }

}  // namespace tuneserve
