// core/device.h: parsing and printing --device values (what a device can do: tests/kernels/dispatch_test.cpp).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "core/device.h"
#include "core/error.h"

namespace tuneserve {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

TEST(Device, ParsesCpuCudaAndOrdinals) {
  EXPECT_EQ(parse_device("cpu"), Device{});
  EXPECT_EQ(parse_device("cuda"), (Device{Device::Kind::cuda, 0}));
  EXPECT_EQ(parse_device("cuda:3"), (Device{Device::Kind::cuda, 3}));
  EXPECT_EQ(parse_device("cuda:3").str(), "cuda:3");
  EXPECT_EQ(parse_device("cpu").str(), "cpu");
}

TEST(Device, RejectsMalformedValuesNamingThem) {
  for (const std::string bad : {"", "gpu", "CUDA", "cuda:", "cuda:-1", "cuda:1x", "cuda:0:1", "cpu:0", " cuda"}) {
    const std::string named = fmt::format("device '{}'", bad);
    EXPECT_THAT([&] { parse_device(bad); }, ThrowsMessage<Error>(HasSubstr(named))) << bad;
    EXPECT_THAT([&] { parse_device(bad); }, ThrowsMessage<Error>(HasSubstr("expected cpu, cuda or cuda:N")));
  }
}

}  // namespace
}  // namespace tuneserve
