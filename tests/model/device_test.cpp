// The model on a GPU, proven without one: the emulated GPU of tests/emulated_backend.h stands in for
// cuda (device memory the host cannot touch; kernels refuse host pointers) and runs the CPU kernels,
// so logits, hidden states, the loss and every gradient must be BITWISE the CPU model's. Any
// difference is a dataflow bug (a host loop over device memory, a missed upload, a stale buffer).
//
// Dimensions: B batch, T padded length, K labels.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "emulated_backend.h"
#include "kernels/backend.h"
#include "model/model.h"
#include "test_util.h"

namespace tuneserve {
namespace {

const Device kGpu{Device::Kind::cuda, 0};

struct TestBatch {
  std::string name;
  int B, T;
  std::vector<std::int32_t> ids, mask, types;
  PackedBatch batch(bool keep_padding = false) const {
    return PackedBatch::from_padded(B, T, ids.data(), mask.data(), types.empty() ? nullptr : types.data(), keep_padding);
  }
};

// Unequal lengths (unpadded paths), no padding, and a hole and left padding (padded fallbacks).
std::vector<TestBatch> batches(const ModelConfig& c) {
  const int T = 9;
  std::vector<TestBatch> out;
  auto make = [&](const std::string& name, const std::vector<std::vector<int>>& rows) {
    TestBatch tb{name, static_cast<int>(rows.size()), T, {}, {}, {}};
    for (std::size_t b = 0; b < rows.size(); ++b)
      for (int t = 0; t < T; ++t) {
        const bool real = rows[b][t] != 0;
        tb.mask.push_back(real);
        tb.ids.push_back(real ? 4 + static_cast<std::int32_t>((b * 53 + t * 7) % (c.vocab_size - 4)) : c.pad_token_id);
        if (c.type_vocab_size > 1) tb.types.push_back(t >= 4 ? 1 : 0);
      }
    out.push_back(tb);
  };
  make("unequal lengths", {{1, 1, 1, 1, 1, 1, 0, 0, 0}, {1, 1, 0, 0, 0, 0, 0, 0, 0}, {1, 1, 1, 1, 1, 1, 1, 1, 1}});
  make("no padding", {{1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1}});
  make("a hole", {{1, 1, 0, 1, 1, 0, 0, 0, 0}, {1, 1, 1, 0, 0, 0, 0, 0, 0}});
  make("left padding", {{0, 0, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0, 0, 0, 0}});
  return out;
}

void expect_bitwise(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  if (std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0) return;
  std::size_t i = 0;
  while (std::memcmp(&got[i], &want[i], sizeof(float)) == 0) ++i;
  ADD_FAILURE() << what << ": element " << i << " of " << got.size() << " is " << got[i] << " on the emulated GPU, "
                << want[i] << " on the CPU";
}

// A model's tensors copied to the host (values or gradients), whatever its device.
std::vector<std::vector<float>> host_copy(Model& model, bool grads) {
  const Backend& backend = backend_for(model.device());
  std::vector<std::vector<float>> out;
  for (const Parameter& p : model.parameters()) {
    out.emplace_back(p.numel);
    backend.download(out.back().data(), grads ? p.grad : p.data, p.numel * sizeof(float));
  }
  return out;
}

LoadOptions on(const Device& device, std::string problem_type = {}) {
  LoadOptions o;
  o.device = device;
  o.problem_type = std::move(problem_type);
  return o;
}

void enable_dropout(Model& model) {
  model.mutable_config().hidden_dropout = 0.1f;
  model.mutable_config().attention_dropout = 0.1f;
  model.mutable_config().classifier_dropout = 0.1f;
}

class OnEmulatedGpu : public ::testing::TestWithParam<const char*> {
 protected:
  std::string dir() const { return testing::shared_path(std::string("goldens/") + GetParam()); }
  testing::ScopedEmulatedGpu gpu_;
};

TEST_P(OnEmulatedGpu, ForwardLogitsAndHiddenStatesAreBitwiseTheCpus) {
  TUNESERVE_REQUIRE_SHARED(std::string("goldens/") + GetParam() + "/model.safetensors");
  Model cpu = Model::load(dir());
  Model gpu = Model::load(dir(), nullptr, on(kGpu));
  EXPECT_EQ(gpu.device(), kGpu);
  for (const Parameter& p : gpu.parameters()) {
    ASSERT_TRUE(testing::is_emulated_device_address(p.data)) << p.name;
    ASSERT_TRUE(testing::is_emulated_device_address(p.grad)) << p.name;
  }
  for (const bool prune : {true, false}) {
    gpu.set_engine_options({prune});
    cpu.set_engine_options({prune});
    for (const TestBatch& tb : batches(cpu.config())) {
      const std::string what = std::string(GetParam()) + " " + tb.name + (prune ? " pruned" : "");
      expect_bitwise(gpu.forward(tb.batch()), cpu.forward(tb.batch()), what + " logits");
      std::vector<std::vector<float>> hg, hc;
      expect_bitwise(gpu.forward(tb.batch(true), {&hg}), cpu.forward(tb.batch(true), {&hc}), what + " logits (hidden path)");
      ASSERT_EQ(hg.size(), static_cast<std::size_t>(cpu.config().num_layers + 1));
      ASSERT_EQ(hg.size(), hc.size());
      for (std::size_t l = 0; l < hc.size(); ++l) expect_bitwise(hg[l], hc[l], what + " hidden state " + std::to_string(l));
    }
  }
}

// Two steps accumulate (grad_scale 0.5 each), dropout on, for every engine layout.
TEST_P(OnEmulatedGpu, TrainingLossLogitsAndEveryGradientAreBitwiseTheCpus) {
  TUNESERVE_REQUIRE_SHARED(std::string("goldens/") + GetParam() + "/model.safetensors");
  Model cpu = Model::load(dir());
  Model gpu = Model::load(dir(), nullptr, on(kGpu));
  enable_dropout(cpu);
  enable_dropout(gpu);
  const int K = cpu.config().num_labels;
  for (const auto& [prune, packed] :
       {std::pair{false, false}, std::pair{true, false}, std::pair{false, true}, std::pair{true, true}}) {
    for (const TestBatch& tb : batches(cpu.config())) {
      const std::string what = std::string(GetParam()) + " " + tb.name + (prune ? " pruned" : "") +
                               (packed ? " unpadded" : "");
      std::vector<std::int32_t> labels(tb.B);
      for (int b = 0; b < tb.B; ++b) labels[b] = (b + 1) % K;
      for (Model* m : {&cpu, &gpu}) {
        m->set_engine_options({prune});
        m->set_dropout(7, 2);
        m->zero_grad();
      }
      for (int step = 0; step < 2; ++step) {
        std::vector<float> lc, lg;
        const float loss_c = cpu.forward_backward(tb.batch(!packed), Labels{labels.data(), nullptr}, 0.5f, &lc);
        const float loss_g = gpu.forward_backward(tb.batch(!packed), Labels{labels.data(), nullptr}, 0.5f, &lg);
        EXPECT_EQ(std::memcmp(&loss_c, &loss_g, sizeof(float)), 0) << what << ": loss " << loss_g << " vs " << loss_c;
        expect_bitwise(lg, lc, what + " logits step " + std::to_string(step));
      }
      EXPECT_EQ(gpu.dropout_offset(), cpu.dropout_offset());
      const auto gc = host_copy(cpu, true), gg = host_copy(gpu, true);
      const auto& params = cpu.parameters();
      bool any_nonzero = false;
      for (std::size_t i = 0; i < gc.size(); ++i) {
        for (float v : gc[i]) any_nonzero |= v != 0.0f;
        expect_bitwise(gg[i], gc[i], what + " gradient " + params[i].name);
      }
      EXPECT_TRUE(any_nonzero) << what;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, OnEmulatedGpu, ::testing::Values("distilbert", "bert", "roberta"));

// The float-target losses (BCE-with-logits, MSE) take their labels through the device too.
TEST(OnEmulatedGpuLosses, MultiLabelAndRegressionStepsAreBitwiseTheCpus) {
  TUNESERVE_REQUIRE_SHARED("goldens/bert/model.safetensors");
  const testing::ScopedEmulatedGpu scoped;
  const std::string dir = testing::shared_path("goldens/bert");
  for (const std::string problem : {"multi_label_classification", "regression"}) {
    Model cpu = Model::load(dir, nullptr, on(Device{}, problem));
    Model gpu = Model::load(dir, nullptr, on(kGpu, problem));
    const TestBatch tb = batches(cpu.config())[0];
    const int K = cpu.config().num_labels;
    std::vector<float> values(static_cast<std::size_t>(tb.B) * K);
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = problem == "regression" ? 0.25f * i : (i % 3 == 0);
    const float lc = cpu.forward_backward(tb.batch(), Labels{nullptr, values.data()});
    const float lg = gpu.forward_backward(tb.batch(), Labels{nullptr, values.data()});
    EXPECT_EQ(std::memcmp(&lc, &lg, sizeof(float)), 0) << problem << ": " << lg << " vs " << lc;
    const auto gc = host_copy(cpu, true), gg = host_copy(gpu, true);
    for (std::size_t i = 0; i < gc.size(); ++i) expect_bitwise(gg[i], gc[i], problem + " " + cpu.parameters()[i].name);
  }
}

// Weights changed on the device (an AdamW step through the backend) survive save -> load on the CPU.
TEST(OnEmulatedGpuCheckpoint, SavedFromTheDeviceReloadsOnTheCpuWithEqualWeights) {
  TUNESERVE_REQUIRE_SHARED("goldens/roberta/model.safetensors");
  const testing::ScopedEmulatedGpu scoped;
  Model gpu = Model::load(testing::shared_path("goldens/roberta"), nullptr, on(kGpu));
  const Backend& backend = backend_for(gpu.device());
  const TestBatch tb = batches(gpu.config())[0];
  std::vector<std::int32_t> labels(tb.B, 1);
  gpu.forward_backward(tb.batch(), Labels{labels.data(), nullptr});
  std::vector<DeviceBuffer> moments;
  std::vector<OptimizerSlice> slices;
  for (Parameter& p : gpu.parameters()) {
    moments.emplace_back(backend, 2 * p.numel * sizeof(float));
    backend.zero(moments.back().data(), moments.back().bytes());
    float* m = moments.back().as<float>();
    slices.push_back({p.data, p.grad, m, m + p.numel, p.numel, p.weight_decay});
  }
  EXPECT_GT(backend.grad_norm(slices), 0.0);
  kernels::cpu::AdamWHyper hyper;
  hyper.lr = 1e-2;
  backend.adamw_update_all(slices, hyper);
  gpu.mark_weights_changed();

  const std::string out = (std::filesystem::temp_directory_path() / ("tuneserve_device_save_" + std::to_string(::getpid()))).string();
  gpu.save(out);
  Model cpu = Model::load(out);
  const auto wg = host_copy(gpu, false), wc = host_copy(cpu, false);
  ASSERT_EQ(wg.size(), wc.size());
  for (std::size_t i = 0; i < wg.size(); ++i) expect_bitwise(wc[i], wg[i], cpu.parameters()[i].name);
  // And the reloaded weights predict what the device model predicts.
  expect_bitwise(cpu.forward(tb.batch()), gpu.forward(tb.batch()), "logits after reload");
  std::filesystem::remove_all(out);
}

TEST(OnEmulatedGpuModel, FromConfigConcurrentForwardsAndNoGpuError) {
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/model.safetensors");
  {
    const testing::ScopedEmulatedGpu scoped;
    const ModelConfig config = Model::load(testing::shared_path("goldens/distilbert")).config();
    const Model cpu = Model::from_config(config, 9);
    const Model gpu = Model::from_config(config, 9, kGpu);
    const TestBatch tb = batches(config)[0];
    const std::vector<float> want = cpu.forward(tb.batch());
    std::vector<std::vector<float>> got(4);
    std::vector<std::thread> threads;
    for (auto& g : got) threads.emplace_back([&] { g = gpu.forward(tb.batch()); });
    for (auto& t : threads) t.join();
    for (const auto& g : got) expect_bitwise(g, want, "concurrent forward");
  }
  if (cuda_device_count() > 0) GTEST_SKIP() << "a real GPU is present";
  try {
    Model::load(testing::shared_path("goldens/distilbert"), nullptr, on(kGpu));
    ADD_FAILURE() << "loading on cuda:0 without a GPU did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
  }
}

// Concurrent forward() calls on one model (the server's workers) give what one call gives, bitwise:
// cached oneDNN primitives run from several threads at once each with their own scratchpad (before,
// 1 in ~100 runs of this test differed by ~2%).
TEST(OnCpuModel, ConcurrentForwardsAreBitwiseEqualToOne) {
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/model.safetensors");
  const ModelConfig config = Model::load(testing::shared_path("goldens/distilbert")).config();
  const Model reference = Model::from_config(config, 9);
  const Model shared = Model::from_config(config, 9);
  const TestBatch tb = batches(config)[0];
  const std::vector<float> want = reference.forward(tb.batch());
  std::vector<std::vector<std::vector<float>>> got(6, std::vector<std::vector<float>>(8));
  std::vector<std::thread> threads;
  for (auto& g : got)
    threads.emplace_back([&] {
      for (auto& one : g) one = shared.forward(tb.batch());
    });
  for (auto& t : threads) t.join();
  for (const auto& g : got)
    for (const auto& one : g) expect_bitwise(one, want, "concurrent forward");
}

}  // namespace
}  // namespace tuneserve
