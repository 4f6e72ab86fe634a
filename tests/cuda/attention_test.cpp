// CUDA attention against the CPU twin (kernels/cpu/attention.h): the padded API with masks
// (holes, fully masked rows) and dropout, and the packed (cu_seqlens) API against the CPU padded
// layout it replaces, forward and backward, dropout masks included.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "cuda/cuda_test_util.h"
#include "kernels/cpu/attention.h"
#include "kernels/cuda/attention.h"

namespace tuneserve {
namespace {

using testing::DeviceVec;
using testing::expect_close;
using testing::randn;

// Attention sums T products per output; 1e-4 covers fp32 reassociation at T <= 200.
constexpr double kAtol = 1e-4, kRtol = 1e-4;

struct Case {
  int B, T, NH, HS;
  float p;
};

std::string name(const Case& c) {
  std::ostringstream s;
  s << "B" << c.B << " T" << c.T << " NH" << c.NH << " HS" << c.HS << " p" << c.p;
  return s.str();
}

TEST(CudaAttention, PaddedMatchesCpuWithMaskAndDropout) {
  TUNESERVE_REQUIRE_GPU();
  std::mt19937 rng(11);
  for (const Case& c : {Case{2, 5, 2, 32, 0.0f}, Case{3, 70, 4, 64, 0.1f}, Case{2, 130, 2, 128, 0.2f},
                        Case{1, 17, 12, 64, 0.0f}}) {
    const int C = c.NH * c.HS, B = c.B, T = c.T;
    const std::size_t BT = static_cast<std::size_t>(B) * T;
    const std::vector<float> qkv = randn(BT * 3 * C, rng), dout = randn(BT * C, rng);
    // Row 0: a prefix of real tokens; row 1: holes; row 2: nothing to attend to (uniform rows).
    std::vector<std::int32_t> mask(BT, 1);
    for (int t = T / 2 + 1; t < T; ++t) mask[t] = 0;
    if (B > 1)
      for (int t = 0; t < T; t += 3) mask[T + t] = 0;
    if (B > 2)
      for (int t = 0; t < T; ++t) mask[2 * T + t] = 0;
    const DropoutKey key{1234, 99};
    std::vector<float> out(BT * C), att(BT * c.NH * T), dqkv(BT * 3 * C);
    attention_forward_generic(out.data(), att.data(), qkv.data(), mask.data(), B, T, C, c.NH, c.p, key);
    attention_backward_generic(dqkv.data(), dout.data(), qkv.data(), att.data(), B, T, C, c.NH, c.p, key);

    DeviceVec<float> d_qkv(qkv), d_dout(dout), d_out(out.size()), d_att(att.size()), d_dqkv(dqkv.size());
    DeviceVec<std::int32_t> d_mask(mask);
    cuda::attention_forward(d_out.get(), d_att.get(), d_qkv.get(), d_mask.get(), B, T, C, c.NH, c.p, key);
    expect_close(d_out.back(), out, kAtol, kRtol, "padded out " + name(c));
    expect_close(d_att.back(), att, 1e-6, 1e-4, "padded att " + name(c));
    cuda::attention_backward(d_dqkv.get(), d_dout.get(), d_qkv.get(), d_att.get(), B, T, C, c.NH, c.p, key);
    expect_close(d_dqkv.back(), dqkv, kAtol, kRtol, "padded dqkv " + name(c));

    // A query prefix (the pruned last layer) with the dropout index moved (a packed sequence).
    const AttentionRows rows{std::max(1, T / 3), T + 5, 12345};
    const std::size_t BTq = static_cast<std::size_t>(B) * rows.queries;
    std::vector<float> out_q(BTq * C), att_q(BTq * c.NH * T), dqkv_q(BT * 3 * C);
    const std::vector<float> dout_q(dout.begin(), dout.begin() + static_cast<std::ptrdiff_t>(BTq * C));
    attention_forward_generic(out_q.data(), att_q.data(), qkv.data(), mask.data(), B, T, C, c.NH, c.p, key, rows);
    attention_backward_generic(dqkv_q.data(), dout_q.data(), qkv.data(), att_q.data(), B, T, C, c.NH, c.p, key, rows);
    DeviceVec<float> dq_out(out_q.size()), dq_att(att_q.size()), dq_dout(dout_q), dq_dqkv(dqkv_q.size());
    cuda::attention_forward(dq_out.get(), dq_att.get(), d_qkv.get(), d_mask.get(), B, T, C, c.NH, c.p, key, rows);
    expect_close(dq_out.back(), out_q, kAtol, kRtol, "query-prefix out " + name(c));
    expect_close(dq_att.back(), att_q, 1e-6, 1e-4, "query-prefix att " + name(c));
    cuda::attention_backward(dq_dqkv.get(), dq_dout.get(), d_qkv.get(), dq_att.get(), B, T, C, c.NH, c.p, key, rows);
    expect_close(dq_dqkv.back(), dqkv_q, kAtol, kRtol, "query-prefix dqkv " + name(c));

    // No mask, no att (inference).
    attention_forward_generic(out.data(), nullptr, qkv.data(), nullptr, B, T, C, c.NH, 0.0f, key);
    cuda::attention_forward(d_out.get(), nullptr, d_qkv.get(), nullptr, B, T, C, c.NH, 0.0f, key);
    expect_close(d_out.back(), out, kAtol, kRtol, "unmasked out " + name(c));
  }
}

// Packed sequences against the CPU padded layout: sequence s is row s of a (S, W) padded batch
// whose first len_s tokens are real. Padding rows get zero output gradients, so the real rows'
// gradients are the same in both layouts.
TEST(CudaAttention, VarlenMatchesCpuPaddedLayoutForwardAndBackward) {
  TUNESERVE_REQUIRE_GPU();
  std::mt19937 rng(12);
  for (const auto& [lens, NH, HS, p] : {std::tuple{std::vector<int>{1, 7, 64, 65, 33}, 3, 64, 0.1f},
                                        std::tuple{std::vector<int>{200}, 2, 32, 0.0f},
                                        std::tuple{std::vector<int>{17, 130}, 2, 128, 0.3f}}) {
    const int S = static_cast<int>(lens.size()), C = NH * HS;
    int W = 0, R = 0;
    std::vector<std::int32_t> cu{0};
    for (int len : lens) {
      W = std::max(W, len);
      R += len;
      cu.push_back(R);
    }
    const std::size_t SW = static_cast<std::size_t>(S) * W;
    std::vector<float> qkv_pad = randn(SW * 3 * C, rng), dout_pad = randn(SW * C, rng);
    std::vector<std::int32_t> mask(SW, 0);
    std::vector<float> qkv(static_cast<std::size_t>(R) * 3 * C), dout(static_cast<std::size_t>(R) * C);
    for (int s = 0; s < S; ++s) {
      for (int t = 0; t < W; ++t) {
        const std::size_t pad_row = static_cast<std::size_t>(s) * W + t;
        if (t >= lens[s]) {
          for (int d = 0; d < C; ++d) dout_pad[pad_row * C + d] = 0.0f;
          continue;
        }
        mask[pad_row] = 1;
        const std::size_t row = static_cast<std::size_t>(cu[s]) + t;
        std::copy_n(qkv_pad.begin() + pad_row * 3 * C, 3 * C, qkv.begin() + row * 3 * C);
        std::copy_n(dout_pad.begin() + pad_row * C, C, dout.begin() + row * C);
      }
    }
    const DropoutKey key{77, 5};
    std::vector<float> out_pad(SW * C), att(SW * NH * W), dqkv_pad(SW * 3 * C);
    attention_forward_generic(out_pad.data(), att.data(), qkv_pad.data(), mask.data(), S, W, C, NH, p, key);
    attention_backward_generic(dqkv_pad.data(), dout_pad.data(), qkv_pad.data(), att.data(), S, W, C, NH, p, key);
    std::vector<float> out(static_cast<std::size_t>(R) * C), dqkv(static_cast<std::size_t>(R) * 3 * C);
    for (int s = 0; s < S; ++s)
      for (int t = 0; t < lens[s]; ++t) {
        const std::size_t pad_row = static_cast<std::size_t>(s) * W + t, row = static_cast<std::size_t>(cu[s]) + t;
        std::copy_n(out_pad.begin() + pad_row * C, C, out.begin() + row * C);
        std::copy_n(dqkv_pad.begin() + pad_row * 3 * C, 3 * C, dqkv.begin() + row * 3 * C);
      }

    std::ostringstream label;
    label << "varlen S" << S << " W" << W << " HS" << HS;
    const std::string what = label.str();
    DeviceVec<float> d_qkv(qkv), d_dout(dout), d_out(out.size()), d_lse(static_cast<std::size_t>(R) * NH),
        d_dqkv(dqkv.size());
    DeviceVec<std::int32_t> d_cu(cu);
    cuda::attention_varlen_forward(d_out.get(), d_lse.get(), d_qkv.get(), d_cu.get(), S, W, C, NH, p, key, W);
    expect_close(d_out.back(), out, kAtol, kRtol, what + " out");
    cuda::attention_varlen_backward(d_dqkv.get(), d_dout.get(), d_qkv.get(), d_out.get(), d_lse.get(), d_cu.get(), S,
                                    W, C, NH, p, key, W);
    expect_close(d_dqkv.back(), dqkv, kAtol, kRtol, what + " dqkv");

    // The GPU's own padded path on the same batch gives the same real rows.
    DeviceVec<float> g_qkv(qkv_pad), g_out(out_pad.size()), g_att(att.size());
    DeviceVec<std::int32_t> g_mask(mask);
    cuda::attention_forward(g_out.get(), g_att.get(), g_qkv.get(), g_mask.get(), S, W, C, NH, p, key);
    expect_close(g_out.back(), out_pad, kAtol, kRtol, what + " GPU padded out");
  }
}

TEST(CudaAttention, RejectsUnsupportedHeadSizeClearly) {
  TUNESERVE_REQUIRE_GPU();
  try {
    cuda::attention_forward(nullptr, nullptr, nullptr, nullptr, 1, 4, 48, 2, 0.0f, DropoutKey{});
    ADD_FAILURE() << "no error for head size 24";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("head size 24 is not supported"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tuneserve
