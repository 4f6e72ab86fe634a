// Accuracy parity, one of the six reference runs (bench/train_accuracy.sh runs all six): fine-tune
// distilbert-tiny-init on the Amazon reviews with the reference recipe at lr 5e-4, seed 0. The issue's
// bar (0.805) is on the mean of seeds 0, 1, 2 (bench/train_accuracy.sh checks it); one seed gets 0.80,
// since single seeds of the reference spread 0.8129..0.8218 and a change of the dropout stream moves
// a run by about that much. Measured 0.8149 (PyTorch + transformers: 0.8163 for seed 0).
// Takes minutes: label `long`.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using tuneserve::testing::shared_path;

TEST(TrainAccuracy, ReferenceRecipeLr5e4Seed0) {
  TUNESERVE_REQUIRE_SHARED("models/distilbert-tiny-init/model.safetensors");
  TUNESERVE_REQUIRE_SHARED("data/amazon_polarity/train.jsonl");
  const fs::path out = fs::temp_directory_path() / ("tuneserve_accuracy_" + std::to_string(::getpid()));
  fs::remove_all(out);
  const std::string cmd =
      tuneserve::testing::binary_path() + " train --model " + shared_path("models/distilbert-tiny-init") +
      " --tokenizer " + shared_path("tokenizers/bert-base-cased") + " --train " +
      shared_path("data/amazon_polarity/train.jsonl") + " --test " + shared_path("data/amazon_polarity/test.jsonl") +
      " --text content --label label --max-length 256 --epochs 3 --train-batch-size 32 --eval-batch-size 64"
      " --learning-rate 5e-4 --weight-decay 0.01 --lr-scheduler-type linear --warmup-ratio 0.06 --max-grad-norm 1.0"
      " --seed 0 --save-strategy no --logging-steps 25 --progress false --output-dir " + out.string() +
      " > " + (out.string() + ".log") + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << std::ifstream(out.string() + ".log").rdbuf();
  std::ifstream in(out / "eval_results.json");
  const auto eval = nlohmann::json::parse(in);
  const double accuracy = eval["eval_accuracy"].get<double>();
  std::printf("test accuracy %.4f (reference 0.8163 for this seed; bar for the 3-seed mean 0.805)\n", accuracy);
  EXPECT_GE(accuracy, 0.80);
  EXPECT_EQ(eval["eval_samples"].get<long>(), 1459);
  fs::remove_all(out);
  fs::remove(out.string() + ".log");
}

}  // namespace
