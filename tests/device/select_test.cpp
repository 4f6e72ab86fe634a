// kernels/device_select.h: an explicit --device wins and must parse; SageMaker's SM_NUM_GPUS picks
// cuda:0 only when a GPU is usable, else the CPU with a note; errors name the source and value.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kernels/device_select.h"
#include "test_util.h"

namespace tuneserve {
namespace {

using ::testing::HasSubstr;
using testing::error_of;

const Device kCpu{};
const Device kCuda0{Device::Kind::cuda, 0};

TEST(DeviceSelect, ExplicitValueWinsAndIsParsed) {
  EXPECT_EQ(resolve_device({.value = "cpu"}, 0, "").device, kCpu);
  EXPECT_EQ(resolve_device({.value = "cuda"}, 0, "").device, kCuda0);
  EXPECT_EQ(resolve_device({.value = "cuda:2"}, 0, "").device, (Device{Device::Kind::cuda, 2}));
  // A job on a GPU instance asked for the CPU gets the CPU; one asking for a GPU is not silently moved.
  const DeviceChoice cpu = resolve_device({.value = "cpu", .sagemaker_gpus = 8}, 8, "");
  EXPECT_EQ(cpu.device, kCpu);
  EXPECT_EQ(cpu.note, "");
  EXPECT_EQ(resolve_device({.value = "cuda:1", .sagemaker_gpus = 4}, 0, "built without CUDA").device,
            (Device{Device::Kind::cuda, 1}));
}

TEST(DeviceSelect, NothingGivenMeansTheCpuWithoutANote) {
  const DeviceChoice choice = resolve_device({}, 3, "");
  EXPECT_EQ(choice.device, kCpu);
  EXPECT_EQ(choice.note, "");
}

TEST(DeviceSelect, SageMakerGpusPickCuda0WhenOneIsUsable) {
  const DeviceChoice gpu = resolve_device({.sagemaker_gpus = 4}, 4, "");
  EXPECT_EQ(gpu.device, kCuda0);
  EXPECT_THAT(gpu.note, HasSubstr("SM_NUM_GPUS=4"));
  EXPECT_THAT(gpu.note, HasSubstr("cuda:0"));

  const DeviceChoice none = resolve_device({.sagemaker_gpus = 1}, 0, "built without CUDA");
  EXPECT_EQ(none.device, kCpu);
  EXPECT_THAT(none.note, HasSubstr("SM_NUM_GPUS=1"));
  EXPECT_THAT(none.note, HasSubstr("built without CUDA"));
  EXPECT_THAT(none.note, HasSubstr("CPU"));
}

TEST(DeviceSelect, MalformedValuesNameTheSourceAndTheValue) {
  for (const char* bad : {"gpu", "cuda:", "cuda:-1", "CPU", "cuda:0,1"}) {
    const std::string e = error_of([&] { resolve_device({.value = bad, .source = "hyperparameter device"}, 1, ""); });
    EXPECT_THAT(e, HasSubstr("hyperparameter device: "));
    EXPECT_THAT(e, HasSubstr(fmt::format("'{}'", bad)));
    EXPECT_THAT(e, HasSubstr("expected cpu, cuda or cuda:N"));
  }
}

TEST(DeviceSelect, CudaOnThisMachineIsUsableOrAClearError) {
  EXPECT_EQ(select_device({}).device, kCpu);
  EXPECT_EQ(select_device({.value = "cpu"}).device, kCpu);
  if (cuda_device_count() > 0) GTEST_SKIP() << "a GPU is present: the no-GPU errors cannot be observed";
  const std::string want = built_with_cuda() ? "no usable GPU" : "built without CUDA; rebuild with -DTUNESERVE_CUDA=ON";
  EXPECT_THAT(error_of([] { select_device({.value = "cuda:0"}); }), HasSubstr("--device: device 'cuda:0': "));
  EXPECT_THAT(error_of([] { select_device({.value = "cuda"}); }), HasSubstr(want));
  // The automatic SageMaker choice never fails for want of a GPU.
  const DeviceChoice job = select_device({.sagemaker_gpus = 2});
  EXPECT_EQ(job.device, kCpu);
  EXPECT_THAT(job.note, HasSubstr("running on the CPU"));
}

}  // namespace
}  // namespace tuneserve
