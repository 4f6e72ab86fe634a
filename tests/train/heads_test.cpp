// Regression and multi-label heads through the trainer: the loss each problem type needs reaches
// the model (eval loss = the metric it is), a run stopped and resumed from its checkpoint ends with
// the weights of an uninterrupted one (the same loop as classification), and the saved config.json
// says problem_type and num_labels so transformers and `serve` load the head as trained.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/dataset.h"
#include "model/model.h"
#include "synthetic_rows.h"
#include "test_util.h"
#include "train/data_source.h"
#include "train/trainer.h"

namespace tuneserve::train {
namespace {

namespace fs = std::filesystem;

struct Head {
  const char* problem_type;
  int K;
};

class Heads : public ::testing::TestWithParam<Head> {};

TrainArgs args_for(const std::string& model) {
  TrainArgs a;
  a.model = model;
  a.train = "synthetic";
  a.test = "synthetic";
  a.train_batch_size = 4;
  a.gradient_accumulation_steps = 2;  // 10 batches -> 5 updates
  a.epochs = 1;
  a.learning_rate = 1e-3;
  a.logging_steps = 1;
  a.save_strategy = "steps";
  a.save_steps = 2;
  a.eval_strategy = "epoch";
  a.seed = 5;
  finalize_args(a);
  return a;
}

Model head_model(const std::string& dir, const data::TokenizedDataset& d) {
  LoadOptions o;
  o.labels = model_label_names(d.manifest());
  o.problem_type = d.manifest().problem_type;
  o.new_head_on_mismatch = true;  // the checkpoint's head has 2 outputs
  return Model::load(dir, nullptr, o);
}

TEST_P(Heads, TrainEvaluateResumeAndSave) {
  TUNESERVE_REQUIRE_SHARED("models/distilbert-tiny-init/model.safetensors");
  const Head h = GetParam();
  const std::string model_dir = testing::shared_path("models/distilbert-tiny-init");
  const fs::path root = fs::temp_directory_path() / fmt::format("tuneserve_heads_{}_{}_{}", h.problem_type, h.K, ::getpid());
  fs::remove_all(root);
  Model::set_num_threads(2);
  Model reference = Model::load(model_dir);
  const data::TokenizedDataset rows = testing::synthetic_target_rows(reference.config().vocab_size, h.problem_type, h.K);
  reference = head_model(model_dir, rows);
  ASSERT_EQ(reference.config().num_labels, h.K);
  const TrainArgs args = args_for(model_dir);
  const TrainOutcome full = train_model(reference, args, rows, &rows, {(root / "full").string(), "", ""});
  ASSERT_TRUE(full.eval_results);
  const nlohmann::json& e = *full.eval_results;

  // The loss is the problem type's: MSE (its mean over every value is the eval MSE) or BCE-with-logits
  // (recomputed here from the model's logits).
  if (std::string(h.problem_type) == data::kRegression) {
    EXPECT_NEAR(e["eval_loss"].get<double>(), e["eval_mse"].get<double>(), 1e-5);
    EXPECT_TRUE(e.contains("eval_pearson") && e.contains("eval_spearmanr") && e.contains("eval_mae"));
  } else {
    double bce = 0;
    for (std::size_t r = 0; r < rows.size(); r++) {
      const std::vector<std::int64_t> one{static_cast<std::int64_t>(r)};
      const auto logits = reference.forward(rows.batch(one).tokens);
      for (int k = 0; k < h.K; k++) {
        const double z = logits[static_cast<std::size_t>(k)], y = rows.targets(r)[static_cast<std::size_t>(k)];
        bce += (std::max(z, 0.0) - z * y + std::log1p(std::exp(-std::abs(z)))) / h.K;
      }
    }
    EXPECT_NEAR(e["eval_loss"].get<double>(), bce / static_cast<double>(rows.size()), 1e-4);
    EXPECT_TRUE(e.contains("eval_f1_micro") && e.contains("eval_f1_macro") && e.contains("eval_subset_accuracy"));
  }
  EXPECT_FALSE(e.contains("eval_accuracy"));

  // Stopped after step 3 and resumed: the uninterrupted run's weights, bit for bit.
  std::atomic<bool> stop{false};
  TrainHooks hooks;
  hooks.stop = &stop;
  hooks.on_step = [&](long step, long, double) { if (step == 3) stop = true; };
  Model first = head_model(model_dir, rows);
  ASSERT_TRUE(train_model(first, args, rows, &rows, {(root / "split").string(), "", ""}, hooks).interrupted);
  TrainArgs again = args;
  again.resume = "latest";
  Model second = head_model(model_dir, rows);
  train_model(second, again, rows, &rows, {(root / "split").string(), "", ""});
  const auto& a = reference.parameters();
  const auto& b = second.parameters();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); i++)
    EXPECT_TRUE(std::equal(a[i].data, a[i].data + a[i].numel, b[i].data)) << a[i].name;

  // config.json: what transformers reads to pick the loss and the pipeline its function_to_apply.
  std::ifstream in(root / "full/config.json");
  const auto config = nlohmann::json::parse(in);
  EXPECT_EQ(config["problem_type"], h.problem_type);
  EXPECT_EQ(config["id2label"].size(), static_cast<std::size_t>(h.K));
  const Model saved = Model::load((root / "full").string());
  EXPECT_EQ(saved.config().problem_type, h.problem_type);
  EXPECT_EQ(saved.config().num_labels, h.K);
  fs::remove_all(root);
}

INSTANTIATE_TEST_SUITE_P(ProblemTypes, Heads,
                         ::testing::Values(Head{data::kRegression, 1}, Head{data::kRegression, 2}, Head{data::kMultiLabel, 3}),
                         [](const ::testing::TestParamInfo<Head>& i) {
                           return std::string(i.param.problem_type == std::string(data::kRegression) ? "Regression" : "MultiLabel") +
                                  std::to_string(i.param.K);
                         });

TEST(Heads, AModelAndDataOfDifferentProblemTypesAreRefused) {
  TUNESERVE_REQUIRE_SHARED("models/distilbert-tiny-init/model.safetensors");
  const std::string model_dir = testing::shared_path("models/distilbert-tiny-init");
  const Model plain = Model::load(model_dir);
  const auto multi = testing::synthetic_target_rows(plain.config().vocab_size, data::kMultiLabel, 3);
  const auto regression = testing::synthetic_target_rows(plain.config().vocab_size, data::kRegression, 1);
  const Model m = head_model(model_dir, regression);
  const std::string msg = testing::error_of([&] { evaluate(m, multi, 8); });
  EXPECT_NE(msg.find("the model is trained for regression (config.json problem_type) but the evaluation data is "
                     "multi_label_classification"), std::string::npos) << msg;
  const auto two = testing::synthetic_target_rows(plain.config().vocab_size, data::kRegression, 2);
  const std::string outputs = testing::error_of([&] { evaluate(m, two, 8); });
  EXPECT_NE(outputs.find("the evaluation data has 2 targets per row (regression) but the model's head has 1 outputs"),
            std::string::npos) << outputs;
}

}  // namespace
}  // namespace tuneserve::train
