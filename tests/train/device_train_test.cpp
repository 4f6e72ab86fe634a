// The trainer on a GPU, emulated (tests/emulated_backend.h: device memory the host cannot read,
// kernels that refuse host pointers): a short run with evaluation, checkpoints and the best model
// loaded at the end gives bitwise the CPU run's losses, grad norms, eval metrics and final weights;
// a run stopped mid-epoch resumes there to the same weights, also from a checkpoint written by the
// other device.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "data/dataset.h"
#include "emulated_backend.h"
#include "model/model.h"
#include "synthetic_rows.h"
#include "test_util.h"
#include "train/trainer.h"

namespace tuneserve::train {
namespace {

namespace fs = std::filesystem;

const char* kModel = "models/distilbert-tiny-init";
const Device kGpu{Device::Kind::cuda, 0};

TrainArgs recipe() {
  TrainArgs a;
  a.model = testing::shared_path(kModel);
  a.train = "synthetic";
  a.test = "synthetic";
  a.train_batch_size = 4;
  a.gradient_accumulation_steps = 2;  // 10 batches -> 5 updates per epoch
  a.epochs = 2;
  a.learning_rate = 1e-3;
  a.weight_decay = 0.01;
  a.warmup_ratio = 0.2;
  a.logging_steps = 1;
  a.eval_strategy = "steps";
  a.eval_steps = 3;
  a.save_strategy = "steps";
  a.save_steps = 3;
  a.load_best_model_at_end = true;  // the reload at the end goes through the device too
  a.seed = 5;
  finalize_args(a);
  return a;
}

Model load(const Device& device) {
  LoadOptions options;
  options.device = device;
  return Model::load(testing::shared_path(kModel), nullptr, options);
}

// Every parameter, downloaded to the host.
std::vector<std::vector<float>> weights(Model& model) {
  const Backend& backend = backend_for(model.device());
  std::vector<std::vector<float>> out;
  for (const Parameter& p : model.parameters()) {
    out.emplace_back(p.numel);
    backend.download(out.back().data(), p.data, p.numel * sizeof(float));
  }
  return out;
}

// A log record without its wall-clock fields.
nlohmann::json without_timing(nlohmann::json record) {
  for (const char* timing : {"samples_per_second", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second"})
    record.erase(timing);
  return record;
}

// metrics.jsonl without the wall-clock fields.
std::vector<nlohmann::json> history(const fs::path& dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) out.push_back(without_timing(nlohmann::json::parse(line)));
  return out;
}

void expect_same_weights(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b,
                         const std::vector<Parameter>& params, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (std::size_t i = 0; i < a.size(); i++) EXPECT_TRUE(a[i] == b[i]) << what << ": " << params[i].name;
}

class DeviceTraining : public ::testing::Test {
 protected:
  void SetUp() override {
    TUNESERVE_REQUIRE_SHARED(std::string(kModel) + "/model.safetensors");
    root_ = fs::temp_directory_path() / ("tuneserve_device_train_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    Model::set_num_threads(2);
  }
  void TearDown() override { fs::remove_all(root_); }
  TrainOutcome run(Model& model, const std::string& out, const TrainArgs& args, const TrainHooks& hooks = {}) {
    const int vocab = model.config().vocab_size;
    const auto train = testing::synthetic_rows(vocab, 37, 7), test = testing::synthetic_rows(vocab, 12, 8);
    return train_model(model, args, train, &test, {(root_ / out).string(), "", ""}, hooks);
  }
  fs::path root_;
  testing::ScopedEmulatedGpu gpu_;
};

TEST_F(DeviceTraining, EmulatedGpuRunEqualsTheCpuRunBitwise) {
  Model cpu = load(Device{});
  const TrainOutcome on_cpu = run(cpu, "cpu", recipe());
  Model gpu = load(kGpu);
  ASSERT_EQ(gpu.device(), kGpu);
  const TrainOutcome on_gpu = run(gpu, "gpu", recipe());

  EXPECT_EQ(on_gpu.global_step, 10);
  EXPECT_EQ(on_gpu.best_checkpoint.substr(on_gpu.best_checkpoint.rfind('/')),
            on_cpu.best_checkpoint.substr(on_cpu.best_checkpoint.rfind('/')));
  const auto cpu_log = history(root_ / "cpu"), gpu_log = history(root_ / "gpu");
  ASSERT_EQ(gpu_log.size(), cpu_log.size());
  ASSERT_GT(cpu_log.size(), 10u);  // 10 training records and the evaluations
  for (std::size_t i = 0; i < cpu_log.size(); i++) EXPECT_EQ(gpu_log[i], cpu_log[i]) << "metrics line " << i;
  EXPECT_EQ(without_timing(*on_gpu.eval_results), without_timing(*on_cpu.eval_results));
  const auto w = weights(cpu);
  expect_same_weights(weights(gpu), w, cpu.parameters(), "final weights");
  Model initial = load(Device{});
  EXPECT_FALSE(weights(initial) == w) << "training did not move the weights";
}

TEST_F(DeviceTraining, StoppedRunResumesOnEitherDeviceToTheSameWeights) {
  TrainArgs args = recipe();
  args.load_best_model_at_end = false;  // the final weights are the last step's
  Model full = load(Device{});
  run(full, "full", args);
  const auto want = weights(full);

  for (const auto& [first, second] : {std::pair{kGpu, kGpu}, std::pair{kGpu, Device{}}, std::pair{Device{}, kGpu}}) {
    const std::string out = "split_" + first.str() + "_" + second.str();
    std::atomic<bool> stop{false};
    TrainHooks hooks;
    hooks.stop = &stop;
    hooks.on_step = [&](long step, long, double) { if (step == 4) stop = true; };  // mid-epoch, as Ctrl-C
    Model a = load(first);
    ASSERT_TRUE(run(a, out, args, hooks).interrupted) << out;
    TrainArgs again = args;
    again.resume = "latest";
    Model b = load(second);  // fresh weights and moments: all must come from the checkpoint
    EXPECT_EQ(run(b, out, again).global_step, 10) << out;
    expect_same_weights(weights(b), want, full.parameters(), out);
    EXPECT_EQ(history(root_ / out), history(root_ / "full")) << out;
  }
}

}  // namespace
}  // namespace tuneserve::train
