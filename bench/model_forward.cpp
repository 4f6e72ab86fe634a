// Inference speed of the full-size distilbert-base-cased configuration (random weights) at
// batch 1 x 128 and 32 x 128 tokens, next to its own matrix products alone (the roofline peer:
// the same oneDNN products with pre-packed weights, no attention or elementwise work).
//   build/bench/bench_model_forward [--threads N] [--config PATH] [--reps R] [--train-batch B] [--tokens T]
//                                   [--inference 0|1] [--train 0|1]   (which parts run; both by default)
//                                   [--dtype fp32|bf16]   (what the model's products compute in)
//                                   [--sustain S]   (then 32 x T fast passes back to back for S seconds)
//                                   [--lengths FILE]   (with --sustain: then passes of 32 requests of these lengths)
// and one training step (forward + backward with dropout) at B x T (default 8 x 128), all of them
// unpadded, and with rows of unequal lengths (T down to T/4, the mask padding the rest). Each case runs
// twice: "full" computes everything (EngineOptions off), "fast" skips what the logits do not need
// (the last layer on first tokens only, training on real tokens only). cpu ms: process CPU time,
// the figure to compare when other processes share the machine. --sustain prints the mean of
// back-to-back passes too: a server's throughput is a mean over seconds, which a best-of-R figure
// bounds only loosely on a machine whose speed drifts. --lengths FILE holds the token count of each
// request a load sends (one per line, in the order sent): the sustained run then also replays them,
// 32 consecutive requests per pass (cycling through the file), which is the engine's ceiling at a
// server's real request lengths: unequal lengths within a pass and token totals that vary from pass
// to pass, each new total building its products' primitives once, as in the server.
// The PyTorch comparison lives in the predict benchmark; this one says where the time goes.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "checkpoint/config.h"
#include "kernels/cpu/matmul.h"
#include "model/model.h"

using namespace tuneserve;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Timing {
  double wall;  // best of the timed runs, seconds
  double cpu;   // process CPU seconds of that run
};

// Best of `reps` timings of f (after one warm-up call).
template <typename F>
Timing best_seconds(int reps, F&& f) {
  f();
  Timing best{1e30, 0.0};
  for (int r = 0; r < reps; ++r) {
    const double t0 = now(), c0 = bench::process_cpu_seconds();
    f();
    const double t = now() - t0;
    if (t < best.wall) best = {t, bench::process_cpu_seconds() - c0};
  }
  return best;
}

// "full": the padded batch and every row of the last layer; "fast": the packed batch and the last
// layer on the rows the head reads.
const bool kPaths[] = {false, true};

// Row b of a batch with unequal lengths: T down to T/4, the rest padding.
std::vector<std::int32_t> mask_for(int B, int T, bool unequal) {
  std::vector<std::int32_t> mask(static_cast<std::size_t>(B) * T, 1);
  if (!unequal) return mask;
  for (int b = 0; b < B; ++b) {
    const int len = B == 1 ? T : T - (3 * T / 4) * b / (B - 1);
    for (int t = len; t < T; ++t) mask[static_cast<std::size_t>(b) * T + t] = 0;
  }
  return mask;
}

// Token counts, one per line (each >= 1); error naming the file and line otherwise.
std::vector<int> read_lengths(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("cannot read the --lengths file {}", path);
  std::vector<int> lengths;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const char* end = line.data() + line.size();
    while (end > line.data() && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) --end;
    int v = 0;
    const auto [at, error] = std::from_chars(line.data(), end, v);
    if (error != std::errc() || at != end || v < 1 || v > 100000)
      fail("{}:{}: expected a token count in [1, 100000], got '{}'", path, n, line);
    lengths.push_back(v);
  }
  if (lengths.empty()) fail("the --lengths file {} is empty", path);
  return lengths;
}

// Passes of 32 consecutive requests of `lengths` back to back for `seconds`, cycling through the
// batches (built beforehand: the server's batcher builds its own while the previous pass runs).
void sustain_replay(Model& model, const std::vector<int>& lengths, int seconds) {
  const int B = 32;
  std::vector<PackedBatch> batches;
  std::size_t tokens = 0, lo = SIZE_MAX, hi = 0;
  for (std::size_t first = 0; first < lengths.size() || batches.empty(); first += B) {
    PackedBatch batch;
    for (int b = 0; b < B; ++b) {
      const int len = lengths[(first + b) % lengths.size()];
      std::vector<std::int32_t> ids(len);
      for (int t = 0; t < len; ++t) ids[t] = static_cast<std::int32_t>(1000 + ((first + b) * 131 + t * 7919) % 20000);
      batch.append(ids);
    }
    tokens += batch.tokens();
    lo = std::min(lo, batch.tokens());
    hi = std::max(hi, batch.tokens());
    batches.push_back(std::move(batch));
  }
  const double t0 = now();
  std::size_t passes = 0;
  do {
    model.forward(batches[passes % batches.size()]);
    ++passes;
  } while (now() - t0 < seconds);
  const double elapsed = now() - t0;
  std::printf("sustained %dxreplay: %zu passes in %.1f s, mean %.2f ms, %.2f seq/s (%zu requests' lengths, "
              "%.1f tokens per pass, %zu to %zu)\n",
              B, passes, elapsed, elapsed / passes * 1e3, B * passes / elapsed, lengths.size(),
              static_cast<double>(tokens) / batches.size(), lo, hi);
}

}  // namespace

int run(int argc, char** argv) {
  std::string config_path = std::string(TUNESERVE_SHARED_DIR) + "/goldens/configs/distilbert-base-cased/config.json";
  int threads = 2, reps = 5, train_batch = 8, T = 128, inference = 1, train = 1, sustain = 0;
  std::string dtype_name = "fp32", lengths_path;
  bench::parse_flags(argc, argv, 1,
                     {{"--threads", {&threads}}, {"--config", {nullptr, 1, &config_path}}, {"--reps", {&reps}},
                      {"--train-batch", {&train_batch}}, {"--tokens", {&T}}, {"--inference", {&inference, 0}},
                      {"--train", {&train, 0}}, {"--dtype", {.text = &dtype_name}}, {"--sustain", {&sustain, 0}},
                      {"--lengths", {.text = &lengths_path}}});
  const DType dtype = parse_compute_dtype(dtype_name);
  const std::vector<int> lengths = lengths_path.empty() ? std::vector<int>{} : read_lengths(lengths_path);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines as they come when piped
  Model::set_num_threads(threads);
  const ModelConfig c = load_config(config_path);
  Model model = Model::from_config(c, 1);
  model.set_compute_dtype(dtype);
  const int C = c.hidden_size, F = c.intermediate_size, L = c.num_layers;
  std::printf("%s: C=%d F=%d L=%d, %d threads, %s products\n", config_path.c_str(), C, F, L, threads,
              compute_dtype_name(dtype));
  std::printf("%-12s %5s %9s %9s %9s %9s %14s %12s\n", "batch", "path", "ms", "cpu ms", "seq/s", "GFLOP/s",
              "matmul-only ms", "matmul GF/s");
  for (int B : {1, 32}) {
    if (!inference) break;
    std::vector<std::int32_t> ids(static_cast<std::size_t>(B) * T);
    for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int32_t>(1000 + (i * 7919) % 20000);
    const std::vector<std::int32_t> mask = mask_for(B, T, false);
    // FLOPs of the full computation; the fast path's GFLOP/s counts the same work (effective rate).
    const double M = static_cast<double>(B) * T;
    const double linear_flops = M * L * 2.0 * (4.0 * C * C + 2.0 * C * F);
    const double flops = B * bench::encoder_flops(c, T);
    // The same products alone.
    std::vector<float> w1(static_cast<std::size_t>(3) * C * C, 0.01f), w2(static_cast<std::size_t>(C) * C, 0.01f),
        w3(static_cast<std::size_t>(F) * C, 0.01f), w4(static_cast<std::size_t>(C) * F, 0.01f);
    PackedLinear qkv(w1.data(), nullptr, C, 3 * C), out(w2.data(), nullptr, C, C),
        fc(w3.data(), nullptr, C, F, PackedLinear::Activation::Gelu), proj(w4.data(), nullptr, F, C);
    std::vector<float> x(static_cast<std::size_t>(M) * F, 0.1f), y(static_cast<std::size_t>(M) * 3 * C);
    const int rows = B * T;
    const Timing tm = best_seconds(reps, [&] {
      for (int l = 0; l < L; ++l) {
        qkv.forward(y.data(), x.data(), rows);
        out.forward(y.data(), x.data(), rows);
        fc.forward(x.data(), y.data(), rows);
        proj.forward(y.data(), x.data(), rows);
      }
    });
    for (const bool fast : kPaths) {
      model.set_engine_options({fast});
      const PackedBatch batch = PackedBatch::from_padded(B, T, ids.data(), mask.data(), nullptr, !fast);
      const Timing t = best_seconds(reps, [&] { model.forward(batch); });
      std::printf("%3dx%-8d %5s %9.2f %9.2f %9.2f %9.1f %14.2f %12.1f\n", B, T, fast ? "fast" : "full",
                  t.wall * 1e3, t.cpu * 1e3, B / t.wall, flops / t.wall / 1e9, tm.wall * 1e3,
                  linear_flops / tm.wall / 1e9);
      if (fast && B == 32 && sustain > 0) {  // the same batch, back to back
        const double t0 = now();
        int passes = 0;
        do {
          model.forward(batch);
          ++passes;
        } while (now() - t0 < sustain);
        const double seconds = now() - t0;
        std::printf("sustained %dx%d: %d passes in %.1f s, mean %.2f ms, %.2f seq/s\n", B, T, passes, seconds,
                    seconds / passes * 1e3, B * passes / seconds);
        if (!lengths.empty()) sustain_replay(model, lengths, sustain);
      }
    }
  }
  // Training step (forward + backward, dropout on) at train_batch x T, then with unequal lengths.
  Model trainable = Model::from_config(c, 1);
  trainable.set_compute_dtype(dtype);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(train_batch) * T), labels(train_batch);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int32_t>(1000 + (i * 7919) % 20000);
  for (int b = 0; b < train_batch; ++b) labels[b] = b % c.num_labels;
  for (const bool unequal : {false, true}) {
    if (!train) break;
    const std::vector<std::int32_t> mask = mask_for(train_batch, T, unequal);
    for (const bool fast : kPaths) {
      trainable.set_engine_options({fast});
      const PackedBatch batch = PackedBatch::from_padded(train_batch, T, ids.data(), mask.data(), nullptr, !fast);
      const Timing t = best_seconds(reps, [&] {
        trainable.zero_grad();
        trainable.forward_backward(batch, Labels{labels.data(), nullptr});
      });
      const double flops = 3.0 * train_batch * bench::encoder_flops(c, T);
      std::printf("train step %dx%d%s %s: %.1f ms (cpu %.1f ms), %.2f samples/s, %.1f GFLOP/s (padded work)\n",
                  train_batch, T, unequal ? " unequal lengths" : "", fast ? "fast" : "full",
                  t.wall * 1e3, t.cpu * 1e3, train_batch / t.wall, flops / t.wall / 1e9);
    }
  }
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_model_forward: %s\n", e.what());
    return 1;
  }
}
