// `--device` on train, eval, predict and serve (the binary): cpu runs, a malformed value is named,
// and cuda on a build or machine without a GPU fails at once with the clear message, before any
// data or model is read (serve: before its port is bound). Also the SageMaker job's device:
// hyperparameters.json "device", and SM_NUM_GPUS falling back to the CPU with one line saying why.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "kernels/device.h"
#include "test_util.h"

namespace tuneserve {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::binary_path;
using testing::run_command;
using testing::shared_path;

const char* kModel = "models/distilbert-tiny-init";
const char* kTokenizer = "tokenizers/bert-base-cased";

struct Outcome {
  int status = -1;
  std::string out;  // stdout + stderr, or stdout alone where stderr went to a file
};

// `env tuneserve args`; with `stderr_to` set, stderr goes to that file and `out` is stdout alone.
Outcome tuneserve(const std::string& args, const std::string& env = "", const fs::path& stderr_to = {}) {
  std::string command = env + (env.empty() ? "" : " ") + binary_path() + " " + args;
  if (!stderr_to.empty()) command = "( " + command + " 2>" + stderr_to.string() + " )";
  Outcome r;
  r.status = run_command(command, r.out);
  return r;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class DeviceCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tuneserve_device_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // What `--device cuda` must say here; skips where a GPU makes it usable.
  std::string no_gpu_message() {
    if (cuda_device_count() > 0) {
      skipped_ = true;
      return "";
    }
    return built_with_cuda() ? "no usable GPU" : "built without CUDA; rebuild with -DTUNESERVE_CUDA=ON";
  }

  fs::path dir_;
  bool skipped_ = false;
};

// Each command: a malformed value is named, and cuda fails before the (missing) model is looked at.
TEST_F(DeviceCli, EveryCommandNamesABadValueAndRefusesCudaFirst) {
  const std::string want = no_gpu_message();
  if (skipped_) GTEST_SKIP() << "a GPU is present";
  const std::string missing = (dir_ / "no-such-model").string();
  const std::vector<std::pair<std::string, std::string>> commands = {
      {"train", "train --model " + missing + " --train " + missing},
      {"eval", "eval --model " + missing + " --data " + missing},
      {"predict", "predict --model " + missing + " hello"},
      {"serve", "serve --model " + missing + " --host 127.0.0.1 --port 0"},
  };
  for (const auto& [name, command] : commands) {
    const Outcome bad = tuneserve(command + " --device gpu:0");
    EXPECT_EQ(bad.status, 1) << name << ": " << bad.out;
    EXPECT_THAT(bad.out, HasSubstr("device 'gpu:0': expected cpu, cuda or cuda:N")) << name;

    const Outcome cuda = tuneserve(command + " --device cuda:1");
    EXPECT_EQ(cuda.status, 1) << name << ": " << cuda.out;
    EXPECT_THAT(cuda.out, HasSubstr("device 'cuda:1'")) << name;
    EXPECT_THAT(cuda.out, HasSubstr(want)) << name;
    EXPECT_THAT(cuda.out, Not(HasSubstr(missing))) << name << ": the model was looked at before the device";
    EXPECT_THAT(cuda.out, Not(HasSubstr("listening"))) << name;
  }
}

TEST_F(DeviceCli, TrainTakesTheDeviceAsAHyperparameterInEverySpelling) {
  Outcome r = tuneserve("train --model m --train t --dry-run --device cpu", "", dir_ / "stderr");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["device"], "cpu");
  r = tuneserve("train --model m --train t --dry-run", "", dir_ / "stderr");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["device"], "cpu") << "the default";

  // A SageMaker job: JSON-encoded values in hyperparameters.json.
  const fs::path root = dir_ / "ml";
  fs::create_directories(root / "input/config");
  std::ofstream(root / "input/config/hyperparameters.json") << R"({"model": "\"m\"", "train": "\"t\"", "device": "\"cpu\""})";
  r = tuneserve("train --sagemaker-root " + root.string() + " --dry-run", "SM_NUM_GPUS=8", dir_ / "stderr");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["device"], "cpu");
  EXPECT_THAT(read_file(dir_ / "stderr"), Not(HasSubstr("SM_NUM_GPUS"))) << "an explicit device needs no note";

  std::ofstream(root / "input/config/hyperparameters.json") << R"({"model": "\"m\"", "train": "\"t\"", "device": "\"tpu\""})";
  r = tuneserve("train --sagemaker-root " + root.string() + " --dry-run");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("device 'tpu'"));
}

TEST_F(DeviceCli, SageMakerGpusWithoutAUsableGpuTrainOnTheCpuSayingWhy) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a GPU is present: the job would use it";
  const fs::path root = dir_ / "ml";
  fs::create_directories(root / "input/config");
  std::ofstream(root / "input/config/hyperparameters.json") << R"({"model": "\"m\"", "train": "\"t\""})";
  Outcome r = tuneserve("train --sagemaker-root " + root.string() + " --dry-run", "SM_NUM_GPUS=4", dir_ / "stderr");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["device"], "cpu");
  const std::string err = read_file(dir_ / "stderr");
  EXPECT_THAT(err, HasSubstr("SM_NUM_GPUS=4 but no GPU is usable here"));
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "one line: " << err;

  // Asking for the GPU explicitly is not silently moved to the CPU: the job fails with the reason.
  std::ofstream(root / "input/config/hyperparameters.json") << R"({"model": "\"m\"", "train": "\"t\"", "device": "\"cuda\""})";
  r = tuneserve("train --sagemaker-root " + root.string(), "SM_NUM_GPUS=4");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_THAT(read_file(root / "output/failure"), HasSubstr("hyperparameter device: device 'cuda:0'"));
}

TEST_F(DeviceCli, CpuRunsEvalAndPredict) {
  TUNESERVE_REQUIRE_SHARED(kModel);
  TUNESERVE_REQUIRE_SHARED("data/amazon_polarity/test.jsonl");
  const std::string model = shared_path(kModel), tokenizer = shared_path(kTokenizer);
  const fs::path err = dir_ / "stderr";
  const Outcome plain = tuneserve("predict --model " + model + " --tokenizer " + tokenizer + " 'Great value.'", "", err);
  const Outcome cpu = tuneserve("predict --model " + model + " --tokenizer " + tokenizer + " --device cpu 'Great value.'", "", err);
  ASSERT_EQ(cpu.status, 0) << cpu.out;
  EXPECT_EQ(cpu.out, plain.out);

  {
    std::ifstream in(shared_path("data/amazon_polarity/test.jsonl"));
    std::ofstream out(dir_ / "test.jsonl");
    std::string line;
    for (int i = 0; i < 16 && std::getline(in, line); i++) out << line << "\n";
  }
  const Outcome eval = tuneserve("eval --model " + model + " --tokenizer " + tokenizer + " --data " +
                             (dir_ / "test.jsonl").string() + " --text content --device cpu --json", "", err);
  ASSERT_EQ(eval.status, 0) << eval.out;
  EXPECT_EQ(nlohmann::json::parse(eval.out)["eval_samples"], 16) << eval.out;
}

}  // namespace
}  // namespace tuneserve
