// core/device.h: parsing --device values, the error a CPU-only build gives for cuda, and host
// DeviceBuffer copies. The CUDA side of DeviceBuffer is tested in tests/cuda.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"

namespace tuneserve {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Device, ParsesCpuCudaAndOrdinals) {
  EXPECT_EQ(parse_device("cpu"), Device{});
  EXPECT_EQ(parse_device("cuda"), (Device{Device::Kind::cuda, 0}));
  EXPECT_EQ(parse_device("cuda:3"), (Device{Device::Kind::cuda, 3}));
  EXPECT_EQ(parse_device("cuda:3").str(), "cuda:3");
  EXPECT_EQ(parse_device("cpu").str(), "cpu");
}

TEST(Device, RejectsMalformedValuesNamingThem) {
  for (const char* bad : {"", "gpu", "CUDA", "cuda:", "cuda:-1", "cuda:1x", "cuda:0:1", "cpu:0", " cuda"}) {
    const std::string msg = error_of([&] { parse_device(bad); });
    EXPECT_NE(msg.find(std::string("device '") + bad + "'"), std::string::npos) << bad << " -> " << msg;
    EXPECT_NE(msg.find("cuda:N"), std::string::npos) << msg;
  }
}

TEST(Device, CudaWithoutBackendOrGpuIsAClearError) {
  std::string why;
  const int gpus = cuda_device_count(&why);
  if (gpus > 0) GTEST_SKIP() << gpus << " GPU(s) present: the no-GPU error cannot be observed";
  EXPECT_FALSE(why.empty());
  const std::string msg = error_of([] { require_device(parse_device("cuda:0")); });
  if (built_with_cuda())
    EXPECT_NE(msg.find("no usable GPU"), std::string::npos) << msg;
  else
    EXPECT_NE(msg.find("built without CUDA; rebuild with -DTUNESERVE_CUDA=ON"), std::string::npos) << msg;
  EXPECT_NO_THROW(require_device(Device{}));
}

TEST(Device, HostBufferRoundTripsAndChecksSizes) {
  std::vector<float> in{1.0f, -2.5f, 3.25f}, out(3, 0.0f);
  DeviceBuffer buf(Device{}, in.size() * sizeof(float));
  buf.upload(in.data(), in.size() * sizeof(float));
  DeviceBuffer moved = std::move(buf);
  EXPECT_EQ(buf.data(), nullptr);
  moved.download(out.data(), out.size() * sizeof(float));
  EXPECT_EQ(in, out);
  const std::string msg = error_of([&] { moved.upload(in.data(), 64); });
  EXPECT_NE(msg.find("upload of 64 bytes into a 12-byte buffer on cpu"), std::string::npos) << msg;
}

}  // namespace
}  // namespace tuneserve
