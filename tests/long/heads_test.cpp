// Every head trains from real data, end to end through the CLI (prep -> train -> eval -> predict):
// regression on STS-B sentence pairs, multi-label on GoEmotions' 28 emotions, each on a slice short
// enough for CI. Regression must beat what a model that learnt nothing gets: a constant answer (the
// training mean) has no correlation with the targets (the tiny model trained from scratch correlates,
// 0.13 on this slice and 0.18 on the full set, but does not yet beat the mean's MSE). Multi-label: see
// its test for the bar.
// Then `eval` agrees with training's own evaluation and `predict` applies what transformers' pipeline
// applies by default: nothing for regression, a sigmoid for multi-label.
// Tens of seconds each: label `long`.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using tuneserve::testing::binary_path;
using tuneserve::testing::run_command;
using tuneserve::testing::shared_path;

struct Workdir {
  fs::path dir;
  explicit Workdir(const std::string& name) : dir(fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(dir);
  }
  ~Workdir() { fs::remove_all(dir); }
  std::string out(const std::string& sub) const { return (dir / sub).string(); }
};

std::string run_ok(const std::string& args) {
  std::string out;
  const int rc = run_command(binary_path() + " " + args, out);
  EXPECT_EQ(rc, 0) << args << "\n" << out;
  return out;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// A short fine-tune of the tiny model on a prepared train/test pair (the Amazon recipe's settings).
nlohmann::json train(const Workdir& r, const std::string& epochs, const std::string& lr) {
  run_ok("train --model " + shared_path("models/distilbert-tiny-init") + " --train " + r.out("data/train") + " --test " +
         r.out("data/test") + " --epochs " + epochs + " --learning-rate " + lr +
         " --train-batch-size 32 --eval-batch-size 64 --warmup-ratio 0.06 --weight-decay 0.01 --seed 0"
         " --save-strategy no --logging-steps 50 --progress false --threads 2 --output-dir " + r.out("model"));
  return read_json(r.out("model/eval_results.json"));
}

// The MSE on the test rows of predicting the training rows' mean target.
double mean_baseline_mse(const Workdir& r) {
  const auto train = tuneserve::data::TokenizedDataset::open(r.out("data/train"));
  const auto test = tuneserve::data::TokenizedDataset::open(r.out("data/test"));
  const auto v = train.values();
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double mse = 0;
  for (float t : test.values()) mse += (t - mean) * (t - mean);
  return mse / static_cast<double>(test.values().size());
}

// `eval` on the test rows gives training's own final evaluation, and `predict` scores as the pipeline
// does by default for this problem type (`function`), not as another function would.
void check_eval_and_predict(const Workdir& r, const nlohmann::json& trained, const char* key, const std::string& text,
                            const std::string& function, const std::string& other) {
  const auto e = nlohmann::json::parse(run_ok("eval --model " + r.out("model") + " --data " + r.out("data/test") + " --json"));
  EXPECT_NEAR(e[key].get<double>(), trained[key].get<double>(), 1e-6) << key;
  const std::string predict = "predict --model " + r.out("model") + " --top-k all " + text;
  const std::string by_default = run_ok(predict);
  EXPECT_EQ(by_default, run_ok(predict + " --function-to-apply " + function));
  EXPECT_NE(by_default, run_ok(predict + " --function-to-apply " + other));
}

TEST(Heads, RegressionOnStsbSentencePairs) {
  TUNESERVE_REQUIRE_SHARED("data/stsb/train.tsv");
  TUNESERVE_REQUIRE_SHARED("models/distilbert-tiny-init/model.safetensors");
  Workdir r("tuneserve_heads_stsb");
  run_ok("prep --input " + shared_path("data/stsb/train.tsv") + " --test-input " + shared_path("data/stsb/dev.tsv") +
         " --text sentence1,sentence2 --label score --problem-type regression --tokenizer " +
         shared_path("tokenizers/bert-base-cased") + " --max-length 128 --shuffle --seed 0 --select 2000 --test-select 500"
         " --quiet --output " + r.out("data"));
  const nlohmann::json e = train(r, "3", "5e-4");
  const double baseline = mean_baseline_mse(r);
  std::printf("STS-B dev (500 rows): pearson %.4f spearman %.4f mse %.4f (the training mean: mse %.4f)\n",
              e["eval_pearson"].get<double>(), e["eval_spearmanr"].get<double>(), e["eval_mse"].get<double>(), baseline);
  // Measured 0.1257 / 0.1499 (mse 2.85; the mean's 2.36).
  EXPECT_GT(e["eval_pearson"].get<double>(), 0.05);
  EXPECT_GT(e["eval_spearmanr"].get<double>(), 0.05);
  const auto config = read_json(r.out("model/config.json"));
  EXPECT_EQ(config["problem_type"], "regression");
  EXPECT_EQ(config["id2label"].size(), 1u);
  check_eval_and_predict(r, e, "eval_pearson", "'A man is playing a guitar.' --text-pair 'A man plays the guitar.'", "none",
                         "sigmoid");
}

// IMDB's `rating` (1-4 and 7-10): one float per review, learnt well enough by the tiny model to beat
// the training mean's MSE, unlike STS-B's similarity.
TEST(Heads, RegressionOnImdbRatings) {
  TUNESERVE_REQUIRE_SHARED("data/imdb/train.jsonl.gz");
  TUNESERVE_REQUIRE_SHARED("models/distilbert-tiny-init/model.safetensors");
  Workdir r("tuneserve_heads_imdb");
  run_ok("prep --input " + shared_path("data/imdb/train.jsonl.gz") + " --test-input " + shared_path("data/imdb/test.jsonl.gz") +
         " --text text --label rating --problem-type regression --tokenizer " + shared_path("tokenizers/bert-base-cased") +
         " --max-length 128 --shuffle --seed 0 --select 2000 --test-select 500 --quiet --output " + r.out("data"));
  const nlohmann::json e = train(r, "3", "2e-3");
  const double baseline = mean_baseline_mse(r);
  std::printf("IMDB ratings (500 test reviews): pearson %.4f spearman %.4f mse %.4f mae %.4f (the training mean: mse %.4f)\n",
              e["eval_pearson"].get<double>(), e["eval_spearmanr"].get<double>(), e["eval_mse"].get<double>(),
              e["eval_mae"].get<double>(), baseline);
  // Measured 0.4264 / 0.4218, mse 9.82 against the mean's 11.85.
  EXPECT_GT(e["eval_pearson"].get<double>(), 0.3);
  EXPECT_GT(e["eval_spearmanr"].get<double>(), 0.3);
  EXPECT_LT(e["eval_mse"].get<double>(), 0.93 * baseline);
}

TEST(Heads, MultiLabelOnGoEmotions) {
  TUNESERVE_REQUIRE_SHARED("data/goemotions/train.tsv");
  TUNESERVE_REQUIRE_SHARED("models/distilbert-tiny-init/model.safetensors");
  Workdir r("tuneserve_heads_goemotions");
  std::ifstream names_file(shared_path("data/goemotions/emotions.txt"));
  std::string names, name;
  while (std::getline(names_file, name)) names += (names.empty() ? "" : ",") + name;
  run_ok("prep --input " + shared_path("data/goemotions/train.tsv") + " --test-input " + shared_path("data/goemotions/dev.tsv") +
         " --columns text,labels,id --text text --label labels --problem-type multi_label_classification --label-names " +
         names + " --tokenizer " + shared_path("tokenizers/bert-base-cased") +
         " --max-length 64 --shuffle --seed 0 --select 2000 --test-select 500 --quiet --output " + r.out("data"));
  const nlohmann::json e = train(r, "1", "2e-3");
  // What the most frequent label on every row would score (micro F1 = 2 tp / (predicted + true)).
  const auto test = tuneserve::data::TokenizedDataset::open(r.out("data/test"));
  const auto& counts = test.manifest().label_counts;
  ASSERT_EQ(counts.size(), 28u);
  EXPECT_EQ(counts[27], *std::max_element(counts.begin(), counts.end()));  // neutral
  const double top = static_cast<double>(counts[27]);
  const double labels = static_cast<double>(std::accumulate(counts.begin(), counts.end(), std::int64_t{0}));
  std::printf("GoEmotions dev (500 rows): loss %.4f f1 micro %.4f macro %.4f subset accuracy %.4f (every row 'neutral': "
              "micro %.4f)\n", e["eval_loss"].get<double>(), e["eval_f1_micro"].get<double>(), e["eval_f1_macro"].get<double>(),
              e["eval_subset_accuracy"].get<double>(), 2 * top / (static_cast<double>(test.size()) + labels));
  // The tiny model trained from scratch on this slice does not yet put any label over 0.5 (F1 0, as
  // on 4,000 rows x 2 epochs; the README says so), so the bar here is the loss: BCE-with-logits
  // trained from the untrained head's ~0.69 down to the labels' rarity (a sign or scale error in
  // the head's gradient stays far above).
  EXPECT_LT(e["eval_loss"].get<double>(), 0.2);
  for (const char* key : {"eval_f1_micro", "eval_f1_macro", "eval_subset_accuracy"})
    EXPECT_TRUE(e[key].is_number()) << key;
  const auto config = read_json(r.out("model/config.json"));
  EXPECT_EQ(config["problem_type"], "multi_label_classification");
  EXPECT_EQ(config["id2label"]["27"], "neutral");
  check_eval_and_predict(r, e, "eval_loss", "'Thank you so much, this made my day!'", "sigmoid", "softmax");
}

}  // namespace
