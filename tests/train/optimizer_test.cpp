// Optimizer pieces: decay groups on the goldens' real parameter names, the global grad norm of
// the goldens' gradients against the reference's logged train.grad_norm, clipping, state I/O, and
// the same optimizer on an emulated GPU (tests/emulated_backend.h) bitwise equal to the CPU's.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "core/error.h"
#include "emulated_backend.h"
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
    const AdamW optimizer(g.refs(), AdamWOptions{});
    EXPECT_NEAR(optimizer.grad_norm(), reference, 1e-6 * reference) << arch;
  }
}

TEST(Optimizer, GradNormClipCoefficientAndZeroGrads) {
  std::vector<float> value(4, 0.0f), a{3.0f, 0.0f}, b{0.0f, 4.0f};
  AdamW optimizer({{"a.weight", value.data(), a.data(), 2}, {"b.weight", value.data() + 2, b.data(), 2}}, AdamWOptions{});
  EXPECT_DOUBLE_EQ(optimizer.grad_norm(), 5.0);
  EXPECT_EQ(clip_coefficient(5.0, 10.0), 1.0f);  // below max_norm: unscaled
  EXPECT_EQ(clip_coefficient(5.0, 0.0), 1.0f);   // 0 = off
  EXPECT_EQ(clip_coefficient(5.0, 1.0), static_cast<float>(1.0 / (5.0 + 1e-6)));
  EXPECT_EQ(clip_coefficient(std::nan(""), 1.0), 1.0f);
  EXPECT_EQ(a[0], 3.0f);  // the norm reads, never scales
  optimizer.zero_grads();
  EXPECT_EQ(a, std::vector<float>(2, 0.0f));
  EXPECT_EQ(b, std::vector<float>(2, 0.0f));
  EXPECT_EQ(optimizer.grad_norm(), 0.0);
}

TEST(Optimizer, FusedClipEqualsClippingTheBuffersFirst) {
  std::vector<float> w1{0.5f, -1.5f, 2.0f, 0.1f}, g1{3.0f, -4.0f, 0.5f, 1e-3f};
  std::vector<float> w2 = w1, g2 = g1;
  AdamW a({{"x.weight", w1.data(), g1.data(), 4}}, AdamWOptions{0.9, 0.999, 1e-8, 0.01});
  AdamW b({{"x.weight", w2.data(), g2.data(), 4}}, AdamWOptions{0.9, 0.999, 1e-8, 0.01});
  const double norm = a.grad_norm();
  EXPECT_DOUBLE_EQ(b.grad_norm(), norm);
  const float c = clip_coefficient(norm, 1.0);
  ASSERT_LT(c, 1.0f);
  for (float& g : g1) g *= c;  // clip_grad_norm_: scale the buffers, then step
  a.step(1e-2);
  b.step(1e-2, c);             // g2 untouched, scaled on the fly
  for (int i = 0; i < 4; i++) EXPECT_EQ(w1[i], w2[i]) << i;  // bitwise
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

namespace {

// Tensors of a few shapes (one below and one above the kernels' 65536-element parallel threshold,
// a bias without decay), their values and per-step gradients, from a fixed seed.
struct Problem {
  std::vector<std::string> names{"a.weight", "a.bias", "big.weight", "LayerNorm.weight"};
  std::vector<std::size_t> sizes{37, 5, 70001, 16};
  std::vector<std::vector<float>> values;
  std::vector<std::vector<std::vector<float>>> grads;  // [step][tensor]
  explicit Problem(int steps) {
    std::uint32_t state = 12345;
    auto next = [&] {
      state = state * 1664525u + 1013904223u;
      return static_cast<float>(state >> 8) / static_cast<float>(1u << 24) * 2.0f - 1.0f;
    };
    for (std::size_t n : sizes) {
      values.emplace_back(n);
      for (float& x : values.back()) x = next();
    }
    grads.resize(static_cast<std::size_t>(steps));
    for (auto& step : grads)
      for (std::size_t n : sizes) {
        step.emplace_back(n);
        for (float& x : step.back()) x = next() * 3.0f;
      }
  }
};

// Runs `steps` clipped AdamW steps of `problem` with parameters and gradients in `backend`'s memory;
// returns the grad norms, and the final weights downloaded. `state_in`/`state_out`: optimizer state
// files to resume from before the first step / to write after the last.
std::vector<double> run_steps(const tuneserve::Backend& backend, const Problem& problem, int first, int last,
                              std::vector<std::vector<float>>& weights, const std::string& state_in = "",
                              const std::string& state_out = "") {
  std::vector<tuneserve::DeviceBuffer> values, grads;
  std::vector<ParamRef> refs;
  for (std::size_t i = 0; i < problem.sizes.size(); i++) {
    const std::size_t bytes = problem.sizes[i] * sizeof(float);
    values.emplace_back(backend, bytes);
    grads.emplace_back(backend, bytes);
    values.back().upload(weights[i].data(), bytes);
    refs.push_back({problem.names[i], values.back().as<float>(), grads.back().as<float>(), problem.sizes[i]});
  }
  AdamW optimizer(backend, refs, AdamWOptions{0.9, 0.999, 1e-8, 0.01});
  if (!state_in.empty()) optimizer.load_state(SafeTensorsReader(state_in));
  std::vector<double> norms;
  for (int s = first; s < last; s++) {
    optimizer.zero_grads();
    for (std::size_t i = 0; i < refs.size(); i++)
      grads[i].upload(problem.grads[static_cast<std::size_t>(s)][i].data(), problem.sizes[i] * sizeof(float));
    norms.push_back(optimizer.grad_norm());
    optimizer.step(1e-2 / (s + 1), clip_coefficient(norms.back(), 1.0));
  }
  for (std::size_t i = 0; i < refs.size(); i++) values[i].download(weights[i].data(), problem.sizes[i] * sizeof(float));
  if (!state_out.empty()) {
    SafeTensorsWriter writer;
    optimizer.save_state(writer);
    writer.write(state_out);
  }
  return norms;
}

}  // namespace

// Moments in device memory (the emulator throws on any host pointer given to a kernel and faults on
// any host read of device memory), stepped by the backend: bitwise the CPU's norms and weights, and
// the saved state moves between devices mid-run without changing the trajectory.
TEST(Optimizer, OnAnEmulatedGpuEqualsTheCpuBitwise) {
  const auto dir = std::filesystem::temp_directory_path() / ("tuneserve_opt_gpu_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const Problem problem(5);
  const tuneserve::Backend& gpu = tuneserve::testing::emulated_gpu();
  const std::size_t in_use = tuneserve::testing::emulated_gpu_bytes_in_use();

  std::vector<std::vector<float>> cpu_weights = problem.values, gpu_weights = problem.values;
  const auto cpu_norms = run_steps(tuneserve::cpu_backend(), problem, 0, 5, cpu_weights);
  const auto gpu_norms = run_steps(gpu, problem, 0, 5, gpu_weights);
  EXPECT_EQ(gpu_norms, cpu_norms);
  for (std::size_t i = 0; i < cpu_weights.size(); i++) EXPECT_EQ(gpu_weights[i], cpu_weights[i]) << problem.names[i];
  EXPECT_NE(cpu_weights, problem.values);  // the steps moved the weights
  EXPECT_EQ(tuneserve::testing::emulated_gpu_bytes_in_use(), in_use) << "device memory leaked";

  // Two steps on the GPU, the state saved; three on the CPU from it (and the other way round).
  const std::string gpu_state = (dir / "gpu.safetensors").string(), cpu_state = (dir / "cpu.safetensors").string();
  std::vector<std::vector<float>> a = problem.values, b = problem.values;
  run_steps(gpu, problem, 0, 2, a, "", gpu_state);
  const auto a_norms = run_steps(tuneserve::cpu_backend(), problem, 2, 5, a, gpu_state);
  run_steps(tuneserve::cpu_backend(), problem, 0, 2, b, "", cpu_state);
  const auto b_norms = run_steps(gpu, problem, 2, 5, b, cpu_state);
  EXPECT_EQ(a_norms, std::vector<double>(cpu_norms.begin() + 2, cpu_norms.end()));
  EXPECT_EQ(b_norms, a_norms);
  EXPECT_EQ(a, cpu_weights);
  EXPECT_EQ(b, cpu_weights);
  std::filesystem::remove_all(dir);
}
