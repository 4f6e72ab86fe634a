// Optimizer pieces: decay groups on the goldens' real parameter names, the global grad norm of
// the goldens' gradients against the reference's logged train.grad_norm, clipping, state I/O.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "core/error.h"
#include "test_util.h"
#include "train/optimizer.h"

using namespace tuneserve::train;
using tuneserve::SafeTensorsReader;
using tuneserve::SafeTensorsWriter;

TEST(Optimizer, DecayGroupsFollowTransformers) {
  for (const char* name : {"distilbert.embeddings.word_embeddings.weight", "classifier.weight",
                           "bert.encoder.layer.0.attention.self.query.weight",
                           "roberta.encoder.layer.1.output.dense.weight", "classifier.out_proj.weight",
                           "distilbert.transformer.layer.0.ffn.lin1.weight", "bert.pooler.dense.weight"}) {
    EXPECT_TRUE(uses_weight_decay(name)) << name;
  }
  for (const char* name : {"classifier.bias", "distilbert.embeddings.LayerNorm.weight",
                           "distilbert.transformer.layer.0.sa_layer_norm.weight",
                           "distilbert.transformer.layer.1.output_layer_norm.weight",
                           "bert.encoder.layer.0.attention.output.LayerNorm.weight",
                           "roberta.embeddings.LayerNorm.bias", "vocab_layer_norm.weight"}) {
    EXPECT_FALSE(uses_weight_decay(name)) << name;
  }
}

namespace {
struct GoldenGrads {
  std::vector<std::string> names;
  std::vector<std::vector<float>> grads;
  std::vector<std::vector<float>> values;
  std::vector<ParamRef> refs() {
    std::vector<ParamRef> out;
    for (std::size_t i = 0; i < names.size(); i++)
      out.push_back({names[i], values[i].data(), grads[i].data(), grads[i].size()});
    return out;
  }
};

GoldenGrads load_grads(const SafeTensorsReader& golden) {
  GoldenGrads g;
  for (const auto& info : golden.tensors()) {
    if (!info.name.starts_with("grad.")) continue;
    g.names.push_back(info.name.substr(5));
    g.grads.push_back(golden.read_f32(info.name));
    g.values.emplace_back(g.grads.back().size(), 0.0f);
  }
  return g;
}
}  // namespace

TEST(Optimizer, GlobalNormOfGoldenGradientsMatchesReference) {
  for (const char* arch : {"distilbert", "bert", "roberta"}) {
    const std::string rel = std::string("goldens/") + arch + "/golden.safetensors";
    TUNESERVE_REQUIRE_SHARED(rel);
    SafeTensorsReader golden(tuneserve::testing::shared_path(rel));
    GoldenGrads g = load_grads(golden);
    ASSERT_FALSE(g.names.empty());
    const double reference = golden.read_f32("train.grad_norm")[0];
    auto refs = g.refs();
    EXPECT_NEAR(global_grad_norm(refs), reference, 1e-6 * reference) << arch;
  }
}

TEST(Optimizer, ClipScalesOnlyAboveMaxNorm) {
  std::vector<float> value(2, 0.0f), a{3.0f, 0.0f}, b{0.0f, 4.0f};
  std::vector<ParamRef> refs{{"a.weight", value.data(), a.data(), 2}, {"b.weight", value.data(), b.data(), 2}};
  EXPECT_DOUBLE_EQ(clip_grad_norm(refs, 10.0), 5.0);  // below: untouched
  EXPECT_EQ(a[0], 3.0f);
  EXPECT_DOUBLE_EQ(clip_grad_norm(refs, 0.0), 5.0);   // 0 = off
  EXPECT_EQ(b[1], 4.0f);
  EXPECT_DOUBLE_EQ(clip_grad_norm(refs, 1.0), 5.0);   // returns the norm before clipping
  const double coef = 1.0 / (5.0 + 1e-6);
  EXPECT_NEAR(a[0], 3.0 * coef, 1e-7);
  EXPECT_NEAR(b[1], 4.0 * coef, 1e-7);
  EXPECT_NEAR(global_grad_norm(refs), 1.0, 1e-6);
  zero_grads(refs);
  EXPECT_EQ(global_grad_norm(refs), 0.0);
}

TEST(Optimizer, FusedClipEqualsClippingTheBuffersFirst) {
  std::vector<float> w1{0.5f, -1.5f, 2.0f, 0.1f}, g1{3.0f, -4.0f, 0.5f, 1e-3f};
  std::vector<float> w2 = w1, g2 = g1;
  AdamW a({{"x.weight", w1.data(), g1.data(), 4}}, AdamWOptions{0.9, 0.999, 1e-8, 0.01});
  AdamW b({{"x.weight", w2.data(), g2.data(), 4}}, AdamWOptions{0.9, 0.999, 1e-8, 0.01});
  std::vector<ParamRef> ra{a.params()[0]}, rb{b.params()[0]};
  const double norm = clip_grad_norm(ra, 1.0);  // scales g1 in place
  a.step(1e-2);
  EXPECT_DOUBLE_EQ(global_grad_norm(rb), norm);
  b.step(1e-2, clip_coefficient(norm, 1.0));     // g2 untouched, scaled on the fly
  for (int i = 0; i < 4; i++) EXPECT_EQ(w1[i], w2[i]) << i;  // bitwise
  EXPECT_EQ(clip_coefficient(0.5, 1.0), 1.0f);
  EXPECT_EQ(clip_coefficient(5.0, 0.0), 1.0f);
}

TEST(Optimizer, DecayAppliesOnlyToDecayGroup) {
  // Zero gradients: Adam's step is 0, so only decoupled decay moves the weights.
  std::vector<float> w{1.0f}, wb{1.0f}, g{0.0f}, gb{0.0f};
  AdamW opt({{"layer.weight", w.data(), g.data(), 1}, {"layer.bias", wb.data(), gb.data(), 1}},
            AdamWOptions{0.9, 0.999, 1e-8, 0.1});
  opt.step(0.5);
  EXPECT_FLOAT_EQ(w[0], 1.0f - 0.5f * 0.1f);
  EXPECT_FLOAT_EQ(wb[0], 1.0f);
  EXPECT_EQ(opt.steps_taken(), 1);
}

TEST(Optimizer, StateRoundTripContinuesIdentically) {
  const auto dir = std::filesystem::temp_directory_path() / ("tuneserve_opt_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto make = [](std::vector<float>& w, std::vector<float>& g) {
    return AdamW({{"x.weight", w.data(), g.data(), w.size()}}, AdamWOptions{0.9, 0.999, 1e-8, 0.01});
  };
  std::vector<float> w1{0.5f, -0.25f, 2.0f}, g1{0.1f, -0.2f, 0.3f};
  AdamW a = make(w1, g1);
  a.step(1e-2);
  a.step(1e-2);
  SafeTensorsWriter writer;
  a.save_state(writer);
  writer.write((dir / "opt.safetensors").string());

  std::vector<float> w2 = w1, g2 = g1;
  AdamW b = make(w2, g2);
  b.load_state(SafeTensorsReader((dir / "opt.safetensors").string()));
  EXPECT_EQ(b.steps_taken(), 2);
  a.step(5e-3);
  b.step(5e-3);
  for (std::size_t i = 0; i < w1.size(); i++) EXPECT_EQ(w1[i], w2[i]);  // bitwise

  std::vector<float> w3{1.0f}, g3{1.0f};
  AdamW c({{"x.weight", w3.data(), g3.data(), 1}}, AdamWOptions{});
  EXPECT_THROW(c.load_state(SafeTensorsReader((dir / "opt.safetensors").string())), tuneserve::Error);
  std::filesystem::remove_all(dir);
}
