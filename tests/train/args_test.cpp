// Hyperparameters: both spellings and transformers' aliases, SageMaker's JSON-encoded values,
// validation errors that name the hyperparameter, and the job environment (a temporary root).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "train/args.h"
#include "train/job_env.h"

#include "test_util.h"

using namespace tuneserve::train;
namespace fs = std::filesystem;

using tuneserve::testing::error_of;

TEST(Args, BothSpellingsAndAliases) {
  TrainArgs a;
  set_hyperparameter(a, "--train-batch-size", "32");
  EXPECT_EQ(a.train_batch_size, 32);
  set_hyperparameter(a, "train_batch_size", "16");
  EXPECT_EQ(a.train_batch_size, 16);
  set_hyperparameter(a, "per_device_train_batch_size", "4");
  EXPECT_EQ(a.train_batch_size, 4);
  set_hyperparameter(a, "num_train_epochs", "2.5");
  EXPECT_DOUBLE_EQ(a.epochs, 2.5);
  set_hyperparameter(a, "learning-rate", "5e-4");
  EXPECT_DOUBLE_EQ(a.learning_rate, 5e-4);
  set_hyperparameter(a, "load_best_model_at_end", "True");
  EXPECT_TRUE(a.load_best_model_at_end);
  set_hyperparameter(a, "evaluation_strategy", "steps");
  EXPECT_EQ(a.eval_strategy, "steps");
  set_hyperparameter(a, "save_total_limit", "3.0");  // a JSON float that is an integer
  EXPECT_EQ(a.save_total_limit, 3);
  EXPECT_FALSE(a.bf16);
  set_hyperparameter(a, "bf16", "true");  // TrainingArguments' name for mixed precision
  EXPECT_TRUE(a.bf16);
  EXPECT_EQ(args_to_json(a)["bf16"], true);
}

TEST(Args, BadValuesNameTheHyperparameter) {
  TrainArgs a;
  EXPECT_NE(error_of([&] { set_hyperparameter(a, "learning_rate", "1e-3x"); }).find("learning_rate"), std::string::npos);
  EXPECT_NE(error_of([&] { set_hyperparameter(a, "train_batch_size", "2.5"); }).find("not an integer"), std::string::npos);
  // Too large for a long (found by fuzz.hyperparameters): an error, not an undefined conversion.
  EXPECT_NE(error_of([&] { set_hyperparameter(a, "eval_steps", "24444444444444444442"); }).find("out of range"),
            std::string::npos);
  EXPECT_NE(error_of([&] { set_hyperparameter(a, "eval_steps", "-1e300"); }).find("out of range"), std::string::npos);
  set_hyperparameter(a, "eval_steps", "9223372036854775807");
  EXPECT_EQ(a.eval_steps, 9223372036854775807L);
  EXPECT_NE(error_of([&] { set_hyperparameter(a, "no_such_thing", "1"); }).find("no_such_thing"), std::string::npos);
  EXPECT_NE(error_of([&] { set_hyperparameter(a, "dropout", "maybe"); }).find("boolean"), std::string::npos);
}

TEST(Args, FinalizeChecksCombinations) {
  TrainArgs a;
  EXPECT_NE(error_of([&] { finalize_args(a); }).find("model"), std::string::npos);
  a.model = "m";
  a.train = "t.jsonl";
  finalize_args(a);
  EXPECT_EQ(a.tokenizer, "m");
  EXPECT_EQ(a.eval_strategy, "no");  // no test set
  EXPECT_EQ(*a.greater_is_better, false);

  TrainArgs b = a;
  b.eval_strategy = "";
  b.test = "test.jsonl";
  b.metric_for_best_model = "eval_accuracy";
  b.greater_is_better.reset();
  finalize_args(b);
  EXPECT_EQ(b.eval_strategy, "epoch");
  EXPECT_EQ(b.metric_for_best_model, "accuracy");
  EXPECT_TRUE(*b.greater_is_better);

  TrainArgs c = a;
  c.load_best_model_at_end = true;
  EXPECT_NE(error_of([&] { finalize_args(c); }).find("load_best_model_at_end"), std::string::npos);
  TrainArgs d = a;
  d.save_strategy = "sometimes";
  EXPECT_NE(error_of([&] { finalize_args(d); }).find("save_strategy"), std::string::npos);
  TrainArgs e = a;
  e.train_batch_size = 0;
  EXPECT_NE(error_of([&] { finalize_args(e); }).find("train_batch_size"), std::string::npos);
  TrainArgs f = a;
  f.lr_scheduler_type = "polynomial";
  EXPECT_THROW(finalize_args(f), tuneserve::Error);
}

// The arguments Trainer scripts and notebooks pass, and TrainingArguments' defaults.
TEST(Args, TrainerScriptArguments) {
  TrainArgs d;
  EXPECT_EQ(d.logging_steps, 500);
  EXPECT_EQ(d.save_strategy, "steps");
  EXPECT_EQ(d.save_steps, 500);
  EXPECT_EQ(d.logging_strategy, "steps");

  TrainArgs a;
  a.model = "m";
  a.train = "t";
  a.test = "e";
  for (const char* key : {"--do_train", "--do_eval", "--overwrite_output_dir", "--disable_tqdm"})
    set_hyperparameter(a, key, "");  // a flag without a value, as argparse's store_true takes it
  set_hyperparameter(a, "--report_to", "none");
  set_hyperparameter(a, "--logging_dir", "/tmp/logs");
  set_hyperparameter(a, "--optim", "adamw_torch");
  set_hyperparameter(a, "--fp16", "false");
  finalize_args(a);
  EXPECT_TRUE(a.do_eval);
  EXPECT_TRUE(a.overwrite_output_dir);
  EXPECT_FALSE(a.progress) << "disable_tqdm turns the bar off";
  EXPECT_EQ(a.logging_dir, "/tmp/logs");
  EXPECT_EQ(args_to_json(a)["optim"], "adamw_torch");
  set_hyperparameter(a, "optim", "adamw_torch_fused");
  finalize_args(a);

  EXPECT_NE(error_of([&] { set_hyperparameter(a, "fp16", "true"); }).find("use bf16 (--bf16)"), std::string::npos);
  TrainArgs b = a;
  b.optim = "adafactor";
  EXPECT_NE(error_of([&] { finalize_args(b); }).find("optim: 'adafactor' is not available"), std::string::npos);
  b = a;
  b.do_train = false;
  EXPECT_NE(error_of([&] { finalize_args(b); }).find("tuneserve eval"), std::string::npos);
  b = a;
  b.test.clear();
  b.eval_strategy = "no";
  EXPECT_NE(error_of([&] { finalize_args(b); }).find("do_eval: needs a test set"), std::string::npos);
  b = a;
  b.resume = "latest";
  EXPECT_NE(error_of([&] { finalize_args(b); }).find("overwrite_output_dir: contradicts resume"), std::string::npos);
}

TEST(Args, SageMakerJsonEncodedValues) {
  TrainArgs a;
  // What the SageMaker Python SDK writes: every value a JSON-encoded string.
  auto hp = nlohmann::json::parse(R"({"epochs": "3", "train_batch_size": "32", "learning_rate": "5e-05",
      "model": "\"../models/tiny\"", "load_best_model_at_end": "true", "text": "content",
      "sagemaker_program": "\"train.py\"", "sagemaker_region": "\"us-east-1\"", "warmup_ratio": 0.06})");
  apply_hyperparameters_json(a, hp, "hyperparameters.json");
  EXPECT_DOUBLE_EQ(a.epochs, 3);
  EXPECT_EQ(a.train_batch_size, 32);
  EXPECT_DOUBLE_EQ(a.learning_rate, 5e-5);
  EXPECT_EQ(a.model, "../models/tiny");
  EXPECT_TRUE(a.load_best_model_at_end);
  EXPECT_EQ(a.text, "content");  // not JSON: taken as it is
  EXPECT_DOUBLE_EQ(a.warmup_ratio, 0.06);
  const std::string err = error_of([&] {
    apply_hyperparameters_json(a, nlohmann::json::parse(R"({"epochs": "\"many\""})"), "hp.json");
  });
  EXPECT_NE(err.find("hp.json"), std::string::npos) << err;
  EXPECT_NE(err.find("epochs"), std::string::npos) << err;
}

TEST(JobEnv, ReadsRootChannelsAndWritesFailure) {
  const fs::path root = fs::temp_directory_path() / ("tuneserve_sm_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "input/config");
  fs::create_directories(root / "input/data/train");
  std::ofstream(root / "input/data/train/reviews.jsonl") << "{}\n";
  std::ofstream(root / "input/config/hyperparameters.json") << R"({"epochs": "2", "seed": "7"})";
  JobEnv env = detect_job_env(root.string());
  EXPECT_TRUE(env.active);
  EXPECT_EQ(env.model_dir, (root / "model").string());
  EXPECT_EQ(resolve_data_path(env.channel_train, "train"), (root / "input/data/train/reviews.jsonl").string());
  TrainArgs a;
  apply_job_env(env, a);
  EXPECT_EQ(a.output_dir, (root / "checkpoints").string());  // the Trainer's working folder
  EXPECT_EQ(a.model_dir, (root / "model").string());         // the final model: what SageMaker uploads
  EXPECT_EQ(a.train, env.channel_train);
  EXPECT_TRUE(a.test.empty());  // no test channel
  EXPECT_DOUBLE_EQ(a.epochs, 2);
  EXPECT_EQ(a.seed, 7);

  std::ofstream(root / "input/data/train/more.csv") << "a,b\n";
  EXPECT_NE(error_of([&] { resolve_data_path(env.channel_train, "train"); }).find("several"), std::string::npos);
  EXPECT_NE(error_of([&] { resolve_data_path((root / "nope").string(), "test"); }).find("does not exist"), std::string::npos);

  write_failure(env, "training diverged");
  std::ifstream failure(env.failure_path());
  std::string line;
  std::getline(failure, line);
  EXPECT_EQ(line, "training diverged");

  std::ofstream(root / "input/config/hyperparameters.json") << "[1, 2";
  EXPECT_THROW(detect_job_env(root.string()), tuneserve::Error);
  fs::remove_all(root);
}
