// core/cpus.h on fake cgroup trees (an injected root): cgroup v2 cpu.max and v1 CFS quotas, nested
// limits, namespaced paths, no limit, malformed files, and the affinity mask as the upper bound.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "core/cpus.h"

namespace {

namespace fs = std::filesystem;
using tuneserve::cpu_budget;

class Cpus : public ::testing::Test {
 protected:
  void SetUp() override {
    root = fs::temp_directory_path() / ("tuneserve_cpus_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root);
    fs::create_directories(root / "proc/self");
  }
  void TearDown() override { fs::remove_all(root); }
  void write(const std::string& relative, const std::string& text) {
    fs::create_directories((root / relative).parent_path());
    std::ofstream(root / relative) << text;
  }
  fs::path root;
};

TEST_F(Cpus, CgroupV2QuotaNestedAndRoundedUp) {
  write("proc/self/cgroup", "0::/kubepods/pod1/c1\n");
  write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu memory\n");
  write("sys/fs/cgroup/kubepods/pod1/cpu.max", "250000 100000\n");  // the pod: 2.5 CPUs
  write("sys/fs/cgroup/kubepods/pod1/c1/cpu.max", "max 100000\n");  // the container: no limit of its own
  auto b = cpu_budget(root, 16);
  ASSERT_TRUE(b.quota.has_value());
  EXPECT_DOUBLE_EQ(*b.quota, 2.5);
  EXPECT_EQ(b.quota_source, "/sys/fs/cgroup/kubepods/pod1/cpu.max");
  EXPECT_EQ(b.available(), 3);
  EXPECT_EQ(cpu_budget(root, 2).available(), 2) << "the affinity mask is the upper bound";
  write("sys/fs/cgroup/kubepods/pod1/c1/cpu.max", "100000 100000\n");  // the lower of the two wins
  EXPECT_EQ(cpu_budget(root, 16).available(), 1);
}

TEST_F(Cpus, CgroupV2NamespacedPathFallsBackToTheMountRoot) {
  write("proc/self/cgroup", "0::/system.slice/docker-abc.scope\n");  // the host's path, absent here
  write("sys/fs/cgroup/cgroup.controllers", "cpu\n");
  write("sys/fs/cgroup/cpu.max", "150000 100000\n");
  EXPECT_EQ(cpu_budget(root, 8).available(), 2);
  write("sys/fs/cgroup/cpu.max", "max 100000\n");
  EXPECT_FALSE(cpu_budget(root, 8).quota.has_value());
  EXPECT_EQ(cpu_budget(root, 8).available(), 8);
}

TEST_F(Cpus, CgroupV1CfsQuota) {
  write("proc/self/cgroup", "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n");
  write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "50000\n");
  write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  auto b = cpu_budget(root, 4);
  ASSERT_TRUE(b.quota.has_value());
  EXPECT_DOUBLE_EQ(*b.quota, 0.5);
  EXPECT_EQ(b.available(), 1) << "half a CPU is still one worker";
  write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
  EXPECT_EQ(cpu_budget(root, 4).available(), 4) << "-1: no limit";
  write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n");
  EXPECT_EQ(cpu_budget(root, 4).available(), 3);
}

TEST_F(Cpus, NoCgroupOrMalformedFilesMeanNoQuota) {
  EXPECT_FALSE(cpu_budget(root, 6).quota.has_value());
  EXPECT_EQ(cpu_budget(root, 6).available(), 6);
  write("proc/self/cgroup", "0::/\n");
  write("sys/fs/cgroup/cgroup.controllers", "cpu\n");
  write("sys/fs/cgroup/cpu.max", "lots 100000\n");
  EXPECT_FALSE(cpu_budget(root, 6).quota.has_value());
  write("sys/fs/cgroup/cpu.max", "100000 0\n");
  EXPECT_FALSE(cpu_budget(root, 6).quota.has_value());
}

TEST_F(Cpus, ThisMachine) {
  const int n = tuneserve::available_cpus();
  EXPECT_GE(n, 1);
  EXPECT_LE(n, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

}  // namespace
