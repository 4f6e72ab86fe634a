// kernels/ops.h, the checked layer, over device x dtype: the linear family (plain and prepared, with
// GELU, strided outputs) on the CPU and the emulated GPU in fp32 and bf16 against a double reference
// (fp32 ~1e-5; bf16 against the reference of the bf16-rounded operands ~1e-5 and against fp32 within
// 4e-2), fp32 <-> bf16 conversion bit for bit against the scalar rounding, and the checks: a wrong
// shape, dtype or device is an Error naming the op and the argument.
//
// Dimensions: M rows, K input features, N output features.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "emulated_backend.h"
#include "kernels/ops.h"

namespace tuneserve {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

enum class Where { Cpu, EmulatedGpu };

const Backend& backend_of(Where where) { return where == Where::Cpu ? cpu_backend() : testing::emulated_gpu(); }

std::vector<float> randn(std::size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// A device copy of host values, in fp32 or rounded to bf16 (the rounding of ops::convert).
struct DevTensor {
  DevTensor(const Backend& b, const std::vector<float>& host, std::initializer_list<std::int64_t> dims,
            DType dtype = DType::F32)
      : backend(&b), f32(b, host.size() * sizeof(float)), n(host.size()), dtype(dtype), dims(dims) {
    f32.upload(host.data(), n * sizeof(float));
    if (dtype == DType::BF16) {
      bf16 = DeviceBuffer(b, n * sizeof(Bf16));
      ops::convert(b, view(), Tensor(f32.as<float>(), b.device, {static_cast<std::int64_t>(n)}));
    }
  }
  Tensor view() const {
    Tensor t(dtype == DType::BF16 ? bf16.data() : f32.data(), dtype, backend->device, {});
    for (const std::int64_t d : dims) t.shape[static_cast<std::size_t>(t.rank++)] = d;
    return t;
  }
  std::vector<float> back() const {
    std::vector<float> h(n);
    f32.download(h.data(), n * sizeof(float));
    return h;
  }
  const Backend* backend;
  DeviceBuffer f32, bf16;
  std::size_t n;
  DType dtype;
  std::vector<std::int64_t> dims;
};

std::vector<float> rounded(const std::vector<float>& v) {
  std::vector<float> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = bf16_value(round_to_bf16(v[i]));
  return out;
}

// y (M, N) = x W^T + b in double; gelu applies erf-GELU.
std::vector<double> reference(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
                              int M, int K, int N, bool gelu) {
  std::vector<double> y(static_cast<std::size_t>(M) * N);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double s = b[n];
      for (int k = 0; k < K; ++k) s += static_cast<double>(x[m * K + k]) * w[n * K + k];
      y[m * N + n] = gelu ? 0.5 * s * (1.0 + std::erf(s / std::sqrt(2.0))) : s;
    }
  return y;
}

// |a - b| <= atol + rtol * |b| everywhere; the worst element in the message.
void expect_close(const std::vector<float>& got, const std::vector<double>& want, double atol, double rtol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst = -1;
  std::size_t at = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double excess = std::abs(got[i] - want[i]) - (atol + rtol * std::abs(want[i]));
    if (!(excess <= worst)) {
      worst = excess;
      at = i;
    }
  }
  EXPECT_LE(worst, 0.0) << what << ": element " << at << " is " << got[at] << ", want " << want[at];
}

class LinearOps : public ::testing::TestWithParam<std::tuple<Where, DType>> {
 protected:
  void SetUp() override {
    const auto [where, dtype] = GetParam();
    if (dtype == DType::BF16) {
      std::string why;
      if (!ops::supports(cpu_backend(), DType::BF16, &why)) GTEST_SKIP() << why;
    }
  }
};

TEST_P(LinearOps, ForwardBackwardAndPreparedMatchTheReference) {
  const auto [where, dtype] = GetParam();
  const Backend& k = backend_of(where);
  const bool bf16 = dtype == DType::BF16;
  std::mt19937 rng(11);
  for (const auto& [M, K, N] : {std::tuple{1, 8, 2}, std::tuple{37, 96, 50}, std::tuple{130, 256, 384}}) {
    const std::string shape = fmt::format("{}x{}x{} {}", M, K, N, compute_dtype_name(dtype));
    const std::vector<float> x = randn(static_cast<std::size_t>(M) * K, rng),
                             w = randn(static_cast<std::size_t>(N) * K, rng, 1.0f / std::sqrt(static_cast<float>(K))),
                             b = randn(N, rng), dy = randn(static_cast<std::size_t>(M) * N, rng);
    // What the products see: the operands rounded to bf16 (exactly), accumulated in fp32.
    const std::vector<float> xr = bf16 ? rounded(x) : x, wr = bf16 ? rounded(w) : w, dyr = bf16 ? rounded(dy) : dy;
    const double atol = 1e-4, rtol = 1e-4;                       // fp32 accumulation of the given operands
    const double atol32 = bf16 ? 4e-2 : 1e-4, rtol32 = atol32;  // against the unrounded fp32 product

    const DevTensor dx(k, x, {M, K}, dtype), dw(k, w, {N, K}, dtype), db(k, b, {N});
    // Strided output: the product fills N of N + 3 columns and leaves the rest alone.
    const int ld = N + 3;
    DevTensor out(k, std::vector<float>(static_cast<std::size_t>(M) * ld, -7.0f), {M, N});
    ops::linear_forward(k, out.view().strided(ld), dx.view(), dw.view(), db.view());
    std::vector<float> got = out.back(), dense;
    for (int m = 0; m < M; ++m) {
      for (int n = 0; n < N; ++n) dense.push_back(got[static_cast<std::size_t>(m) * ld + n]);
      for (int n = N; n < ld; ++n) ASSERT_EQ(got[static_cast<std::size_t>(m) * ld + n], -7.0f) << shape;
    }
    expect_close(dense, reference(xr, wr, b, M, K, N, false), atol, rtol, "forward " + shape);
    expect_close(dense, reference(x, w, b, M, K, N, false), atol32, rtol32, "forward vs fp32 " + shape);

    // Backward: dinp written, dweight and dbias accumulated onto what they held.
    const std::vector<float> dw0 = randn(w.size(), rng), db0 = randn(N, rng);
    DevTensor dinp(k, std::vector<float>(x.size(), 0.0f), {M, K}), gw(k, dw0, {N, K}), gb(k, db0, {N}),
        dout(k, dy, {M, N});
    ops::linear_backward(k, dinp.view(), gw.view(), gb.view(), dout.view(), dx.view(), dw.view());
    std::vector<double> want_dx(x.size(), 0.0), want_dw(w.size()), want_db(N);
    for (int n = 0; n < N; ++n) {
      double sb = db0[n];
      for (int m = 0; m < M; ++m) sb += dy[m * N + n];  // dbias sums the fp32 dout
      want_db[n] = sb;
      for (int kk = 0; kk < K; ++kk) {
        double s = dw0[n * K + kk];
        for (int m = 0; m < M; ++m) s += static_cast<double>(dyr[m * N + n]) * xr[m * K + kk];
        want_dw[n * K + kk] = s;
      }
    }
    for (int m = 0; m < M; ++m)
      for (int kk = 0; kk < K; ++kk) {
        double s = 0;
        for (int n = 0; n < N; ++n) s += static_cast<double>(dyr[m * N + n]) * wr[n * K + kk];
        want_dx[m * K + kk] = s;
      }
    expect_close(dinp.back(), want_dx, atol, rtol, "dinp " + shape);
    expect_close(gw.back(), want_dw, atol * std::sqrt(M) * 4, rtol, "dweight (+=) " + shape);
    expect_close(gb.back(), want_db, 1e-4 * std::sqrt(M), 1e-5, "dbias (+=) " + shape);

    // Prepared (inference) layers: weights packed once in the dtype, the input rounded per call.
    for (const LinearActivation act : {LinearActivation::None, LinearActivation::Gelu}) {
      const DevTensor w32(k, w, {N, K});
      const auto layer = ops::prepare_linear(k, w32.view(), db.view(), act, dtype);
      const DevTensor x32(k, x, {M, K});
      DevTensor y(k, std::vector<float>(static_cast<std::size_t>(M) * N), {M, N});
      ops::prepared_forward(*layer, y.view(), x32.view());
      const bool gelu = act == LinearActivation::Gelu;
      expect_close(y.back(), reference(xr, wr, b, M, K, N, gelu), atol, rtol,
                   std::string("prepared ") + (gelu ? "gelu " : "") + shape);
      if (!bf16) continue;
      // bf16 operands in a bf16 layer, bit for bit: an input already rounded gives the same result,
      // and a bf16 output is the fp32 result rounded to nearest even.
      const std::vector<float> want = y.back();
      DevTensor y2(k, std::vector<float>(want.size()), {M, N});
      ops::prepared_forward(*layer, y2.view(), dx.view());
      EXPECT_EQ(y2.back(), want) << "bf16 inp, " << shape;
      DevTensor y16(k, std::vector<float>(want.size()), {M, N}, DType::BF16);
      ops::prepared_forward(*layer, y16.view(), dx.view());
      std::vector<Bf16> got16(want.size());
      y16.bf16.download(got16.data(), got16.size() * sizeof(Bf16));
      for (std::size_t i = 0; i < want.size(); ++i)
        ASSERT_EQ(got16[i].bits, round_to_bf16(want[i]).bits) << "bf16 out, element " << i << ", " << shape;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(DeviceByDtype, LinearOps,
                         ::testing::Combine(::testing::Values(Where::Cpu, Where::EmulatedGpu),
                                            ::testing::Values(DType::F32, DType::BF16)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) == Where::Cpu ? "cpu" : "emulated_gpu") + "_" +
                                  compute_dtype_name(std::get<1>(info.param));
                         });

TEST(Convert, RoundsToNearestEvenBitForBitOnEveryDevice) {
  std::string why;
  if (!ops::supports(cpu_backend(), DType::BF16, &why)) GTEST_SKIP() << why;
  std::mt19937 rng(3);
  std::vector<float> v = randn(1000, rng, 100.0f);
  // Ties both ways, the largest finite values, infinities, NaN, zeros and a subnormal.
  for (const std::uint32_t bits : {0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0xff7fffffu, 0x7f800000u, 0xff800000u,
                                   0x7fc00001u, 0x00000000u, 0x80000000u, 0x00000123u, 0x3f7fffffu})
    v.push_back(std::bit_cast<float>(bits));
  for (const Where where : {Where::Cpu, Where::EmulatedGpu}) {
    const Backend& k = backend_of(where);
    const auto n = static_cast<std::int64_t>(v.size());
    DevTensor in(k, v, {n});
    DeviceBuffer half(k, v.size() * sizeof(Bf16)), back(k, v.size() * sizeof(float));
    ops::convert(k, Tensor(half.as<Bf16>(), k.device, {n}), in.view());
    ops::convert(k, Tensor(back.as<float>(), k.device, {n}), Tensor(half.as<Bf16>(), k.device, {n}));
    std::vector<Bf16> got(v.size());
    std::vector<float> widened(v.size());
    half.download(got.data(), got.size() * sizeof(Bf16));
    back.download(widened.data(), widened.size() * sizeof(float));
    for (std::size_t i = 0; i < v.size(); ++i) {
      const Bf16 want = round_to_bf16(v[i]);
      ASSERT_EQ(got[i].bits, want.bits) << "element " << i << " = " << v[i];
      ASSERT_EQ(std::bit_cast<std::uint32_t>(widened[i]), static_cast<std::uint32_t>(want.bits) << 16) << i;
    }
  }
  EXPECT_EQ(round_to_bf16(std::bit_cast<float>(0x3f808000u)).bits, 0x3f80);  // a tie rounds to even
  EXPECT_EQ(round_to_bf16(std::bit_cast<float>(0x3f818000u)).bits, 0x3f82);
  EXPECT_TRUE(std::isnan(bf16_value(round_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

// The kernels that write a bf16 operand beside (LayerNorm) or instead of (attention) their fp32 output:
// bit for bit the fp32 kernel's output rounded by ops::convert, on every device. (Head sizes 16 and 12:
// at multiples of 32 on a CPU with AVX512-BF16, the attention's products are bf16 themselves; the
// kernel test Attention.Bf16ProductsMatchTheReferenceOfRoundedOperands covers those.)
TEST(Bf16Outputs, LayerNormAndAttentionRoundTheirOutputsAsConvertDoes) {
  std::string why;
  if (!ops::supports(cpu_backend(), DType::BF16, &why)) GTEST_SKIP() << why;
  const auto bits_of = [](const Backend& k, const Tensor& t16) {
    std::vector<Bf16> h(static_cast<std::size_t>(t16.numel()));
    k.download(h.data(), t16.data, h.size() * sizeof(Bf16));
    std::vector<std::uint16_t> bits;
    for (const Bf16 b : h) bits.push_back(b.bits);
    return bits;
  };
  std::mt19937 rng(8);
  for (const Where where : {Where::Cpu, Where::EmulatedGpu}) {
    SCOPED_TRACE(where == Where::Cpu ? "cpu" : "emulated gpu");
    const Backend& k = backend_of(where);
    {  // LayerNorm, 70 x 300 (past the parallel threshold). Row 1 holds a NaN; column 0's weight makes
       // infinities, column 1's subnormals (which bf16 flushes to a signed zero).
      const int N = 70, C = 300;
      std::vector<float> a = randn(N * C, rng), b = randn(N * C, rng), w = randn(C, rng), bias = randn(C, rng);
      a[C + 5] = std::numeric_limits<float>::quiet_NaN();
      w[0] = 3e38f;
      w[1] = 1e-39f;
      bias[1] = 0.0f;
      DevTensor ta(k, a, {N, C}), tb(k, b, {N, C}), tw(k, w, {C}), tbias(k, bias, {C});
      DevTensor want(k, std::vector<float>(N * C), {N, C}), got(k, std::vector<float>(N * C), {N, C});
      DevTensor res(k, std::vector<float>(N * C), {N, C}), res2(k, std::vector<float>(N * C), {N, C});
      DeviceBuffer want16(k, N * C * sizeof(Bf16)), got16(k, N * C * sizeof(Bf16));
      const Tensor w16(want16.as<Bf16>(), k.device, {N, C}), g16(got16.as<Bf16>(), k.device, {N, C});
      ops::residual_layernorm_forward(k, want.view(), res.view(), Tensor(), Tensor(), ta.view(), tb.view(), tw.view(),
                                      tbias.view(), 1e-12f);
      ops::convert(k, w16, want.view());
      ops::residual_layernorm_forward(k, got.view(), res2.view(), Tensor(), Tensor(), ta.view(), tb.view(), tw.view(),
                                      tbias.view(), 1e-12f, g16);
      const std::vector<float> want32 = want.back(), got32 = got.back();
      ASSERT_EQ(0, std::memcmp(want32.data(), got32.data(), want32.size() * sizeof(float)));
      const std::vector<std::uint16_t> want_bits = bits_of(k, w16), got_bits = bits_of(k, g16);
      ASSERT_EQ(got_bits, want_bits);
      int nan = 0, inf = 0, zero = 0;
      for (const float v : want32) {
        nan += std::isnan(v);
        inf += std::isinf(v);
        zero += v != 0.0f && std::fpclassify(v) == FP_SUBNORMAL;
      }
      EXPECT_GT(nan, 0);
      EXPECT_GT(inf, 0);
      EXPECT_GT(zero, 0);
    }
    // Attention, fast path (head size 16) and plain loops (12), a masked key, all rows or the first 3.
    for (const int NH : {4, 5}) {
      const int B = 2, T = 37, C = NH == 4 ? 64 : 60;
      for (const int queries : {0, 3}) {
        const int Tq = queries ? queries : T;
        std::vector<std::int32_t> mask(B * T, 1);
        mask[T + 4] = 0;
        DevTensor qkv(k, randn(B * T * 3 * C, rng, 2.0f), {B, T, 3 * C});
        DeviceBuffer dmask(k, mask.size() * sizeof(std::int32_t));
        dmask.upload(mask.data(), mask.size() * sizeof(std::int32_t));
        const Tensor tmask(dmask.as<std::int32_t>(), k.device, {B, T});
        DevTensor out(k, std::vector<float>(B * Tq * C), {B, Tq, C});
        DeviceBuffer want16(k, B * Tq * C * sizeof(Bf16)), got16(k, B * Tq * C * sizeof(Bf16));
        const Tensor w16(want16.as<Bf16>(), k.device, {B, Tq, C}), g16(got16.as<Bf16>(), k.device, {B, Tq, C});
        AttentionRows rows;
        rows.queries = queries;
        ops::attention_forward(k, out.view(), Tensor(), qkv.view(), tmask, NH, 0.0f, {}, rows);
        ops::convert(k, w16, out.view());
        ops::attention_forward(k, g16, Tensor(), qkv.view(), tmask, NH, 0.0f, {}, rows);
        ASSERT_EQ(bits_of(k, g16), bits_of(k, w16)) << NH << " heads, " << Tq << " queries";
      }
    }
  }
}

TEST(OpsChecks, WrongShapeDtypeOrDeviceIsAnErrorNamingTheArgument) {
  const Backend& k = cpu_backend();
  std::vector<float> x(4 * 8), w(3 * 8), b(3), y(4 * 3), ln(8), stats(4);
  const Device cpu;
  const Tensor tx(x.data(), cpu, {4, 8}), tw(w.data(), cpu, {3, 8}), tb(b.data(), cpu, {3}), ty(y.data(), cpu, {4, 3});
  EXPECT_NO_THROW(ops::linear_forward(k, ty, tx, tw, tb));
  EXPECT_THAT([&] { ops::linear_forward(k, ty, tx, Tensor(w.data(), cpu, {3, 7}), tb); },
              ThrowsMessage<Error>(AllOf(HasSubstr("ops::linear_forward"), HasSubstr("'weight'"),
                                         HasSubstr("F32 [3, 7] on cpu"), HasSubstr("[3, 8]"))));
  EXPECT_THAT([&] { ops::linear_forward(k, Tensor(y.data(), cpu, {4, 2}), tx, tw, tb); },
              ThrowsMessage<Error>(AllOf(HasSubstr("'out'"), HasSubstr("[4, 3]"))));
  std::vector<Bf16> w16(3 * 8);
  EXPECT_THAT([&] { ops::linear_forward(k, ty, tx, Tensor(w16.data(), cpu, {3, 8}), tb); },
              ThrowsMessage<Error>(AllOf(HasSubstr("'weight' is BF16 [3, 8] on cpu"), HasSubstr("expected F32"))));
  EXPECT_THAT([&] { ops::layernorm_forward(k, tx, Tensor(stats.data(), cpu, {4}), Tensor(), tx,
                                           Tensor(ln.data(), cpu, {7}), Tensor(ln.data(), cpu, {8}), 1e-5f); },
              ThrowsMessage<Error>(AllOf(HasSubstr("ops::layernorm_forward"), HasSubstr("'weight'"))));
  // A host tensor handed to the emulated GPU's kernels: caught before any kernel runs.
  EXPECT_THAT([&] { ops::linear_forward(testing::emulated_gpu(), ty, tx, tw, tb); },
              ThrowsMessage<Error>(AllOf(HasSubstr("'inp' is F32 [4, 8] on cpu"),
                                         HasSubstr("the kernels run on cuda:0"))));
  EXPECT_THAT([&] { ops::linear_forward(k, ty.strided(2), tx, tw, tb); },
              ThrowsMessage<Error>(HasSubstr("a row stride needs 2 dims and at least as many elements as a row")));
  EXPECT_THAT([&] { ops::convert(k, tx, tw); }, ThrowsMessage<Error>(HasSubstr("only F32 <-> BF16")));
  // bf16 operands only in a layer whose products are bf16, and a bf16 output only contiguous.
  std::vector<Bf16> x16(4 * 8), y16(4 * 6);
  const auto fp32_layer = ops::prepare_linear(k, tw, tb, LinearActivation::None, DType::F32);
  EXPECT_THAT([&] { ops::prepared_forward(*fp32_layer, ty, Tensor(x16.data(), cpu, {4, 8})); },
              ThrowsMessage<Error>(AllOf(HasSubstr("ops::prepared_forward: 'inp' is BF16 [4, 8]"),
                                         HasSubstr("expected contiguous F32 [M, 8]"))));
  EXPECT_THAT([&] { ops::prepared_forward(*fp32_layer, Tensor(y16.data(), cpu, {4, 3}), tx); },
              ThrowsMessage<Error>(HasSubstr("'out' is BF16 [4, 3] on cpu, expected F32 [4, 3]")));
  if (ops::supports(k, DType::BF16, nullptr)) {
    const auto bf16_layer = ops::prepare_linear(k, tw, tb, LinearActivation::None, DType::BF16);
    EXPECT_NO_THROW(
        ops::prepared_forward(*bf16_layer, Tensor(y16.data(), cpu, {4, 3}), Tensor(x16.data(), cpu, {4, 8})));
    EXPECT_THAT([&] { ops::prepared_forward(*bf16_layer, Tensor(y16.data(), cpu, {4, 3}).strided(6), tx); },
                ThrowsMessage<Error>(HasSubstr("expected F32 or BF16 [4, 3] (BF16 only contiguous)")));
  }
  EXPECT_THAT([&] { ops::attention_forward(k, ty, Tensor(), Tensor(x.data(), cpu, {1, 4, 8}), Tensor(), 2, 0.0f, {}, {}); },
              ThrowsMessage<Error>(HasSubstr("expected [B, T, 3C]")));
  // A bf16 attention output is for inference: no probabilities kept, no dropout.
  std::vector<float> qkv(1 * 4 * 24), att(1 * 2 * 4 * 4);
  std::vector<Bf16> out16(1 * 4 * 8);
  const Tensor tqkv(qkv.data(), cpu, {1, 4, 24}), t16(out16.data(), cpu, {1, 4, 8});
  if (ops::supports(k, DType::BF16, nullptr)) {
    EXPECT_NO_THROW(ops::attention_forward(k, t16, Tensor(), tqkv, Tensor(), 2, 0.0f, {}, {}));
    EXPECT_THAT([&] { ops::attention_forward(k, t16, Tensor(att.data(), cpu, {1, 2, 4, 4}), tqkv, Tensor(), 2, 0.0f,
                                             {}, {}); },
                ThrowsMessage<Error>(HasSubstr("a BF16 'out' is for inference: no 'att' and no dropout")));
    EXPECT_THAT([&] { ops::attention_forward(k, t16, Tensor(), tqkv, Tensor(), 2, 0.1f, {}, {}); },
                ThrowsMessage<Error>(HasSubstr("p = 0.1")));
  }
  EXPECT_THAT([&] { ops::residual_layernorm_forward(k, tx, tx, Tensor(), Tensor(), tx, tx, Tensor(ln.data(), cpu, {8}),
                                                    Tensor(ln.data(), cpu, {8}), 1e-5f,
                                                    Tensor(x16.data(), cpu, {4, 7})); },
              ThrowsMessage<Error>(AllOf(HasSubstr("ops::residual_layernorm_forward"), HasSubstr("'out16'"))));
}

TEST(OpsChecks, DevicesWithoutBf16ProductsSaySo) {
  Backend no_bf16 = cpu_backend();
  no_bf16.bf16_available = [](std::string* why) {
    if (why) *why = "no bf16 here";
    return false;
  };
  std::string why;
  EXPECT_FALSE(ops::supports(no_bf16, DType::BF16, &why));
  EXPECT_EQ(why, "no bf16 here");
  EXPECT_TRUE(ops::supports(no_bf16, DType::F32));
  std::vector<float> w(6);
  EXPECT_THAT([&] { ops::prepare_linear(no_bf16, Tensor(w.data(), Device{}, {2, 3}), Tensor(), LinearActivation::None,
                                        DType::BF16); },
              ThrowsMessage<Error>(AllOf(HasSubstr("ops::prepare_linear"), HasSubstr("no bf16 here"))));
  // The kernels that write bf16 operands are part of bf16 inference: the same reason.
  std::vector<float> x(2 * 3), qkv(2 * 9);
  std::vector<Bf16> x16(2 * 3);
  const Device cpu;
  const Tensor tx(x.data(), cpu, {2, 3}), tw(w.data(), cpu, {3});
  EXPECT_THAT([&] { ops::residual_layernorm_forward(no_bf16, tx, tx, Tensor(), Tensor(), tx, tx, tw, tw, 1e-5f,
                                                    Tensor(x16.data(), cpu, {2, 3})); },
              ThrowsMessage<Error>(AllOf(HasSubstr("ops::residual_layernorm_forward"), HasSubstr("no bf16 here"))));
  EXPECT_THAT([&] { ops::attention_forward(no_bf16, Tensor(x16.data(), cpu, {1, 2, 3}), Tensor(),
                                           Tensor(qkv.data(), cpu, {1, 2, 9}), Tensor(), 1, 0.0f, {}, {}); },
              ThrowsMessage<Error>(AllOf(HasSubstr("ops::attention_forward"), HasSubstr("no bf16 here"))));
  EXPECT_THAT([] { ops::require(cpu_backend(), DType::F16, "--dtype"); },
              ThrowsMessage<Error>(HasSubstr("products in F16 are not supported")));
}

}  // namespace
}  // namespace tuneserve
