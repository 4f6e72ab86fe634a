// Parity with transformers: logits, every hidden state, the loss and every parameter gradient of the
// tiny DistilBERT / BERT / RoBERTa goldens in ../shared/goldens (fp32, CPU, made by transformers 5.17).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "checkpoint/safetensors.h"
#include "model/model.h"
#include "test_util.h"

namespace tuneserve {
namespace {

struct GoldenInputs {
  int B = 0, T = 0;
  std::vector<std::int32_t> ids, mask, types, labels;
  // Packed (real tokens only) unless `keep_padding` (every (B, T) position, as the goldens' hidden states).
  PackedBatch batch(bool keep_padding = false) const {
    return PackedBatch::from_padded(B, T, ids.data(), mask.data(), types.empty() ? nullptr : types.data(), keep_padding);
  }
};

std::vector<std::int32_t> to_i32(const std::vector<std::int64_t>& v) { return {v.begin(), v.end()}; }

GoldenInputs read_inputs(const SafeTensorsReader& g) {
  GoldenInputs in;
  in.B = static_cast<int>(g.info("input_ids").shape[0]);
  in.T = static_cast<int>(g.info("input_ids").shape[1]);
  in.ids = to_i32(g.read_i64("input_ids"));
  in.mask = to_i32(g.read_i64("attention_mask"));
  if (g.contains("token_type_ids")) in.types = to_i32(g.read_i64("token_type_ids"));
  in.labels = to_i32(g.read_i64("labels"));
  return in;
}

// |a-b| <= atol + rtol*|b| everywhere; reports the worst element.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, float atol, float rtol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  std::size_t worst = 0;
  float worst_excess = -1e30f;
  for (std::size_t i = 0; i < got.size(); ++i) {
    float excess = std::abs(got[i] - want[i]) - (atol + rtol * std::abs(want[i]));
    if (std::isnan(excess)) excess = 1e30f;  // NaN never compares greater: count it as the worst
    if (excess > worst_excess) {
      worst_excess = excess;
      worst = i;
    }
  }
  EXPECT_LE(worst_excess, 0.0f) << what << " at " << worst << ": got " << got[worst] << " want " << want[worst];
}

class Golden : public ::testing::TestWithParam<const char*> {};

TEST_P(Golden, ForwardLogitsAndHiddenStates) {
  const std::string arch = GetParam();
  TUNESERVE_REQUIRE_SHARED("goldens/" + arch + "/golden.safetensors");
  const Model model = Model::load(testing::shared_path("goldens/" + arch));
  const SafeTensorsReader g(testing::shared_path("goldens/" + arch + "/golden.safetensors"));
  const GoldenInputs in = read_inputs(g);
  std::vector<std::vector<float>> hidden;
  const auto logits = model.forward(in.batch(true), {&hidden});
  expect_close(logits, g.read_f32("logits"), 1e-5f, 1e-5f, "logits");
  ASSERT_EQ(hidden.size(), static_cast<std::size_t>(model.config().num_layers + 1));
  for (std::size_t i = 0; i < hidden.size(); ++i)
    expect_close(hidden[i], g.read_f32("hidden_states." + std::to_string(i)), 1e-5f, 1e-5f,
                 "hidden_states." + std::to_string(i));
  // The unpadded fast path (no hidden states requested) gives the same logits.
  expect_close(model.forward(in.batch()), g.read_f32("logits"), 1e-5f, 1e-5f, "logits (unpadded path)");
}

TEST_P(Golden, LossAndEveryParameterGradient) {
  const std::string arch = GetParam();
  TUNESERVE_REQUIRE_SHARED("goldens/" + arch + "/golden.safetensors");
  Model model = Model::load(testing::shared_path("goldens/" + arch));
  const SafeTensorsReader g(testing::shared_path("goldens/" + arch + "/golden.safetensors"));
  const GoldenInputs in = read_inputs(g);
  model.zero_grad();
  model.set_dropout_enabled(false);  // the goldens use dropout 0; this also covers configs that don't
  std::vector<float> logits;
  const float loss = model.forward_backward(in.batch(), Labels{in.labels.data(), nullptr}, 1.0f, &logits);
  EXPECT_NEAR(loss, g.read_f32("loss")[0], 1e-5f * (1.0f + std::abs(g.read_f32("loss")[0])));
  EXPECT_NEAR(model.loss(logits.data(), in.B, Labels{in.labels.data(), nullptr}), loss, 1e-6f);
  int checked = 0;
  for (const Parameter& p : model.parameters()) {
    const std::string key = "grad." + p.name;
    ASSERT_TRUE(g.contains(key)) << key;
    const auto want = g.read_f32(key);
    const std::vector<float> got(p.grad, p.grad + p.numel);
    float scale = 0.0f;
    for (float v : want) scale = std::max(scale, std::abs(v));
    // 1e-4 relative to the tensor's largest element (issue 3): small entries of a gradient are
    // sums of cancelling terms, so an elementwise relative bound would test rounding noise.
    expect_close(got, want, 1e-4f * scale + 1e-10f, 0.0f, key);
    ++checked;
  }
  int golden_grads = 0;
  for (auto& t : g.tensors()) golden_grads += t.name.rfind("grad.", 0) == 0;
  EXPECT_EQ(checked, golden_grads);
}

INSTANTIATE_TEST_SUITE_P(Archs, Golden, ::testing::Values("distilbert", "bert", "roberta"));

}  // namespace
}  // namespace tuneserve
