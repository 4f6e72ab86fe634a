// kernels/dispatch.cpp: the error a CPU-only build gives for cuda, host DeviceBuffer copies, the CPU
// table behind backend_for and the tests-only backend stand-in. The CUDA side of DeviceBuffer is
// tested in tests/cuda.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/backend.h"

namespace tuneserve {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

TEST(Dispatch, CudaWithoutBackendOrGpuIsAClearError) {
  std::string why;
  const int gpus = cuda_device_count(&why);
  if (gpus > 0) GTEST_SKIP() << gpus << " GPU(s) present: the no-GPU error cannot be observed";
  EXPECT_FALSE(why.empty());
  const std::string want = built_with_cuda() ? "device cuda:0: no usable GPU"
                                             : "built without CUDA; rebuild with -DTUNESERVE_CUDA=ON";
  EXPECT_THAT([] { require_device(parse_device("cuda:0")); }, ThrowsMessage<Error>(HasSubstr(want)));
  EXPECT_NO_THROW(require_device(Device{}));
}

TEST(Dispatch, HostBufferRoundTripsAndChecksSizes) {
  std::vector<float> in{1.0f, -2.5f, 3.25f}, out(3, 0.0f);
  DeviceBuffer buf(Device{}, in.size() * sizeof(float));
  buf.upload(in.data(), in.size() * sizeof(float));
  DeviceBuffer moved = std::move(buf);
  EXPECT_EQ(buf.data(), nullptr);
  moved.download(out.data(), out.size() * sizeof(float));
  EXPECT_EQ(in, out);
  EXPECT_THAT([&] { moved.upload(in.data(), 64); },
              ThrowsMessage<Error>(HasSubstr("upload of 64 bytes into a 12-byte buffer on cpu")));
}

TEST(Dispatch, BackendForCpuIsTheCpuTable) {
  EXPECT_EQ(&backend_for(Device{}), &cpu_backend());
  EXPECT_EQ(cpu_backend().device, Device{});
  DeviceBuffer buf(Device{}, 256);
  EXPECT_EQ(&buf.backend(), &cpu_backend());
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(buf.data()) % 64, 0u);
}

TEST(Dispatch, TestStandInAnswersForItsKindUntilRemoved) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a real GPU is present";
  Backend stand_in = cpu_backend();
  stand_in.device = Device{Device::Kind::cuda, 0};
  set_backend_for_tests(Device::Kind::cuda, &stand_in);
  EXPECT_NO_THROW(require_device(parse_device("cuda:1")));
  EXPECT_EQ(&backend_for(parse_device("cuda:1")), &stand_in);
  EXPECT_EQ(&backend_for(Device{}), &cpu_backend());
  set_backend_for_tests(Device::Kind::cuda, nullptr);
  EXPECT_THROW(backend_for(parse_device("cuda:0")), Error);
}

}  // namespace
}  // namespace tuneserve
