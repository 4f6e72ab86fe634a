// The 4-step training trajectory of transformers' Trainer on the tiny goldens, reproduced by
// train_model itself: step losses, grad norms and lrs (from metrics.jsonl) and every parameter
// after 4 steps (`final.<name>`) within 1e-5. Recipe (golden.json): AdamW lr 1e-3, wd 0.01 except
// bias/LayerNorm, linear schedule warmup 1 of 4 steps, clip 1.0, dropout 0, one batch of 3 rows.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "checkpoint/safetensors.h"
#include "data/dataset.h"
#include "model/model.h"
#include "test_util.h"
#include "train/trainer.h"

namespace tuneserve::train {
namespace {

namespace fs = std::filesystem;

// The golden's padded (B, T) inputs as an unpadded dataset (the batcher pads them back).
data::TokenizedDataset golden_dataset(const SafeTensorsReader& g, int pad_id, int num_labels) {
  const auto& shape = g.info("input_ids").shape;
  const auto B = shape[0], T = shape[1];
  const auto ids = g.read_i64("input_ids");
  const auto mask = g.read_i64("attention_mask");
  const auto types = g.contains("token_type_ids") ? g.read_i64("token_type_ids") : std::vector<std::int64_t>(ids.size(), 0);
  const auto labels = g.read_i64("labels");
  data::TokenizedRows rows;
  for (std::int64_t b = 0; b < B; b++) {
    std::vector<std::int32_t> row_ids, row_types;
    for (std::int64_t t = 0; t < T; t++) {
      if (mask[b * T + t] == 0) continue;
      row_ids.push_back(static_cast<std::int32_t>(ids[b * T + t]));
      row_types.push_back(static_cast<std::int32_t>(types[b * T + t]));
    }
    rows.add(row_ids, row_types, static_cast<std::int32_t>(labels[b]));
  }
  data::Manifest manifest;
  manifest.pad_token_id = pad_id;
  for (int k = 0; k < num_labels; k++) manifest.id2label.push_back(std::to_string(k));
  return data::TokenizedDataset::from_rows(std::move(rows), manifest);
}

std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

class Trajectory : public ::testing::TestWithParam<const char*> {};

TEST_P(Trajectory, FourTrainerStepsMatchTransformers) {
  const std::string arch = GetParam();
  TUNESERVE_REQUIRE_SHARED("goldens/" + arch + "/golden.safetensors");
  const SafeTensorsReader g(testing::shared_path("goldens/" + arch + "/golden.safetensors"));
  Model model = Model::load(testing::shared_path("goldens/" + arch));
  const data::TokenizedDataset train = golden_dataset(g, model.config().pad_token_id, model.config().num_labels);

  TrainArgs args;
  args.model = testing::shared_path("goldens/" + arch);
  args.train = "golden";
  args.train_batch_size = 3;
  args.epochs = 4;  // one batch per epoch: 4 optimizer steps
  args.learning_rate = 1e-3;
  args.weight_decay = 0.01;
  args.warmup_steps = 1;
  args.max_grad_norm = 1.0;
  args.lr_scheduler_type = "linear";
  args.logging_steps = 1;
  args.save_strategy = "no";
  args.dropout = false;
  finalize_args(args);
  const fs::path out = fs::temp_directory_path() / ("tuneserve_traj_" + arch + std::to_string(::getpid()));
  fs::remove_all(out);
  TrainOutcome outcome = train_model(model, args, train, nullptr, {out.string(), "", ""});
  EXPECT_EQ(outcome.global_step, 4);

  const auto logs = read_jsonl(out / "metrics.jsonl");
  ASSERT_EQ(logs.size(), 4u);
  const auto losses = g.read_f32("train.step_loss");
  const auto norms = g.read_f32("train.grad_norm");
  const auto lrs = g.read_f32("train.lr");
  for (std::size_t s = 0; s < 4; s++) {
    EXPECT_EQ(logs[s]["step"].get<long>(), static_cast<long>(s + 1));
    EXPECT_NEAR(logs[s]["loss"].get<double>(), losses[s], 1e-5) << "step " << s;
    EXPECT_NEAR(logs[s]["grad_norm"].get<double>(), norms[s], 1e-5) << "step " << s;
    EXPECT_NEAR(logs[s]["lr"].get<double>(), lrs[s], 1e-9) << "step " << s;
  }
  // Tolerance 1e-5 on every element, with one documented exception: where the reference's step-0
  // gradient is below 10 * eps (1e-7), Adam's first real update lr * g / (|g| + eps) depends on the
  // gradient's last digits, which any fp32 implementation with another summation order changes
  // (BERT's golden sits at loss ln 3, where gradients are sums that cancel to ~1e-9). Those
  // elements get 1e-4 (a tenth of lr); the test also requires them to be rare.
  std::size_t compared = 0, relaxed_used = 0;
  for (const Parameter& p : model.parameters()) {
    const std::string name = "final." + p.name;
    ASSERT_TRUE(g.contains(name)) << name;
    const auto want = g.read_f32(name);
    const auto grad0 = g.read_f32("grad." + p.name);
    ASSERT_EQ(want.size(), p.numel) << name;
    double worst = 0;
    std::size_t at = 0;
    for (std::size_t i = 0; i < p.numel; i++) {
      const double err = std::abs(static_cast<double>(p.data[i]) - want[i]);
      const bool ill_conditioned = std::abs(grad0[i]) < 1e-7;
      if (ill_conditioned && err > 1e-5) relaxed_used++;
      const double excess = err - (ill_conditioned ? 1e-4 : 1e-5);
      if (excess > worst) worst = excess, at = i;
    }
    EXPECT_LE(worst, 0.0) << name << " at " << at << ": got " << p.data[at] << " want " << want[at]
                          << " (step-0 gradient " << grad0[at] << ")";
    compared++;
  }
  EXPECT_LE(relaxed_used, 10u) << "elements needing the near-zero-gradient tolerance";
  EXPECT_EQ(compared, model.parameters().size());
  // The saved model is the trained one, under transformers' names.
  SafeTensorsReader saved((out / "model.safetensors").string());
  EXPECT_EQ(saved.read_f32(model.parameters()[0].name)[0], model.parameters()[0].data[0]);
  fs::remove_all(out);
}

INSTANTIATE_TEST_SUITE_P(Goldens, Trajectory, ::testing::Values("distilbert", "bert", "roberta"));

}  // namespace
}  // namespace tuneserve::train
