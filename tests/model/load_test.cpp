// Loading real-world checkpoint layouts (pre-training heads, legacy names, no prefix, shards), the
// errors for bad files and bad inputs, save round trip, padding invariance, dropout reproducibility,
// and whole-model gradients with dropout on against finite differences.
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "checkpoint/safetensors.h"
#include "core/error.h"
#include "model/model.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace tuneserve {
namespace {

using testing::error_of;

std::string temp_dir(const std::string& name) {
  return testing::fresh_scratch_dir("engine_" + name).string();
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Copies a golden model directory, renaming tensors with `rename` (empty result: drop the tensor).
std::string rewrite_checkpoint(const std::string& arch, const std::string& name,
                               const std::function<std::string(const std::string&)>& rename) {
  const std::string src = testing::shared_path("goldens/" + arch);
  const std::string dir = temp_dir(name);
  fs::copy_file(src + "/config.json", dir + "/config.json");
  const SafeTensorsReader r(src + "/model.safetensors");
  SafeTensorsWriter w;
  for (auto& t : r.tensors()) {
    const std::string to = rename(t.name);
    if (to.empty()) continue;
    const auto v = r.read_f32(t.name);
    w.add_f32(to, t.shape, v.data());
  }
  w.write(dir + "/model.safetensors");
  return dir;
}

struct SmallBatch {
  std::vector<std::int32_t> ids = {5, 17, 33, 8, 2, 0, 5, 9, 0, 0, 0, 0, 5, 44, 71, 13, 91, 3};
  std::vector<std::int32_t> mask = {1, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1};
  std::vector<std::int32_t> labels = {0, 1, 1};
  PackedBatch batch() const { return PackedBatch::from_padded(3, 6, ids.data(), mask.data(), nullptr); }
};

void expect_same(const std::vector<float>& a, const std::vector<float>& b, float tol) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol) << i;
}

TEST(Load, PretrainingCheckpointIgnoresMlmHeadAndInitialisesClassifier) {
  TUNESERVE_REQUIRE_SHARED("models/distilbert-mini-mlm/model.safetensors");
  LoadReport report;
  Model model = Model::load(testing::shared_path("models/distilbert-mini-mlm"), &report);
  for (const char* name : {"vocab_transform.weight", "vocab_transform.bias", "vocab_layer_norm.weight",
                           "vocab_layer_norm.bias", "vocab_projector.bias"})
    EXPECT_TRUE(contains(report.ignored, name)) << name;
  EXPECT_EQ(report.initialized, (std::vector<std::string>{"pre_classifier.weight", "pre_classifier.bias",
                                                          "classifier.weight", "classifier.bias"}));
  EXPECT_EQ(model.config().architectures[0], "DistilBertForSequenceClassification");
  for (const Parameter& p : model.parameters()) {
    if (p.name == "pre_classifier.weight") {  // normal(0, initializer_range)
      double sum = 0, sq = 0;
      for (std::size_t i = 0; i < p.numel; ++i) {
        sum += p.data[i];
        sq += p.data[i] * p.data[i];
      }
      EXPECT_NEAR(sum / p.numel, 0.0, 0.001);
      EXPECT_NEAR(std::sqrt(sq / p.numel), model.config().initializer_range, 0.001);
    }
    if (p.name == "classifier.bias") {
      EXPECT_EQ(*std::max_element(p.data, p.data + p.numel), 0.0f);
    }
  }
  SmallBatch sb;
  const auto logits = model.forward(sb.batch());
  EXPECT_EQ(logits.size(), 6u);
  for (float v : logits) EXPECT_TRUE(std::isfinite(v));
  // Labels chosen at load time (the trainer's dataset) size the new head.
  Model three = Model::load(testing::shared_path("models/distilbert-mini-mlm"), nullptr,
                            LoadOptions{1, {"a", "b", "c"}, "", {}});
  EXPECT_EQ(three.config().num_labels, 3);
  EXPECT_EQ(three.forward(sb.batch()).size(), 9u);
}

TEST(Load, LegacyNamesAndMissingPrefixGiveTheSameModel) {
  TUNESERVE_REQUIRE_SHARED("goldens/bert/model.safetensors");
  const std::string dir = rewrite_checkpoint("bert", "legacy", [](const std::string& n) {
    std::string s = n.rfind("bert.", 0) == 0 ? n.substr(5) : n;  // base-model layout
    for (auto [from, to] : {std::pair{"LayerNorm.weight", "LayerNorm.gamma"}, std::pair{"LayerNorm.bias", "LayerNorm.beta"}}) {
      const auto at = s.find(from);
      if (at != std::string::npos) s = s.substr(0, at) + to;
    }
    return s;
  });
  LoadReport report;
  const Model legacy = Model::load(dir, &report);
  EXPECT_TRUE(contains(report.renamed, "encoder.layer.0.output.LayerNorm.gamma -> bert.encoder.layer.0.output.LayerNorm.weight"));
  EXPECT_TRUE(report.initialized.empty());
  const Model original = Model::load(testing::shared_path("goldens/bert"));
  SmallBatch sb;
  expect_same(legacy.forward(sb.batch()), original.forward(sb.batch()), 0.0f);
}

TEST(Load, MissingOrMisshapedTensorIsAnErrorNamingItAndTheFile) {
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/model.safetensors");
  const std::string missing = rewrite_checkpoint("distilbert", "missing", [](const std::string& n) {
    return n == "distilbert.transformer.layer.1.ffn.lin1.weight" ? std::string() : n;
  });
  std::string e = error_of([&] { Model::load(missing); });
  EXPECT_NE(e.find("distilbert.transformer.layer.1.ffn.lin1.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("[256, 64]"), std::string::npos) << e;

  // A 2-label head loaded with 3 labels.
  e = error_of([&] { Model::load(testing::shared_path("goldens/distilbert"), nullptr, LoadOptions{1, {"a", "b", "c"}, "", {}}); });
  EXPECT_NE(e.find("classifier.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[2, 64]"), std::string::npos) << e;
  EXPECT_NE(e.find("[3, 64]"), std::string::npos) << e;
  // Unless a new head is asked for (transformers' ignore_mismatched_sizes, what fine-tuning on
  // another number of labels or regression targets uses).
  LoadOptions anew{1, {"a", "b", "c"}, "", {}};
  anew.new_head_on_mismatch = true;
  LoadReport report;
  const Model three = Model::load(testing::shared_path("goldens/distilbert"), &report, anew);
  EXPECT_EQ(three.config().num_labels, 3);
  EXPECT_TRUE(contains(report.initialized, "classifier.weight"));
  EXPECT_TRUE(contains(report.ignored, "classifier.weight"));

  const std::string bin = temp_dir("bin_only");
  fs::copy_file(testing::shared_path("goldens/distilbert/config.json"), bin + "/config.json");
  std::ofstream(bin + "/pytorch_model.bin") << "not a checkpoint";
  e = error_of([&] { Model::load(bin); });
  EXPECT_NE(e.find("pytorch_model.bin: refused"), std::string::npos) << e;
  EXPECT_NE(e.find("PyTorch"), std::string::npos) << e;
}

TEST(Load, ShardedCheckpoint) {
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/model.safetensors");
  const std::string src = testing::shared_path("goldens/distilbert");
  const std::string dir = temp_dir("sharded");
  fs::copy_file(src + "/config.json", dir + "/config.json");
  const SafeTensorsReader r(src + "/model.safetensors");
  SafeTensorsWriter a, b;
  nlohmann::json map = nlohmann::json::object();
  for (auto& t : r.tensors()) {
    const bool first = t.name.find("layer.1") == std::string::npos;
    const auto v = r.read_f32(t.name);
    (first ? a : b).add_f32(t.name, t.shape, v.data());
    map[t.name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  a.write(dir + "/model-00001-of-00002.safetensors");
  b.write(dir + "/model-00002-of-00002.safetensors");
  std::ofstream(dir + "/model.safetensors.index.json") << nlohmann::json{{"metadata", {}}, {"weight_map", map}}.dump();
  SmallBatch sb;
  expect_same(Model::load(dir).forward(sb.batch()), Model::load(src).forward(sb.batch()), 0.0f);
}

TEST(Load, SaveRoundTripKeepsTransformersNames) {
  TUNESERVE_REQUIRE_SHARED("goldens/roberta/model.safetensors");
  const Model model = Model::load(testing::shared_path("goldens/roberta"));
  const std::string dir = temp_dir("saved");
  model.save(dir);
  const SafeTensorsReader saved(dir + "/model.safetensors"), original(testing::shared_path("goldens/roberta/model.safetensors"));
  ASSERT_EQ(saved.tensors().size(), original.tensors().size());
  for (auto& t : original.tensors()) {
    ASSERT_TRUE(saved.contains(t.name)) << t.name;
    EXPECT_EQ(saved.read_f32(t.name), original.read_f32(t.name)) << t.name;
  }
  EXPECT_EQ(saved.metadata().at("format"), "pt");
  const ModelConfig c = load_config(dir);
  EXPECT_EQ(c.architectures[0], "RobertaForSequenceClassification");
  EXPECT_EQ(c.raw["bos_token_id"], 0);  // keys the struct does not model survive
  SmallBatch sb;
  expect_same(Model::load(dir).forward(sb.batch()), model.forward(sb.batch()), 0.0f);
}

// ---- issue 11: what a model directory holds is checked before it costs memory or leaks files ----

// Shards named ../x, /abs or sub/x in the index would let a model read files outside its directory
// (and the error leaked their first bytes as a "header length").
TEST(LoadGuards, ShardsMustBeFileNamesInTheModelDirectory) {
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/model.safetensors");
  const std::string src = testing::shared_path("goldens/distilbert");
  const std::string dir = temp_dir("shard_escape");
  fs::copy_file(src + "/config.json", dir + "/config.json");
  fs::copy_file(src + "/model.safetensors", fs::path(dir).parent_path() / "outside.safetensors",
                fs::copy_options::overwrite_existing);
  const SafeTensorsReader r(src + "/model.safetensors");
  for (const std::string shard : {"../outside.safetensors", "/etc/passwd", "sub/model.safetensors", ".."}) {
    nlohmann::json map = nlohmann::json::object();
    for (auto& t : r.tensors()) map[t.name] = shard;
    std::ofstream(dir + "/model.safetensors.index.json") << nlohmann::json{{"weight_map", map}}.dump();
    const std::string e = error_of([&] { Model::load(dir); });
    EXPECT_NE(e.find("shards must be file names in the model directory"), std::string::npos) << shard << ": " << e;
    EXPECT_EQ(e.find("header"), std::string::npos) << e;
  }
  fs::remove(fs::path(dir).parent_path() / "outside.safetensors");
}

TEST(LoadGuards, NonFiniteWeightsAreRefusedUnlessTheCheckIsOff) {
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/model.safetensors");
  for (const float bad : {std::nanf(""), -INFINITY}) {
    const std::string src = testing::shared_path("goldens/distilbert");
    const std::string dir = temp_dir("nan_weights");
    fs::copy_file(src + "/config.json", dir + "/config.json");
    const SafeTensorsReader r(src + "/model.safetensors");
    SafeTensorsWriter w;
    const std::string poisoned = "classifier.weight";  // (K, C): logit 0 reads index 7
    for (auto& t : r.tensors()) {
      auto v = r.read_f32(t.name);
      if (t.name == poisoned) v[7] = bad;
      w.add_f32(t.name, t.shape, v.data());
    }
    w.write(dir + "/model.safetensors");
    const std::string e = error_of([&] { Model::load(dir); });
    EXPECT_NE(e.find("tensor '" + poisoned + "' holds " + fmt::format("{}", bad) + " at index 7"), std::string::npos) << e;
    LoadOptions unchecked;
    unchecked.check_finite = false;
    const Model model = Model::load(dir, nullptr, unchecked);
    SmallBatch sb;
    const auto logits = model.forward(sb.batch());
    EXPECT_FALSE(std::isfinite(logits[0])) << logits[0] << " " << logits[1];  // what the check protects a server from
  }
}

// Runs `command` (exec'd by sh, its output in `log`); returns its exit status and peak RSS in MB.
std::pair<int, long> run_measured(const std::string& command, const std::string& log) {
  const std::string line = "exec " + command + " > " + log + " 2>&1";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  struct rusage usage {};
  ::wait4(pid, &status, 0, &usage);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, usage.ru_maxrss / 1024};
}

// A config.json that disagrees with its 16 MB checkpoint used to allocate what the config asked
// for first (dim 4096: 4.2 GB; num_labels 1e6: 1.3 GB; dim 1e9: a wrapped 1.7e19-byte request). num_labels
// is now at most 1e5 (config.cpp), which is still checked against the checkpoint before allocating.
TEST(LoadGuards, AConfigThatDisagreesWithItsCheckpointFailsBeforeAllocating) {
  TUNESERVE_REQUIRE_SHARED("models/distilbert-tiny-init/model.safetensors");
  const std::string src = testing::shared_path("models/distilbert-tiny-init");
  const nlohmann::json original = nlohmann::json::parse(std::ifstream(src + "/config.json"));
  struct Case {
    nlohmann::json patch;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{{"dim", 4096}, {"hidden_dim", 16384}}, "has shape [28996, 128], expected [28996, 4096]"},
      {{{"num_labels", 100000}}, "classifier.weight' has shape [2, 128], expected [100000, 128] (the config has num_labels = 100000)"},
      {{{"dim", 1000000000}}, "expected [28996, 1000000000]"},
      {{{"n_layers", 1000000000}}, "distilbert.transformer.layer.2.attention.q_lin.weight' is missing"},
  };
  const std::string dir = temp_dir("config_mismatch");
  fs::create_symlink(src + "/model.safetensors", dir + "/model.safetensors");
  for (const Case& c : cases) {
    nlohmann::json config = original;
    config.update(c.patch);
    std::ofstream(dir + "/config.json") << config.dump();
    const std::string log = dir + "/log";
    const auto [status, peak_mb] =
        run_measured(testing::binary_path() + " predict --model " + dir + " --tokenizer " +
                         testing::shared_path("tokenizers/bert-base-cased") + " 'a text'",
                     log);
    std::ifstream in(log);
    const std::string output((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(status, 1) << output;
    EXPECT_NE(output.find(c.expected), std::string::npos) << output;
    EXPECT_LT(peak_mb, 400) << c.patch.dump() << ": " << output;
  }
}

TEST(Inputs, BadIdsAndLengthsAreClearErrors) {
  TUNESERVE_REQUIRE_SHARED("goldens/bert/model.safetensors");
  const Model model = Model::load(testing::shared_path("goldens/bert"));
  std::vector<std::int32_t> ids = {5, 1000, 7};
  auto row = [](const std::vector<std::int32_t>& ids, const std::vector<std::int32_t>& types = {}) {
    PackedBatch b;
    b.append(ids, types);
    return b;
  };
  std::string e = error_of([&] { model.forward(row(ids)); });
  EXPECT_NE(e.find("1000"), std::string::npos) << e;
  EXPECT_NE(e.find("vocabulary"), std::string::npos) << e;
  ids = {5, -1, 7};
  EXPECT_THROW(model.forward(row(ids)), Error);
  std::vector<std::int32_t> types = {0, 2, 0};
  ids = {5, 6, 7};
  e = error_of([&] { model.forward(row(ids, types)); });
  EXPECT_NE(e.find("token_type_ids"), std::string::npos) << e;
  std::vector<std::int32_t> long_ids(65, 5);  // 64 positions
  e = error_of([&] { model.forward(row(long_ids)); });
  EXPECT_NE(e.find("max_position_embeddings"), std::string::npos) << e;
  EXPECT_THROW(model.forward(PackedBatch{}), Error);
  EXPECT_THROW(model.forward(PackedBatch::from_padded(0, 3, ids.data(), nullptr, nullptr)), Error);
}

TEST(Inputs, BatchedEqualsSingleRequestAndPaddingIsInvisible) {
  TUNESERVE_REQUIRE_SHARED("goldens/roberta/model.safetensors");
  const Model model = Model::load(testing::shared_path("goldens/roberta"));
  // RoBERTa pads with id 1.
  std::vector<std::int32_t> ids = {0, 17, 33, 8, 2, 1, 0, 9, 2, 1, 1, 1};
  std::vector<std::int32_t> mask = {1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0};
  const auto batched = model.forward(PackedBatch::from_padded(2, 6, ids.data(), mask.data(), nullptr));
  std::vector<std::vector<float>> hidden;
  const auto padded_path = model.forward(PackedBatch::from_padded(2, 6, ids.data(), mask.data(), nullptr, true), {&hidden});
  const auto first = model.forward(PackedBatch::from_padded(1, 5, ids.data(), nullptr, nullptr));
  const auto second = model.forward(PackedBatch::from_padded(1, 3, ids.data() + 6, nullptr, nullptr));
  expect_same({batched[0], batched[1]}, first, 1e-5f);
  expect_same({batched[2], batched[3]}, second, 1e-5f);
  expect_same(batched, padded_path, 1e-5f);
}

TEST(Training, DropoutStreamIsReproducibleAndResumable) {
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/model.safetensors");
  Model model = Model::load(testing::shared_path("goldens/distilbert"));
  model.mutable_config().hidden_dropout = 0.1f;
  model.mutable_config().attention_dropout = 0.1f;
  model.mutable_config().classifier_dropout = 0.2f;
  SmallBatch sb;
  const Labels labels{sb.labels.data(), nullptr};
  auto grads = [&] {
    std::vector<float> all;
    for (auto& p : model.parameters()) all.insert(all.end(), p.grad, p.grad + p.numel);
    return all;
  };
  model.set_dropout(7, 0);
  model.zero_grad();
  const float l0 = model.forward_backward(sb.batch(), labels);
  const auto g0 = grads();
  const float l1 = model.forward_backward(sb.batch(), labels);  // step 1 of the stream
  EXPECT_EQ(model.dropout_offset(), 2u);
  EXPECT_NE(l0, l1);
  model.set_dropout(7, 1);  // resume at step 1
  EXPECT_EQ(model.forward_backward(sb.batch(), labels), l1);
  model.set_dropout(7, 0);
  model.zero_grad();
  EXPECT_EQ(model.forward_backward(sb.batch(), labels), l0);
  EXPECT_EQ(grads(), g0);
  model.set_dropout_enabled(false);
  std::vector<float> logits;
  const float eval_like = model.forward_backward(sb.batch(), labels, 1.0f, &logits);
  expect_same(logits, model.forward(sb.batch()), 1e-5f);
  EXPECT_NEAR(eval_like, model.loss(logits.data(), 3, labels), 1e-6f);
}

// Whole-model gradients with dropout on, for each loss, against central differences on the largest
// gradient entries of a few tensors (the dropout mask is fixed by resetting the stream).
void fd_case(const std::string& arch, const std::string& problem) {
  TUNESERVE_REQUIRE_SHARED("goldens/" + arch + "/model.safetensors");
  Model model = Model::load(testing::shared_path("goldens/" + arch), nullptr, LoadOptions{1, {}, problem, {}});
  model.mutable_config().hidden_dropout = 0.1f;
  model.mutable_config().attention_dropout = 0.1f;
  model.mutable_config().classifier_dropout = 0.1f;
  SmallBatch sb;
  if (arch == "roberta")
    for (std::size_t i = 0; i < sb.ids.size(); ++i)
      if (!sb.mask[i]) sb.ids[i] = 1;
  const int K = model.config().num_labels;
  std::vector<float> values(3 * K);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>((i * 7) % 3 == 0);
  const Labels labels = problem == "single_label_classification" ? Labels{sb.labels.data(), nullptr}
                                                                  : Labels{nullptr, values.data()};
  auto loss_at = [&] {
    model.set_dropout(3, 0);
    model.zero_grad();
    return static_cast<double>(model.forward_backward(sb.batch(), labels));
  };
  loss_at();
  auto& params = model.parameters();
  std::vector<std::vector<float>> analytic;
  for (auto& p : params) analytic.emplace_back(p.grad, p.grad + p.numel);
  int checked = 0;
  for (std::size_t pi = 0; pi < params.size(); ++pi) {
    const std::string& n = params[pi].name;
    const bool pick = n.find("layer.0") != std::string::npos ? (n.find("weight") != std::string::npos)
                                                             : (n.find("embeddings.LayerNorm.weight") != std::string::npos ||
                                                                n.find("classifier") != std::string::npos ||
                                                                n.find("pooler") != std::string::npos);
    if (!pick) continue;
    const auto& g = analytic[pi];
    const std::size_t at = std::max_element(g.begin(), g.end(), [](float a, float b) { return std::abs(a) < std::abs(b); }) - g.begin();
    float* w = params[pi].data + at;
    const float keep = *w, eps = 1e-2f;
    *w = keep + eps;
    const double up = loss_at();
    *w = keep - eps;
    const double down = loss_at();
    *w = keep;
    const double numeric = (up - down) / (2 * eps);
    EXPECT_NEAR(g[at], numeric, 0.02 * std::abs(numeric) + 1e-4) << arch << " " << problem << " " << n << "[" << at << "]";
    ++checked;
  }
  EXPECT_GE(checked, 6);
}

TEST(Training, GradientsWithDropoutMatchFiniteDifferences) {
  fd_case("distilbert", "single_label_classification");
  fd_case("bert", "multi_label_classification");
  fd_case("roberta", "regression");
}

}  // namespace
}  // namespace tuneserve
