// Checkpoints and resume: a run stopped mid-epoch (as Ctrl-C stops it) and resumed from its
// checkpoint ends with bitwise the same weights and the same logged losses as an uninterrupted
// run, with dropout on and gradient accumulation; save_total_limit keeps only the last K.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/dataset.h"
#include "model/model.h"
#include "synthetic_rows.h"
#include "test_util.h"
#include "train/trainer.h"

namespace tuneserve::train {
namespace {

namespace fs = std::filesystem;

data::TokenizedDataset synthetic(int vocab) { return testing::synthetic_rows(vocab); }

TrainArgs base_args(const std::string& model) {
  TrainArgs a;
  a.model = model;
  a.train = "synthetic";
  a.train_batch_size = 4;
  a.gradient_accumulation_steps = 2;  // 10 batches -> 5 updates per epoch, last group of 2
  a.epochs = 2;
  a.learning_rate = 1e-3;
  a.weight_decay = 0.01;
  a.warmup_ratio = 0.2;
  a.logging_steps = 1;
  a.save_strategy = "steps";
  a.save_steps = 3;
  a.save_total_limit = 2;
  a.seed = 11;
  finalize_args(a);
  return a;
}

std::vector<std::string> read_lines(const fs::path& p) {
  std::vector<std::string> out;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(Resume, InterruptedRunResumesToTheSameWeights) {
  TUNESERVE_REQUIRE_SHARED("models/distilbert-tiny-init/model.safetensors");
  const std::string model_dir = testing::shared_path("models/distilbert-tiny-init");
  const fs::path root = fs::temp_directory_path() / ("tuneserve_resume_" + std::to_string(::getpid()));
  fs::remove_all(root);
  Model::set_num_threads(2);

  Model reference = Model::load(model_dir);
  const data::TokenizedDataset train = synthetic(reference.config().vocab_size);
  const TrainArgs args = base_args(model_dir);
  TrainOutcome full = train_model(reference, args, train, nullptr, {(root / "full").string(), "", ""});
  ASSERT_FALSE(full.interrupted);
  EXPECT_EQ(full.global_step, 10);
  // save_total_limit 2: steps 3, 6, 9 were saved, only the last two remain.
  EXPECT_FALSE(fs::exists(root / "full/checkpoint-3"));
  EXPECT_TRUE(fs::exists(root / "full/checkpoint-6/optimizer.safetensors"));
  EXPECT_TRUE(fs::exists(root / "full/checkpoint-9/model.safetensors"));

  // Stop after step 4 (mid-epoch, as a SIGINT would): a checkpoint is written at step 4.
  std::atomic<bool> stop{false};
  TrainHooks hooks;
  hooks.stop = &stop;
  hooks.on_step = [&](long step, long, double) { if (step == 4) stop = true; };
  Model first = Model::load(model_dir);
  TrainOutcome part = train_model(first, args, train, nullptr, {(root / "split").string(), "", ""}, hooks);
  ASSERT_TRUE(part.interrupted);
  EXPECT_EQ(part.global_step, 4);
  EXPECT_TRUE(fs::exists(root / "split/checkpoint-4/trainer_state.json"));
  EXPECT_FALSE(fs::exists(root / "split/model.safetensors"));  // no final model for a stopped run

  TrainArgs again = args;
  again.resume = "latest";
  Model second = Model::load(model_dir);  // fresh weights: everything must come from the checkpoint
  TrainOutcome rest = train_model(second, again, train, nullptr, {(root / "split").string(), "", ""});
  EXPECT_EQ(rest.global_step, 10);

  const auto& a = reference.parameters();
  const auto& b = second.parameters();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); i++) {
    std::size_t differing = 0;
    for (std::size_t j = 0; j < a[i].numel; j++) differing += a[i].data[j] != b[i].data[j];
    EXPECT_EQ(differing, 0u) << a[i].name;
  }
  // The weights did move, so equality is not trivial.
  Model initial = Model::load(model_dir);
  EXPECT_NE(initial.parameters()[0].data[5000], a[0].data[5000]);
  // The metrics history of the resumed run is the uninterrupted one.
  EXPECT_EQ(read_lines(root / "full/metrics.jsonl").size(), read_lines(root / "split/metrics.jsonl").size());
  const auto full_lines = read_lines(root / "full/metrics.jsonl");
  const auto split_lines = read_lines(root / "split/metrics.jsonl");
  for (std::size_t i = 0; i < full_lines.size() && i < split_lines.size(); i++) {
    auto x = nlohmann::json::parse(full_lines[i]), y = nlohmann::json::parse(split_lines[i]);
    EXPECT_EQ(x["loss"], y["loss"]) << "log line " << i;
    EXPECT_EQ(x["grad_norm"], y["grad_norm"]) << "log line " << i;
  }
  fs::remove_all(root);
}

TEST(Resume, RefusesACheckpointOfAnotherRecipe) {
  TUNESERVE_REQUIRE_SHARED("models/distilbert-tiny-init/model.safetensors");
  const std::string model_dir = testing::shared_path("models/distilbert-tiny-init");
  const fs::path root = fs::temp_directory_path() / ("tuneserve_resume2_" + std::to_string(::getpid()));
  fs::remove_all(root);
  Model m = Model::load(model_dir);
  const data::TokenizedDataset train = synthetic(m.config().vocab_size);
  TrainArgs args = base_args(model_dir);
  args.max_steps = 3;
  train_model(m, args, train, nullptr, {root.string(), "", ""});
  ASSERT_TRUE(fs::exists(root / "checkpoint-3"));
  TrainArgs other = args;
  other.train_batch_size = 8;
  other.resume = (root / "checkpoint-3").string();
  Model fresh = Model::load(model_dir);
  try {
    train_model(fresh, other, train, nullptr, {root.string(), "", ""});
    ADD_FAILURE() << "resume with another batch size was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train_batch_size"), std::string::npos) << e.what();
  }
  other = args;
  other.resume = (root / "nothing-here").string();
  EXPECT_THROW(train_model(fresh, other, train, nullptr, {root.string(), "", ""}), Error);
  fs::remove_all(root);
}

// Issue 11: a stray checkpoint-99999999999999999999999 folder stopped training with "error: stol".
TEST(Checkpoints, FoldersThatAreNotCheckpointsAreIgnored) {
  const fs::path dir = fs::temp_directory_path() / ("tuneserve_stray_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  for (const char* name : {"checkpoint-3", "checkpoint-12", "checkpoint-99999999999999999999999", "checkpoint-",
                           "checkpoint-7x", "checkpoint--4"}) {
    fs::create_directories(dir / name);
    std::ofstream(dir / name / "trainer_state.json") << "{}";
  }
  EXPECT_EQ(fs::path(latest_checkpoint(dir.string())).filename(), "checkpoint-12");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tuneserve::train
