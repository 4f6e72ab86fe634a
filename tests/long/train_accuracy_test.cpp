// Accuracy parity, one of the six reference runs (bench/train_accuracy.sh runs all six): fine-tune
// distilbert-tiny-init on the Amazon reviews with the reference recipe at lr 5e-4, seed 0. The issue's
// bar (0.805) is on the mean of seeds 0, 1, 2 (bench/train_accuracy.sh checks it); one seed gets 0.80,
// since single seeds of the reference spread 0.8129..0.8218 and a change of the dropout stream moves
// a run by about that much. Measured 0.8149 (PyTorch + transformers: 0.8163 for seed 0).
// The same run with --bf16 (issue 12; DTYPES="fp32 bf16" bench/train_accuracy.sh compares the 3-seed
// means): the same single-seed bar, and the bf16-trained model's bf16 and fp32 predictions agree on
// >= 99% of the test split.
// Takes minutes: label `long`.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/ops.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using tuneserve::testing::shared_path;

// Trains the reference recipe (lr 5e-4, seed 0) with `flags` into `out` and returns eval_results.json.
nlohmann::json train_reference(const fs::path& out, const std::string& flags) {
  fs::remove_all(out);
  const std::string cmd =
      tuneserve::testing::binary_path() + " train --model " + shared_path("models/distilbert-tiny-init") +
      " --tokenizer " + shared_path("tokenizers/bert-base-cased") + " --train " +
      shared_path("data/amazon_polarity/train.jsonl") + " --test " + shared_path("data/amazon_polarity/test.jsonl") +
      " --text content --label label --max-length 256 --epochs 3 --train-batch-size 32 --eval-batch-size 64"
      " --learning-rate 5e-4 --weight-decay 0.01 --lr-scheduler-type linear --warmup-ratio 0.06 --max-grad-norm 1.0"
      " --seed 0 --save-strategy no --logging-steps 25 --progress false " + flags + " --output-dir " + out.string() +
      " > " + (out.string() + ".log") + " 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << std::ifstream(out.string() + ".log").rdbuf();
  std::ifstream in(out / "eval_results.json");
  if (!in) return nlohmann::json::object();
  return nlohmann::json::parse(in);
}

fs::path scratch(const std::string& name) {
  return fs::temp_directory_path() / ("tuneserve_accuracy_" + name + "_" + std::to_string(::getpid()));
}

TEST(TrainAccuracy, ReferenceRecipeLr5e4Seed0) {
  TUNESERVE_REQUIRE_SHARED("models/distilbert-tiny-init/model.safetensors");
  TUNESERVE_REQUIRE_SHARED("data/amazon_polarity/train.jsonl");
  const fs::path out = scratch("fp32");
  const auto eval = train_reference(out, "");
  ASSERT_TRUE(eval.contains("eval_accuracy"));
  const double accuracy = eval["eval_accuracy"].get<double>();
  std::printf("test accuracy %.4f (reference 0.8163 for this seed; bar for the 3-seed mean 0.805)\n", accuracy);
  EXPECT_GE(accuracy, 0.80);
  EXPECT_EQ(eval["eval_samples"].get<long>(), 1459);
  fs::remove_all(out);
  fs::remove(out.string() + ".log");
}

// The predicted labels of the model in `model` for every test review, with --dtype `dtype`.
std::vector<std::string> predicted_labels(const fs::path& model, const fs::path& texts, const std::string& dtype) {
  std::string output;
  const int rc = tuneserve::testing::run_command(tuneserve::testing::binary_path() + " predict --model " +
                                                     model.string() + " --quiet --input " + texts.string() + " --dtype " +
                                                     dtype + " 2>/dev/null",
                                                 output);
  EXPECT_EQ(rc, 0) << output;
  std::vector<std::string> labels;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty()) labels.push_back(nlohmann::json::parse(line)["label"].get<std::string>());
  return labels;
}

TEST(TrainAccuracy, ReferenceRecipeLr5e4Seed0Bf16) {
  TUNESERVE_REQUIRE_SHARED("models/distilbert-tiny-init/model.safetensors");
  TUNESERVE_REQUIRE_SHARED("data/amazon_polarity/train.jsonl");
  if (!tuneserve::ops::supports(tuneserve::cpu_backend(), tuneserve::DType::BF16))
    GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const fs::path out = scratch("bf16");
  const auto eval = train_reference(out, "--bf16");
  ASSERT_TRUE(eval.contains("eval_accuracy"));
  const double accuracy = eval["eval_accuracy"].get<double>();
  std::printf("bf16 test accuracy %.4f (fp32 seed 0: 0.8149; bar for the 3-seed mean: within 0.5 points of fp32's)\n",
              accuracy);
  EXPECT_GE(accuracy, 0.80);
  EXPECT_EQ(eval["eval_samples"].get<long>(), 1459);

  const fs::path texts = out.string() + ".texts.jsonl";
  {
    std::ifstream in(shared_path("data/amazon_polarity/test.jsonl"));
    std::ofstream o(texts);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) o << nlohmann::json{{"text", nlohmann::json::parse(line)["content"]}}.dump() << "\n";
  }
  const auto bf16 = predicted_labels(out, texts, "bf16"), fp32 = predicted_labels(out, texts, "fp32");
  ASSERT_EQ(bf16.size(), 1459u);
  ASSERT_EQ(fp32.size(), bf16.size());
  std::size_t agree = 0;
  for (std::size_t i = 0; i < bf16.size(); ++i) agree += bf16[i] == fp32[i];
  const double share = static_cast<double>(agree) / static_cast<double>(bf16.size());
  std::printf("bf16 and fp32 inference of the bf16-trained model agree on %.2f%% of the test split\n", 100 * share);
  EXPECT_GE(share, 0.99);
  fs::remove_all(out);
  fs::remove(out.string() + ".log");
  fs::remove(texts);
}

}  // namespace
