// Times the CUDA kernels on the shapes of full-size DistilBERT (C 768, NH 12, F 3072, L 6) fine-tuning
// on Amazon-like lengths, and adds them up into the kernel time of one training step: what exists of
// the tuneserve column of issue 5's table until the model runs on the GPU. Run by bench/gpu_check.sh.
//
// Dimensions: B batch, T padded length, R real tokens (packed), C hidden, NH heads, F ffn, L layers.
//   bench_cuda_kernels [--batch 32] [--reps 20]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cuda/activation.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/dropout.h"
#include "kernels/cuda/layernorm.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/runtime.h"

namespace tuneserve {
namespace {

constexpr int C = 768, NH = 12, F = 3072, L = 6;

// Median milliseconds of `reps` calls after 3 warm-ups, synchronising around each.
double time_ms(int reps, const std::function<void()>& f) {
  for (int i = 0; i < 3; ++i) f();
  cuda::synchronize();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    cuda::synchronize();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Device floats, random N(0, 0.5) (or zeros where values do not matter and the size is large).
struct Buf {
  explicit Buf(std::size_t floats, bool random = true) : b(Device{Device::Kind::cuda, 0}, floats * sizeof(float)) {
    if (!random) {
      cuda::zero(b.data(), floats * sizeof(float));
      return;
    }
    std::vector<float> host(floats);
    std::mt19937 rng(static_cast<unsigned>(floats));
    std::normal_distribution<float> d(0.0f, 0.5f);
    for (float& x : host) x = d(rng);
    b.upload(host.data(), floats * sizeof(float));
  }
  float* f() const { return b.as<float>(); }
  cuda::Bf16* h() const { return b.as<cuda::Bf16>(); }
  DeviceBuffer b;
};

// Log-normal lengths with the Amazon train statistics (median 90, p90 189, clipped to [8, 456]).
std::vector<int> amazon_like_lengths(int B, unsigned seed) {
  std::mt19937 rng(seed);
  std::lognormal_distribution<double> d(std::log(90.0), std::log(189.0 / 90.0) / 1.2816);
  std::vector<int> out(B);
  for (int& n : out) n = std::clamp(static_cast<int>(std::lround(d(rng))), 8, 456);
  return out;
}

void row(const char* what, double ms, double flops, double bytes) {
  std::printf("%-44s %9.3f ms", what, ms);
  if (flops > 0) std::printf("  %7.1f TFLOP/s", flops / ms / 1e9);
  if (bytes > 0) std::printf("  %7.1f GB/s", bytes / ms / 1e6);
  std::printf("\n");
}

int run(int B, int reps) {
  std::string why;
  if (cuda::device_count(&why) == 0) {
    std::printf("bench_cuda_kernels: no usable GPU (%s)\n", why.c_str());
    return 1;
  }
  cuda::set_device(0);
  const std::vector<int> lens = amazon_like_lengths(B, 1);
  std::vector<std::int32_t> cu{0};
  int T = 0;
  for (int n : lens) {
    cu.push_back(cu.back() + n);
    T = std::max(T, n);
  }
  const int R = cu.back();
  std::printf("batch %d, real tokens %d (mean %.1f), padded to longest %d -> %d tokens\n", B, R,
              static_cast<double>(R) / B, T, B * T);
  DeviceBuffer d_cu(Device{Device::Kind::cuda, 0}, cu.size() * sizeof(std::int32_t));
  d_cu.upload(cu.data(), cu.size() * sizeof(std::int32_t));
  const DropoutKey key{1, 2};

  // One encoder layer's kernels on R packed tokens, bf16 products (the training configuration).
  Buf x(static_cast<std::size_t>(R) * F), y(static_cast<std::size_t>(R) * F), g(static_cast<std::size_t>(R) * F),
      x16(static_cast<std::size_t>(R) * F / 2 + 1), w16(static_cast<std::size_t>(F) * C / 2 + 1),
      w(static_cast<std::size_t>(F) * C), dw(static_cast<std::size_t>(F) * C), bias(F), dbias(F);
  double layer_ms = 0.0;
  struct Linear {
    const char* name;
    int K, N;
  };
  for (const Linear& lin : {Linear{"qkv", C, 3 * C}, Linear{"attn out", C, C}, Linear{"ffn lin1", C, F},
                            Linear{"ffn lin2", F, C}}) {
    const double flops = 2.0 * R * lin.K * lin.N;
    const double f =
        time_ms(reps, [&] { cuda::matmul_forward_bf16(y.f(), x16.h(), w16.h(), bias.f(), R, lin.K, lin.N); });
    const double b = time_ms(reps, [&] {
      cuda::matmul_backward_bf16(g.f(), dw.f(), dbias.f(), y.f(), x16.h(), w16.h(), R, lin.K, lin.N);
    });
    row((std::string("linear bf16 fwd ") + lin.name).c_str(), f, flops, 0);
    row((std::string("linear bf16 bwd ") + lin.name).c_str(), b, 2 * flops, 0);
    const double f32 = time_ms(reps, [&] { cuda::matmul_forward(y.f(), x.f(), w.f(), bias.f(), R, lin.K, lin.N); });
    row((std::string("linear fp32 fwd ") + lin.name).c_str(), f32, flops, 0);
    layer_ms += f + b;
  }
  // The bf16 copies of activations the products read (inputs of the four linears).
  const double cast = time_ms(reps, [&] { cuda::to_bf16(x16.h(), x.f(), static_cast<std::size_t>(R) * C); });
  row("to_bf16 (R, C)", cast, 0, 6.0 * R * C);
  layer_ms += cast * (3 + 4.0);  // x, ln1 (C wide) + gelu output (F = 4C wide)

  const std::size_t Rs = static_cast<std::size_t>(R);
  Buf qkv(Rs * 3 * C), out(Rs * C), lse(Rs * NH), dqkv(Rs * 3 * C);
  const double attn_flops = [&] {
    double s = 0;
    for (int n : lens) s += 4.0 * n * n * C;  // QK^T and PV
    return s;
  }();
  const double af = time_ms(reps, [&] {
    cuda::attention_varlen_forward(out.f(), lse.f(), qkv.f(), d_cu.as<std::int32_t>(), B, T, C, NH, 0.1f, key, T);
  });
  const double ab = time_ms(reps, [&] {
    cuda::attention_varlen_backward(dqkv.f(), out.f(), qkv.f(), out.f(), lse.f(), d_cu.as<std::int32_t>(), B, T, C, NH,
                                    0.1f, key, T);
  });
  row("attention varlen fwd (fp32, dropout 0.1)", af, attn_flops, 0);
  row("attention varlen bwd", ab, 2.5 * attn_flops, 0);
  layer_ms += af + ab;
  {
    Buf pq(static_cast<std::size_t>(B) * T * 3 * C), po(static_cast<std::size_t>(B) * T * C),
        patt(static_cast<std::size_t>(B) * NH * T * T);
    const double pf = time_ms(reps, [&] {
      cuda::attention_forward(po.f(), patt.f(), pq.f(), nullptr, B, T, C, NH, 0.1f, key);
    });
    row("attention padded fwd (B x longest, att kept)", pf, 4.0 * B * T * T * C, 0);
  }

  const std::size_t RC = static_cast<std::size_t>(R) * C;
  Buf mean(R), rstd(R), lnw(C), lnb(C);
  const double ln = time_ms(reps, [&] {
    cuda::residual_layernorm_forward(y.f(), x.f(), mean.f(), rstd.f(), x.f(), g.f(), lnw.f(), lnb.f(), R, C, 1e-12f);
  });
  const double lnb_ms = time_ms(reps, [&] {
    cuda::layernorm_backward(g.f(), dw.f(), dbias.f(), y.f(), x.f(), lnw.f(), mean.f(), rstd.f(), R, C);
  });
  const double ge = time_ms(reps, [&] { cuda::gelu_forward(y.f(), x.f(), static_cast<std::size_t>(R) * F); });
  const double geb = time_ms(reps, [&] { cuda::gelu_backward(g.f(), x.f(), y.f(), static_cast<std::size_t>(R) * F); });
  const double dr = time_ms(reps, [&] { cuda::dropout_forward(y.f(), x.f(), RC, 0.1f, key); });
  row("residual + layernorm fwd (R, C)", ln, 0, 16.0 * RC);
  row("layernorm bwd (R, C)", lnb_ms, 0, 16.0 * RC);
  row("gelu fwd (R, F)", ge, 0, 8.0 * R * F);
  row("gelu bwd (R, F)", geb, 0, 12.0 * R * F);
  row("dropout (R, C)", dr, 0, 8.0 * RC);
  layer_ms += 2 * (ln + lnb_ms) + ge + geb + 4 * dr;

  // Fused AdamW over ~65.8M parameters (distilbert-base-cased + head) as one slice.
  const std::size_t P = 65'783'042;
  Buf p(P, false), pg(P, false), m(P, false), v(P, false);
  const std::vector<cuda::ParamSlice> slices{{p.f(), pg.f(), m.f(), v.f(), P, true}};
  Buf norm(2), clip(1);
  const double gn = time_ms(reps, [&] {
    cuda::global_grad_norm(reinterpret_cast<double*>(norm.f()), clip.f(), slices, 1.0);
  });
  const double opt = time_ms(reps, [&] { cuda::adamw_update_all(slices, kernels::cpu::AdamWHyper{}, clip.f()); });
  row("global grad norm (65.8M)", gn, 0, 4.0 * P);
  row("fused AdamW (65.8M)", opt, 0, 28.0 * P);

  const double step_ms = L * layer_ms + gn + opt;
  std::printf("\nkernel-sum estimate of one bf16 training step (B %d, real lengths, unpadded): %.2f ms = %.0f "
              "samples/s\n", B, step_ms, B / step_ms * 1e3);
  std::printf("(L x one layer's kernels + grad norm + AdamW; embeddings, head, loss and launch gaps not included:\n"
              " an estimate to compare with torch_gpu.py's train_real_b%d, not a measured model step)\n", B);
  return 0;
}

}  // namespace
}  // namespace tuneserve

int main(int argc, char** argv) {
  int B = 32, reps = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--batch") == 0) B = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--reps") == 0) reps = std::atoi(argv[i + 1]);
  }
  try {
    return tuneserve::run(B, reps);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_kernels: %s\n", e.what());
    return 1;
  }
}
