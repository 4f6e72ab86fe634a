// CPU inference benchmark of a DistilBERT-family classifier: checks logits against a reference file
// written by the PyTorch peer (bench/torch_distilbert.py), then times batch 1 and batch 32 forwards.
// Run through bench/inference.sh, which runs both sides on the same weights and prints the ratio.
//
// Dimensions: B batch, T tokens, K num_labels.
//   bench_inference MODEL_DIR [--threads N] [--tokens T] [--reps-b1 N] [--reps-b32 N] [--dtype fp32|bf16]
// MODEL_DIR holds config.json, model.safetensors and reference.safetensors (input_ids, attention_mask,
// logits: the peer's fp32). Prints one JSON line: {"dtype", "parity": {...}, "runs": [{"batch", "tokens",
// "ms", "cpu_ms", "seq_per_s", "gflops", "gflops_computed"}]} (gflops: the whole encoder's work per
// second, as the peers' figures count it; computed: what the pass runs, its last layer on first
// tokens). bf16 is held to looser parity bounds (its products round their operands to 8 significant
// bits) and to the same argmax on every reference row.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "core/error.h"
#include "bench_util.h"
#include "model/model.h"

namespace {

using namespace tuneserve;

std::vector<std::int32_t> to_i32(const std::vector<std::int64_t>& v) { return {v.begin(), v.end()}; }

nlohmann::json check_parity(const Model& model, const std::string& reference_path) {
  const bool bf16 = model.compute_dtype() == DType::BF16;
  SafeTensorsReader reference(reference_path);
  const auto& shape = reference.info("input_ids").shape;
  if (shape.size() != 2) fail("{}: input_ids must be (B, T), got {}", reference_path, shape_string(shape));
  const auto ids = to_i32(reference.read_i64("input_ids"));
  const auto mask = to_i32(reference.read_i64("attention_mask"));
  const auto expected = reference.read_f32("logits");
  const auto logits =
      model.forward(PackedBatch::from_padded(static_cast<int>(shape[0]), static_cast<int>(shape[1]), ids.data(),
                                             mask.data(), nullptr));
  if (logits.size() != expected.size())
    fail("{}: {} logits, reference has {}", reference_path, logits.size(), expected.size());
  // fp32 with different GEMM blockings and summation orders over 6 layers: agree to ~1e-5 relative.
  // bf16 products (8-bit mantissas, fp32 accumulation): the bound tests/model/precision_test.cpp
  // holds the goldens to.
  const double atol = bf16 ? 5e-2 : 1e-4, rtol = bf16 ? 5e-2 : 1e-4;
  double max_abs = 0;
  bool ok = true;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    const double d = std::fabs(static_cast<double>(logits[i]) - expected[i]);
    max_abs = std::max(max_abs, d);
    ok = ok && d <= atol + rtol * std::fabs(expected[i]);
  }
  const std::size_t K = static_cast<std::size_t>(model.config().num_labels), rows = logits.size() / K;
  std::size_t agree = 0;
  for (std::size_t b = 0; b < rows; ++b) {
    const auto got = logits.begin() + static_cast<std::ptrdiff_t>(b * K);
    const auto want = expected.begin() + static_cast<std::ptrdiff_t>(b * K);
    agree += std::max_element(got, got + static_cast<std::ptrdiff_t>(K)) - got ==
             std::max_element(want, want + static_cast<std::ptrdiff_t>(K)) - want;
  }
  ok = ok && agree == rows;
  return {{"logits", logits.size()}, {"max_abs_err", max_abs}, {"atol", atol}, {"rtol", rtol},
          {"argmax_agree", agree}, {"rows", rows}, {"ok", ok}};
}

using bench::median;
using bench::process_cpu_seconds;

// Median wall seconds and median process CPU seconds (all threads) per forward. CPU time is the
// figure that survives a shared machine: other processes stretch wall time, not our CPU time.
std::pair<double, double> time_forward(const Model& model, const PackedBatch& batch, int reps) {
  for (int i = 0; i < 2; ++i) model.forward(batch);  // warm-up: first-touch, weight packing, caches
  std::vector<double> wall, cpu;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = process_cpu_seconds();
    model.forward(batch);
    wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    cpu.push_back(process_cpu_seconds() - c0);
  }
  return {median(wall), median(cpu)};
}

int run(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [--threads N] [--tokens T] [--reps-b1 N] [--reps-b32 N] [--dtype fp32|bf16]\n",
                 argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  int threads = 2, T = 128, reps_b1 = 20, reps_b32 = 5;
  std::string dtype = "fp32";
  bench::parse_flags(argc, argv, 2,
                     {{"--threads", {&threads}}, {"--tokens", {&T}}, {"--reps-b1", {&reps_b1}}, {"--reps-b32", {&reps_b32}},
                      {"--dtype", {.text = &dtype}}});

  Model::set_num_threads(threads);
  LoadOptions options;
  options.dtype = parse_compute_dtype(dtype);
  const Model model = Model::load(dir, nullptr, options);
  nlohmann::json out;
  out["threads"] = threads;
  out["dtype"] = compute_dtype_name(model.compute_dtype());
  out["parity"] = check_parity(model, dir + "/reference.safetensors");

  std::mt19937 rng(1234);
  std::uniform_int_distribution<std::int32_t> token(1, model.config().vocab_size - 1);
  out["runs"] = nlohmann::json::array();
  // Per sequence: the whole encoder's work, and what the pass runs of it.
  const double flops = bench::encoder_flops(model.config(), T);
  const double computed = flops - bench::pruned_last_layer_flops(model.config(), T);
  for (const auto& [B, reps] : {std::pair{1, reps_b1}, std::pair{32, reps_b32}}) {
    std::vector<std::int32_t> ids(static_cast<std::size_t>(B) * T), mask(ids.size(), 1);
    for (auto& id : ids) id = token(rng);
    const auto [s, cpu] = time_forward(model, PackedBatch::from_padded(B, T, ids.data(), mask.data(), nullptr), reps);
    out["runs"].push_back({{"batch", B}, {"tokens", T}, {"ms", s * 1e3}, {"cpu_ms", cpu * 1e3}, {"seq_per_s", B / s},
                           {"gflops", B * flops / s / 1e9}, {"gflops_computed", B * computed / s / 1e9}});
  }
  std::printf("%s\n", out.dump().c_str());
  return out["parity"]["ok"].get<bool>() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_inference: %s\n", e.what());
    return 1;
  }
}
