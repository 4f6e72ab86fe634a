// How many CPUs this process may use, as a container sees it: the CPUs of its affinity mask
// (sched_getaffinity: taskset, cpusets, Kubernetes' static CPU manager), further limited by a CFS
// bandwidth quota (Docker --cpus, Kubernetes limits, SageMaker's instance share): cgroup v2's
// cpu.max or cgroup v1's cpu.cfs_quota_us / cpu.cfs_period_us, on the process's own cgroup and
// every parent, rounded up (1.5 CPUs -> 2). std::thread::hardware_concurrency counts the host's.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace tuneserve {

struct CpuBudget {
  int affinity = 1;              // CPUs in the affinity mask
  std::optional<double> quota;   // CPUs the cgroup quota allows (fractional), when limited
  std::string quota_source;      // the file that set it ("/sys/fs/cgroup/cpu.max")
  int available() const;         // min(affinity, ceil(quota)), at least 1
};

// `root` prefixes /proc/self/cgroup and /sys/fs/cgroup (tests pass a folder of fake files);
// `affinity`: the mask's count, else sched_getaffinity's. Unreadable or malformed cgroup files
// mean no quota (never an error: the count is a default, not a check).
CpuBudget cpu_budget(const std::filesystem::path& root = "/", std::optional<int> affinity = std::nullopt);

// cpu_budget().available(), computed once.
int available_cpus();
// The threads each of `passes` concurrent forward passes gets when they share available_cpus():
// the quotient, at least 1.
int cpus_per_pass(int passes);

}  // namespace tuneserve
