// The CPU level chosen at start-up (kernels/cpu/isa.h): TUNESERVE_CPU_ISA lowers it for the kernels
// and oneDNN alike, bad values and missing CPU features stop with one line (never SIGILL), and the
// binary runs on an AVX2-only CPU model under qemu-user when it is installed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "kernels/cpu/isa.h"
#include "test_util.h"

namespace tuneserve {
namespace {

using testing::binary_path;
using testing::run_command;

// `tuneserve --version` with TUNESERVE_CPU_ISA set to `value` (unset when empty).
int version_with(const std::string& value, std::string& out) {
  const std::string env = value.empty() ? "env -u TUNESERVE_CPU_ISA " : "env TUNESERVE_CPU_ISA=" + value + " ";
  return run_command(env + binary_path() + " --version", out);
}

bool native_build() { return std::string(kernel_isa_description()).rfind("native", 0) == 0; }

TEST(CpuIsa, LevelsAreOrderedAndNamed) {
  EXPECT_LE(cpu_isa(), cpu_isa_detected());
  EXPECT_LE(kernel_isa(), cpu_isa());
  EXPECT_STREQ(cpu_isa_name(CpuIsa::avx2), "avx2");
  EXPECT_STREQ(cpu_isa_name(CpuIsa::avx512), "avx512");
  EXPECT_STREQ(cpu_isa_name(CpuIsa::avx512_bf16), "avx512_bf16");
}

TEST(CpuIsa, VersionNamesTheKernelLevelAndTheOverrideLowersBoth) {
  if (native_build()) GTEST_SKIP() << "a -march=native build has one kernel variant and no override";
  std::string out;
  ASSERT_EQ(version_with("", out), 0) << out;
  EXPECT_NE(out.find("tuneserve " + std::string(TUNESERVE_VERSION)), std::string::npos) << out;
  EXPECT_NE(out.find("commit "), std::string::npos) << out;
  EXPECT_NE(out.find("build "), std::string::npos) << out;
  const std::string detected = cpu_isa_name(cpu_isa_detected());
  EXPECT_NE(out.find("CPU: " + detected), std::string::npos) << out;

  ASSERT_EQ(version_with("avx2", out), 0) << out;
  EXPECT_NE(out.find("kernels avx2 (TUNESERVE_CPU_ISA; CPU: " + detected + "), oneDNN avx2\n"), std::string::npos)
      << out;
}

TEST(CpuIsa, AWrongOverrideIsOneLineNamingIt) {
  std::string out;
  EXPECT_EQ(version_with("avx9", out), 1) << out;
  EXPECT_EQ(out, "tuneserve: TUNESERVE_CPU_ISA=avx9 is not a level (avx2, avx512, avx512_bf16)\n");
  if (!native_build() && cpu_isa_detected() < CpuIsa::avx512_bf16) {
    EXPECT_EQ(version_with("avx512_bf16", out), 1) << out;
    EXPECT_NE(out.find("this CPU lacks"), std::string::npos) << out;
    EXPECT_NE(out.find("avx512bf16"), std::string::npos) << out;
  }
}

// qemu-user emulates AVX2 but not AVX-512: the CPU model "Haswell" is an AVX2-only machine and
// "Nehalem" one without AVX at all.
bool have_qemu() { return std::system("command -v qemu-x86_64 >/dev/null 2>&1") == 0; }

TEST(CpuIsa, RunsOnAnAvx2OnlyCpuAndRefusesAnOlderOneWithoutFaulting) {
  if (native_build()) GTEST_SKIP() << "a -march=native build runs only on CPUs like the build machine";
  if (!have_qemu()) GTEST_SKIP() << "qemu-x86_64 (Debian qemu-user) is not installed";
  std::string out;
  ASSERT_EQ(run_command("env -u TUNESERVE_CPU_ISA qemu-x86_64 -cpu Haswell " + binary_path() + " --version", out), 0)
      << out;
  EXPECT_NE(out.find("kernels avx2 (CPU: avx2), oneDNN avx2\n"), std::string::npos) << out;

  ASSERT_EQ(run_command("qemu-x86_64 -cpu Nehalem " + binary_path() + " --version", out), 1) << out;
  EXPECT_NE(out.find("tuneserve: this CPU lacks avx avx2 fma bmi bmi2 f16c lzcnt movbe, which this build needs "
                     "(x86-64-v3: AVX2 and FMA, BMI2, F16C, LZCNT, MOVBE)\n"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace tuneserve
