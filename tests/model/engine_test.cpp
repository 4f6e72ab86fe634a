// The work the engine skips (EngineOptions: the last layer on first tokens only; a packed batch: real
// tokens only) against the full padded reference path: logits, loss and every parameter gradient,
// dropout on.
//
// Dimensions: B batch, T padded length, K labels.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "model/model.h"
#include "test_util.h"

namespace tuneserve {
namespace {

// A padded batch; `mask` rows may be prefixes (packable), left-padded or holed (kept padded).
struct TestBatch {
  std::string name;
  int B, T;
  std::vector<std::int32_t> ids, mask;
  PackedBatch batch(bool keep_padding = false) const {
    return PackedBatch::from_padded(B, T, ids.data(), mask.data(), nullptr, keep_padding);
  }
};

std::vector<TestBatch> batches(const ModelConfig& c) {
  const int T = 7;
  std::vector<std::vector<int>> masks = {
      {1, 1, 1, 1, 1, 0, 0}, {1, 1, 0, 0, 0, 0, 0}, {1, 1, 1, 1, 1, 1, 1}, {1, 0, 0, 0, 0, 0, 0}};
  std::vector<TestBatch> out;
  auto make = [&](const std::string& name, const std::vector<std::vector<int>>& rows) {
    TestBatch tb{name, static_cast<int>(rows.size()), T, {}, {}};
    for (std::size_t b = 0; b < rows.size(); ++b)
      for (int t = 0; t < T; ++t) {
        const bool real = rows[b][t] != 0;
        tb.mask.push_back(real);
        tb.ids.push_back(real ? 3 + static_cast<std::int32_t>((b * 37 + t * 11) % (c.vocab_size - 3))
                              : c.pad_token_id);
      }
    out.push_back(tb);
  };
  make("unequal lengths", masks);
  make("no padding", {masks[2], masks[2]});
  make("a hole (padded fallback)", {{1, 1, 0, 1, 1, 0, 0}, masks[0]});
  make("left padding (padded fallback)", {{0, 0, 1, 1, 1, 1, 1}, masks[1]});
  return out;
}

Model tiny(const std::string& arch, bool dropout) {
  Model model = Model::load(testing::shared_path("goldens/" + arch));
  if (dropout) {
    model.mutable_config().hidden_dropout = 0.1f;
    model.mutable_config().attention_dropout = 0.1f;
    model.mutable_config().classifier_dropout = 0.1f;
  }
  return model;
}

// |a - b| <= atol + rtol * |b| elementwise.
void expect_close(const std::vector<float>& a, const std::vector<float>& b, float atol, float rtol,
                  const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (std::size_t i = 0; i < a.size(); ++i)
    ASSERT_LE(std::abs(a[i] - b[i]), atol + rtol * std::abs(b[i])) << what << "[" << i << "] " << a[i] << " vs " << b[i];
}

class Engine : public ::testing::TestWithParam<const char*> {};

TEST_P(Engine, PrunedLastLayerLogitsEqualTheFullPath) {
  const std::string arch = GetParam();
  TUNESERVE_REQUIRE_SHARED("goldens/" + arch + "/model.safetensors");
  Model model = tiny(arch, false);
  for (const TestBatch& tb : batches(model.config())) {
    model.set_engine_options({true});
    const auto pruned = model.forward(tb.batch());
    std::vector<std::vector<float>> hidden;  // hidden states: the full padded path
    const auto full = model.forward(tb.batch(true), {&hidden});
    model.set_engine_options({false});
    const auto unpruned = model.forward(tb.batch());
    expect_close(pruned, full, 1e-5f, 1e-5f, arch + " " + tb.name + " vs hidden-states path");
    expect_close(pruned, unpruned, 1e-5f, 1e-5f, arch + " " + tb.name + " vs unpruned");
  }
}

struct Step {
  float loss;
  std::vector<float> logits;
  std::vector<std::vector<float>> grads;
};

// One step with the last layer pruned or not, on the batch packed or kept padded.
Step train_step(Model& model, const TestBatch& tb, bool prune, bool packed) {
  model.set_engine_options({prune});
  model.set_dropout(5, 3);
  model.zero_grad();
  const int K = model.config().num_labels;
  std::vector<std::int32_t> labels(tb.B);
  for (int b = 0; b < tb.B; ++b) labels[b] = b % K;
  Step s;
  s.loss = model.forward_backward(tb.batch(!packed), Labels{labels.data(), nullptr}, 1.0f, &s.logits);
  for (auto& p : model.parameters()) s.grads.emplace_back(p.grad, p.grad + p.numel);
  return s;
}

// Dropout on: the masks are keyed by padded position, so every layout draws the same ones.
TEST_P(Engine, PrunedAndUnpaddedTrainingStepsEqualThePaddedStep) {
  const std::string arch = GetParam();
  TUNESERVE_REQUIRE_SHARED("goldens/" + arch + "/model.safetensors");
  Model model = tiny(arch, true);
  const auto& params = model.parameters();
  for (const TestBatch& tb : batches(model.config())) {
    const Step ref = train_step(model, tb, false, false);
    bool any_nonzero = false;
    for (const auto& g : ref.grads) any_nonzero |= std::any_of(g.begin(), g.end(), [](float v) { return v != 0.0f; });
    ASSERT_TRUE(any_nonzero);
    for (const auto& [prune, packed] : {std::pair{true, false}, std::pair{false, true}, std::pair{true, true}}) {
      const std::string what = arch + " " + tb.name + (prune ? " pruned" : "") + (packed ? " unpadded" : "");
      const Step s = train_step(model, tb, prune, packed);
      EXPECT_NEAR(s.loss, ref.loss, 1e-5f * (1 + std::abs(ref.loss))) << what;
      expect_close(s.logits, ref.logits, 1e-5f, 1e-5f, what + " logits");
      for (std::size_t i = 0; i < ref.grads.size(); ++i) {
        float scale = 0.0f;  // gradients: within 1e-5 relative to the tensor's largest element
        for (float v : ref.grads[i]) scale = std::max(scale, std::abs(v));
        expect_close(s.grads[i], ref.grads[i], 1e-5f * std::max(scale, 1e-3f), 0.0f, what + " " + params[i].name);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, Engine, ::testing::Values("distilbert", "bert", "roberta"));

// Inference weights are packed once, by prepare_inference() or the first forward(), and again after
// any weight change; packing early gives the same logits.
TEST(EnginePacking, PreparedUntilTheWeightsChange) {
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/model.safetensors");
  Model model = Model::load(testing::shared_path("goldens/distilbert"));
  const TestBatch tb = batches(model.config())[0];
  EXPECT_FALSE(model.inference_prepared());
  const std::vector<float> lazy = model.forward(tb.batch());
  EXPECT_TRUE(model.inference_prepared());
  model.mark_weights_changed();
  EXPECT_FALSE(model.inference_prepared());
  model.prepare_inference();
  EXPECT_TRUE(model.inference_prepared());
  EXPECT_EQ(model.forward(tb.batch()), lazy);
}

// inference_bytes bounds what a pass's arena holds, however it grew: passes one token longer each
// time regrow it by a quarter, past what the longest of them needs.
// In fp32 and bf16 (whose passes also hold the bf16 operands the kernels write).
TEST(EngineMemory, InferenceBytesBoundTheArenaAfterGrowingPasses) {
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/model.safetensors");
  for (const DType dtype : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(compute_dtype_name(dtype));
    if (dtype == DType::BF16 && !ops::supports(cpu_backend(), DType::BF16)) continue;
    Model model = Model::load(testing::shared_path("goldens/distilbert"));
    model.set_compute_dtype(dtype);
    model.set_concurrent_forwards(1);
    const int longest = 64;
    const std::size_t bound = model.inference_bytes(longest, longest);
    std::size_t largest = 0;
    for (int n = 24; n <= longest; ++n) {
      PackedBatch batch;
      std::vector<std::int32_t> ids(n);
      for (int t = 0; t < n; ++t) ids[t] = 100 + t;
      batch.append(ids);
      model.forward(batch);
      largest = std::max(largest, model.arena_bytes());
      EXPECT_LE(model.arena_bytes(), bound) << "after a pass of " << n << " tokens";
    }
    // The arena did overshoot what the longest pass alone needs (the case the bound is for).
    EXPECT_GT(largest, model.inference_bytes(longest, longest) * 4 / 5);
  }
}

}  // namespace
}  // namespace tuneserve

namespace tuneserve {
namespace {

// Issue 11: a server stops a batch whose requests all timed out; the model polls before each layer.
TEST(EngineStop, ForwardStopsBeforeTheNextLayerWhenAsked) {
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/model.safetensors");
  const Model model = Model::load(testing::shared_path("goldens/distilbert"));
  const TestBatch tb = batches(model.config())[0];
  int polls = 0;
  ForwardOptions keep_going;
  keep_going.stop = [&] { return ++polls < 0; };
  EXPECT_EQ(model.forward(tb.batch(), keep_going), model.forward(tb.batch()));
  EXPECT_EQ(polls, model.config().num_layers);
  polls = 0;
  ForwardOptions stop_at_1;
  stop_at_1.stop = [&] { return ++polls > 1; };
  EXPECT_THROW(model.forward(tb.batch(), stop_at_1), ForwardStopped);
  EXPECT_EQ(polls, 2);
  EXPECT_EQ(model.forward(tb.batch(), keep_going), model.forward(tb.batch()));  // the arena is still usable
}

}  // namespace
}  // namespace tuneserve
