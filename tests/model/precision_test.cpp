// The goldens (transformers, fp32) over architecture x device x dtype: in fp32 the model is exact to
// them as golden_test.cpp states (1e-5); with bf16 products the logits stay within 5e-2 absolute, the
// argmax agrees on every row whose top-2 margin exceeds twice the largest logit error (no error that
// small can flip it), the gradient of all parameters together is within 2e-2 of fp32's (relative L2)
// and every element within 2e-2 of the largest gradient element of the model. The worst errors print
// per model (the bounds of issue 12, stated). The emulated GPU computes bitwise what the CPU computes
// in either dtype.
//
// Dimensions: B batch, T tokens, K labels.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <tuple>

#include "checkpoint/safetensors.h"
#include "emulated_backend.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "test_util.h"

namespace tuneserve {
namespace {

enum class Where { Cpu, EmulatedGpu };

struct Golden {
  explicit Golden(const std::string& arch) : reader(testing::shared_path("goldens/" + arch + "/golden.safetensors")) {
    const auto& shape = reader.info("input_ids").shape;
    B = static_cast<int>(shape[0]);
    T = static_cast<int>(shape[1]);
    for (auto v : reader.read_i64("input_ids")) ids.push_back(static_cast<std::int32_t>(v));
    for (auto v : reader.read_i64("attention_mask")) mask.push_back(static_cast<std::int32_t>(v));
    if (reader.contains("token_type_ids"))
      for (auto v : reader.read_i64("token_type_ids")) types.push_back(static_cast<std::int32_t>(v));
    for (auto v : reader.read_i64("labels")) labels.push_back(static_cast<std::int32_t>(v));
  }
  PackedBatch batch() const {
    return PackedBatch::from_padded(B, T, ids.data(), mask.data(), types.empty() ? nullptr : types.data());
  }
  SafeTensorsReader reader;
  int B = 0, T = 0;
  std::vector<std::int32_t> ids, mask, types, labels;
};

// Worst |a - b| and where.
std::pair<double, std::size_t> max_abs(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = std::abs(static_cast<double>(a[i]) - b[i]);
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  return {worst, at};
}

class Precision : public ::testing::TestWithParam<std::tuple<const char*, Where, DType>> {
 protected:
  void SetUp() override {
    const auto [arch, where, dtype] = GetParam();
    std::string why;
    if (dtype == DType::BF16 && !ops::supports(cpu_backend(), DType::BF16, &why)) GTEST_SKIP() << why;
    if (where == Where::EmulatedGpu) gpu_.emplace();
  }
  Model load() const {
    const auto [arch, where, dtype] = GetParam();
    LoadOptions o;
    o.device = where == Where::Cpu ? Device{} : Device{Device::Kind::cuda, 0};
    o.dtype = dtype;
    return Model::load(testing::shared_path(std::string("goldens/") + arch), nullptr, o);
  }
  std::string name() const {
    const auto [arch, where, dtype] = GetParam();
    return fmt::format("{} on {} in {}", arch, where == Where::Cpu ? "cpu" : "the emulated GPU", compute_dtype_name(dtype));
  }
  std::optional<testing::ScopedEmulatedGpu> gpu_;
};

TEST_P(Precision, LogitsWithinTheDtypesBoundAndArgmaxAgrees) {
  const auto [arch, where, dtype] = GetParam();
  TUNESERVE_REQUIRE_SHARED(std::string("goldens/") + arch + "/golden.safetensors");
  const Golden g(arch);
  const Model model = load();
  EXPECT_EQ(model.compute_dtype(), dtype);
  const std::vector<float> want = g.reader.read_f32("logits");
  const std::vector<float> got = model.forward(g.batch());
  ASSERT_EQ(got.size(), want.size());
  const int K = model.config().num_labels;
  const bool bf16 = dtype == DType::BF16;
  const double bound = bf16 ? 5e-2 : 1e-5 + 1e-5 * 10;  // fp32: golden_test's 1e-5 + 1e-5|b| at |b| <= 10
  const auto [err, at] = max_abs(got, want);
  int agree = 0, decided = 0;
  for (int b = 0; b < g.B; ++b) {
    const float* w = want.data() + static_cast<std::size_t>(b) * K;
    const float* o = got.data() + static_cast<std::size_t>(b) * K;
    const int w_arg = static_cast<int>(std::max_element(w, w + K) - w);
    const int o_arg = static_cast<int>(std::max_element(o, o + K) - o);
    agree += w_arg == o_arg;
    float second = -1e30f;
    for (int k = 0; k < K; ++k)
      if (k != w_arg) second = std::max(second, w[k]);
    if (w[w_arg] - second > 2 * err) {
      ++decided;
      EXPECT_EQ(o_arg, w_arg) << name() << ": row " << b << " has margin " << w[w_arg] - second;
    }
  }
  std::printf("[ precision ] %s: logits max |err| %.3g (bound %.3g), argmax agrees on %d of %d rows (%d decided)\n",
              name().c_str(), err, bound, agree, g.B, decided);
  EXPECT_LE(err, bound) << name() << ": logit " << at << " is " << got[at] << ", transformers' fp32 " << want[at];
  EXPECT_GT(decided, 0) << name() << ": no row is decided, the argmax check tests nothing";
  EXPECT_EQ(agree, g.B) << name();  // the goldens' rows are decided even at bf16's error
}

TEST_P(Precision, GradientsWithinTheDtypesBound) {
  const auto [arch, where, dtype] = GetParam();
  TUNESERVE_REQUIRE_SHARED(std::string("goldens/") + arch + "/golden.safetensors");
  const Golden g(arch);
  Model model = load();
  model.zero_grad();
  model.set_dropout_enabled(false);
  const float loss = model.forward_backward(g.batch(), Labels{g.labels.data(), nullptr});
  const float want_loss = g.reader.read_f32("loss")[0];
  const bool bf16 = dtype == DType::BF16;
  EXPECT_NEAR(loss, want_loss, bf16 ? 5e-2 : 1e-5 * (1 + std::abs(want_loss))) << name();
  const Backend& k = backend_for(model.device());
  std::vector<std::vector<float>> got, want;
  double largest = 0, diff2 = 0, norm2 = 0;
  for (const Parameter& p : model.parameters()) {
    want.push_back(g.reader.read_f32("grad." + p.name));
    got.emplace_back(p.numel);
    k.download(got.back().data(), p.grad, p.numel * sizeof(float));
    for (std::size_t i = 0; i < p.numel; ++i) {
      largest = std::max(largest, std::abs(static_cast<double>(want.back()[i])));
      diff2 += std::pow(static_cast<double>(got.back()[i]) - want.back()[i], 2);
      norm2 += std::pow(static_cast<double>(want.back()[i]), 2);
    }
  }
  if (!bf16) return;  // fp32: golden_test.cpp holds each tensor to 1e-4 of its own largest element
  const double rel_l2 = std::sqrt(diff2 / norm2);
  double worst = 0;
  std::string worst_name;
  for (std::size_t t = 0; t < got.size(); ++t) {
    const auto [err, at] = max_abs(got[t], want[t]);
    if (err > worst) {
      worst = err;
      worst_name = model.parameters()[t].name;
    }
    EXPECT_LE(err, 2e-2 * largest) << name() << ": grad." << model.parameters()[t].name << "[" << at << "] "
                                   << got[t][at] << " vs " << want[t][at];
  }
  std::printf("[ precision ] %s: loss %.6f vs %.6f; gradients: relative L2 error %.3g, worst element %.3g of the "
              "largest (%s)\n",
              name().c_str(), loss, want_loss, rel_l2, worst / largest, worst_name.c_str());
  EXPECT_LE(rel_l2, 2e-2) << name();
}

INSTANTIATE_TEST_SUITE_P(ArchByDeviceByDtype, Precision,
                         ::testing::Combine(::testing::Values("distilbert", "bert", "roberta"),
                                            ::testing::Values(Where::Cpu, Where::EmulatedGpu),
                                            ::testing::Values(DType::F32, DType::BF16)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param)) + "_" +
                                  (std::get<1>(info.param) == Where::Cpu ? "cpu" : "emulated_gpu") + "_" +
                                  compute_dtype_name(std::get<2>(info.param));
                         });

// bf16 products on the emulated GPU: the same bits as on the CPU, inference and a training step.
TEST(PrecisionDevices, Bf16IsBitwiseTheSameOnTheEmulatedGpu) {
  TUNESERVE_REQUIRE_SHARED("goldens/bert/golden.safetensors");
  std::string why;
  if (!ops::supports(cpu_backend(), DType::BF16, &why)) GTEST_SKIP() << why;
  const testing::ScopedEmulatedGpu scoped;
  const Golden g("bert");
  LoadOptions o;
  o.dtype = DType::BF16;
  Model cpu = Model::load(testing::shared_path("goldens/bert"), nullptr, o);
  o.device = Device{Device::Kind::cuda, 0};
  Model gpu = Model::load(testing::shared_path("goldens/bert"), nullptr, o);
  const auto lc = cpu.forward(g.batch()), lg = gpu.forward(g.batch());
  EXPECT_EQ(std::memcmp(lc.data(), lg.data(), lc.size() * sizeof(float)), 0);
  for (Model* m : {&cpu, &gpu}) {
    m->mutable_config().hidden_dropout = 0.1f;
    m->set_dropout(3, 1);
    m->zero_grad();
  }
  const float a = cpu.forward_backward(g.batch(), Labels{g.labels.data(), nullptr});
  const float b = gpu.forward_backward(g.batch(), Labels{g.labels.data(), nullptr});
  EXPECT_EQ(std::memcmp(&a, &b, sizeof(float)), 0) << a << " vs " << b;
  const Backend& k = backend_for(gpu.device());
  for (std::size_t i = 0; i < cpu.parameters().size(); ++i) {
    const Parameter& pc = cpu.parameters()[i];
    const Parameter& pg = gpu.parameters()[i];
    std::vector<float> gg(pg.numel);
    k.download(gg.data(), pg.grad, pg.numel * sizeof(float));
    ASSERT_EQ(std::memcmp(gg.data(), pc.grad, pc.numel * sizeof(float)), 0) << pc.name;
  }
}

// Head sizes 64 and 32: the golden distilbert's weights read with 1 and 2 heads (its 4 heads of 16
// run the attention in fp32). There, on a CPU with AVX512-BF16, the attention's own products are bf16
// too (kernels/cpu/attention.h). The logits stay within the bf16 bound of the same model's fp32 ones
// (fp32 is what the goldens test exact, for any head count) and keep every decided row's argmax.
TEST(PrecisionDevices, Bf16AttentionProductsStayWithinTheBound) {
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/golden.safetensors");
  std::string why;
  if (!ops::supports(cpu_backend(), DType::BF16, &why)) GTEST_SKIP() << why;
  const Golden g("distilbert");
  for (const int heads : {1, 2}) {
    Model model = Model::load(testing::shared_path("goldens/distilbert"));
    model.mutable_config().num_heads = heads;
    const std::vector<float> fp32 = model.forward(g.batch());
    model.set_compute_dtype(DType::BF16);
    const std::vector<float> bf16 = model.forward(g.batch());
    const auto [err, at] = max_abs(bf16, fp32);
    const int K = model.config().num_labels;
    int decided = 0;
    for (int b = 0; b < g.B; ++b) {
      const float* w = fp32.data() + static_cast<std::size_t>(b) * K;
      const float* o = bf16.data() + static_cast<std::size_t>(b) * K;
      const auto w_arg = std::max_element(w, w + K) - w;
      float second = -1e30f;
      for (int k = 0; k < K; ++k)
        if (k != w_arg) second = std::max(second, w[k]);
      if (w[w_arg] - second <= 2 * err) continue;
      ++decided;
      EXPECT_EQ(std::max_element(o, o + K) - o, w_arg) << heads << " head(s): row " << b;
    }
    std::printf("[ precision ] distilbert read with %d head(s) of %d, bf16 vs fp32: logits max |err| %.3g (bound "
                "0.05), %d of %d rows decided\n",
                heads, model.config().hidden_size / heads, err, decided, g.B);
    EXPECT_NE(bf16, fp32) << "the bf16 forward ran fp32 products";
    EXPECT_LE(err, 5e-2) << heads << " head(s): logit " << at << " is " << bf16[at] << ", fp32 " << fp32[at];
    EXPECT_GT(decided, 0) << "no row is decided, the argmax check tests nothing";
  }
}

// Switching a loaded model's dtype repacks; bf16 training leaves the fp32 master weights fp32.
TEST(PrecisionDevices, SwitchingDtypeRepacksAndKeepsFp32MasterWeights) {
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/golden.safetensors");
  std::string why;
  if (!ops::supports(cpu_backend(), DType::BF16, &why)) GTEST_SKIP() << why;
  const Golden g("distilbert");
  Model model = Model::load(testing::shared_path("goldens/distilbert"));
  const auto fp32 = model.forward(g.batch());
  model.set_compute_dtype(DType::BF16);
  const auto bf16 = model.forward(g.batch());
  EXPECT_NE(fp32, bf16) << "the bf16 forward ran fp32 products";
  EXPECT_LE(max_abs(fp32, bf16).first, 5e-2);
  // Weights after a bf16 step are not bf16-rounded: the master copy is untouched by the products.
  std::vector<float> before(model.parameters()[0].data, model.parameters()[0].data + model.parameters()[0].numel);
  model.forward_backward(g.batch(), Labels{g.labels.data(), nullptr});
  EXPECT_EQ(std::vector<float>(model.parameters()[0].data, model.parameters()[0].data + model.parameters()[0].numel),
            before);
  bool unrounded = false;
  for (float v : before) unrounded |= bf16_value(round_to_bf16(v)) != v;
  EXPECT_TRUE(unrounded) << "the test weights happen to be bf16 values: the check tells nothing";
  model.set_compute_dtype(DType::F32);
  EXPECT_EQ(model.forward(g.batch()), fp32);
}

}  // namespace
}  // namespace tuneserve
