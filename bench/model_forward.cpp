// Inference speed of the full-size distilbert-base-cased configuration (random weights) at
// batch 1 x 128 and 32 x 128 tokens, next to its own matrix products alone (the roofline peer:
// the same oneDNN products with pre-packed weights, no attention or elementwise work).
//   build/bench/bench_model_forward [--threads N] [--config PATH] [--reps R] [--train-batch B] [--tokens T]
// and one training step (forward + backward with dropout) at B x T (default 8 x 128).
// The PyTorch comparison lives in the predict benchmark; this one says where the time goes.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "checkpoint/config.h"
#include "kernels/cpu/matmul.h"
#include "model/model.h"

using namespace tuneserve;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Best of `reps` timings of f (after one warm-up call).
template <typename F>
double best_seconds(int reps, F&& f) {
  f();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now();
    f();
    best = std::min(best, now() - t0);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = std::string(TUNESERVE_SHARED_DIR) + "/goldens/configs/distilbert-base-cased/config.json";
  int threads = 2, reps = 5, train_batch = 8, T = 128;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--config")) config_path = argv[i + 1];
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--train-batch")) train_batch = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--tokens")) T = std::atoi(argv[i + 1]);
  }
  Model::set_num_threads(threads);
  const ModelConfig c = load_config(config_path);
  const Model model = Model::from_config(c, 1);
  const int C = c.hidden_size, F = c.intermediate_size, L = c.num_layers;
  std::printf("%s: C=%d F=%d L=%d, %d threads\n", config_path.c_str(), C, F, L, threads);
  std::printf("%-10s %10s %10s %10s %14s %12s\n", "batch", "ms", "seq/s", "GFLOP/s", "matmul-only ms", "matmul GF/s");
  for (int B : {1, 32}) {
    std::vector<std::int32_t> ids(static_cast<std::size_t>(B) * T);
    for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int32_t>(1000 + (i * 7919) % 20000);
    const Batch batch{B, T, ids.data(), nullptr, nullptr};
    const double t = best_seconds(reps, [&] { model.forward(batch); });
    // FLOPs: linear layers 2*(4C^2 + 2CF) per token per layer, attention 4*T*C per token per layer.
    const double M = static_cast<double>(B) * T;
    const double linear_flops = M * L * 2.0 * (4.0 * C * C + 2.0 * C * F);
    const double flops = linear_flops + M * L * 4.0 * T * C;
    // The same products alone.
    std::vector<float> w1(static_cast<std::size_t>(3) * C * C, 0.01f), w2(static_cast<std::size_t>(C) * C, 0.01f),
        w3(static_cast<std::size_t>(F) * C, 0.01f), w4(static_cast<std::size_t>(C) * F, 0.01f);
    PackedLinear qkv(w1.data(), nullptr, C, 3 * C), out(w2.data(), nullptr, C, C),
        fc(w3.data(), nullptr, C, F, PackedLinear::Activation::Gelu), proj(w4.data(), nullptr, F, C);
    std::vector<float> x(static_cast<std::size_t>(M) * F, 0.1f), y(static_cast<std::size_t>(M) * 3 * C);
    const int rows = B * T;
    const double tm = best_seconds(reps, [&] {
      for (int l = 0; l < L; ++l) {
        qkv.forward(y.data(), x.data(), rows);
        out.forward(y.data(), x.data(), rows);
        fc.forward(x.data(), y.data(), rows);
        proj.forward(y.data(), x.data(), rows);
      }
    });
    std::printf("%3dx%-6d %10.2f %10.2f %10.1f %14.2f %12.1f\n", B, T, t * 1e3, B / t, flops / t / 1e9, tm * 1e3,
                linear_flops / tm / 1e9);
  }
  // Training step (forward + backward, dropout on) at train_batch x T.
  Model trainable = Model::from_config(c, 1);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(train_batch) * T), labels(train_batch);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int32_t>(1000 + (i * 7919) % 20000);
  for (int b = 0; b < train_batch; ++b) labels[b] = b % c.num_labels;
  const Batch batch{train_batch, T, ids.data(), nullptr, nullptr};
  const double t = best_seconds(reps, [&] {
    trainable.zero_grad();
    trainable.forward_backward(batch, Labels{labels.data(), nullptr});
  });
  const double M = static_cast<double>(train_batch) * T;
  const double flops = 3.0 * M * L * (2.0 * (4.0 * C * C + 2.0 * C * F) + 4.0 * T * C);
  std::printf("train step %dx%d: %.1f ms, %.2f samples/s, %.1f GFLOP/s\n", train_batch, T, t * 1e3, train_batch / t,
              flops / t / 1e9);
  return 0;
}
