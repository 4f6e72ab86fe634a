// Helpers for the data-parallel tests: synthetic prepared datasets for the goldens' tiny models,
// `tuneserve train` alone or under `mpirun -np N`, and comparing the models two runs saved.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"
#include "data/dataset.h"
#include "test_util.h"

namespace tuneserve::testing {

namespace fs = std::filesystem;

// The mpirun every MPI test uses (the CI form); "" when there is none.
inline std::string mpirun() {
  std::string out;
  if (run_command("command -v mpirun", out) != 0) return "";
  return "mpirun --allow-run-as-root --oversubscribe";
}

#define TUNESERVE_REQUIRE_MPIRUN()                                                                      \
  do {                                                                                                  \
    if (::tuneserve::testing::mpirun().empty())                                                         \
      GTEST_SKIP() << "mpirun not found (Debian openmpi-bin): data-parallel jobs cannot be launched here"; \
  } while (0)

// `n` labelled rows of random ids in [5, vocab) (lengths 4..max_len), label = first id mod K, written
// as a prepared dataset; the label depends on the ids so the loss moves.
inline std::string write_rows(const fs::path& dir, int n, int vocab, int max_len, int num_labels, unsigned seed) {
  std::mt19937 rng(seed);
  data::TokenizedRows rows;
  for (int r = 0; r < n; r++) {
    const int len = 4 + static_cast<int>(rng() % static_cast<unsigned>(max_len - 3));
    std::vector<std::int32_t> ids;
    for (int t = 0; t < len; t++) ids.push_back(5 + static_cast<std::int32_t>(rng() % static_cast<unsigned>(vocab - 5)));
    rows.add(ids, std::vector<std::int32_t>(ids.size(), 0), ids[1] % num_labels);
  }
  data::Manifest m;
  for (int k = 0; k < num_labels; k++) m.id2label.push_back(std::to_string(k));
  data::TokenizedDataset::from_rows(std::move(rows), m).write(dir.string());
  return dir.string();
}

// num_labels of a model directory's config.json (2 when it names none).
inline int model_labels(const std::string& model_dir) {
  std::ifstream in(model_dir + "/config.json");
  const nlohmann::json c = nlohmann::json::parse(in);
  if (c.contains("id2label")) return static_cast<int>(c["id2label"].size());
  return c.value("num_labels", 2);
}

// `tuneserve train ARGS` on `ranks` processes (1: no mpirun); exit status, output in `log`.
inline int train(int ranks, const std::string& args, std::string& log) {
  const std::string train = binary_path() + " train --progress false " + args;
  const std::string cmd = ranks == 1 ? train : mpirun() + " -np " + std::to_string(ranks) + " " + train;
  return run_command(cmd, log);
}

inline std::size_t line_count(const fs::path& path) {
  std::ifstream in(path);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) n++;
  return n;
}

inline std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

// How far the weights of model directory `a` (N ranks) are from `b`'s (1 process), and what the
// tests assert about it (rtol 1e-5, atol 1e-6). Measured on the goldens, 2 x 8 against 1 x 16 after
// 5 steps, on this machine's kernels (AVX-512) and at TUNESERVE_CPU_ISA=avx2:
// - per tensor, ||a - b|| / ||b|| <= rtol and max|a - b| / max|b| <= rtol: the issue's "within 1e-5
//   relative" for each tensor as a whole. Largest seen: 1.9e-6 and 5.3e-6 (biases, LayerNorm biases,
//   word embeddings).
// - per element, |a - b| <= atol + rtol |b|; the largest |a - b| (2e-7..4e-7) and |a - b| / |b| over
//   elements with |b| >= 1e-3 are printed. A per-element relative bound does not hold at 1e-5, nor
//   reliably at 1e-4 (seen: 1.5e-5..3.5e-5 here, up to 1.5e-4 at avx2): the rows split over ranks are
//   summed in another order (per rank, then the ranks' float sums in the all-reduce, so summing in
//   double within a rank would not remove it; a double all-reduce was not tried), and
//   AdamW sizes each element's step by that element's own gradient (against its history, or eps),
//   not by the weight, so where a gradient is a sum that nearly cancels, its rounding (large next
//   to it) moves that element's step. The worst elements are all in word
//   embeddings, with 5-step gradient RMS of 1e-10..3e-7 against a median of 2e-7 for the rows in
//   use; their |a - b| is at most 0.6% of their own total update.
// - tensors whose every |b| <= atol are compared absolutely: the attention key biases, which start at
//   0 and whose exact gradient is 0 (softmax over keys ignores a bias added to every key), so AdamW
//   moves them only by rounding noise (|b| ~ 1e-7; a and b unrelated at that scale).
struct WeightGap {
  double max_rel = 0, max_abs = 0;
  double excess = -1;  // max over elements of |a - b| - (atol + rtol * |b|)
  std::string where, excess_where;
  std::size_t compared = 0;
  double tensor_rel = 0, tensor_peak = 0;  // max over tensors of ||a - b|| / ||b||, max|a - b| / max|b|
  std::string tensor_rel_where, tensor_peak_where;
  std::vector<std::string> noise;          // tensors with every |b| <= atol
};
inline WeightGap weight_gap(const fs::path& a, const fs::path& b, double rtol = 1e-5, double atol = 1e-6) {
  const SafeTensorsReader ra((a / "model.safetensors").string()), rb((b / "model.safetensors").string());
  WeightGap gap;
  for (const auto& t : rb.tensors()) {
    const auto want = rb.read_f32(t.name);
    const auto got = ra.read_f32(t.name);
    EXPECT_EQ(got.size(), want.size()) << t.name;
    double diff2 = 0, want2 = 0, peak_diff = 0, peak_want = 0;
    for (std::size_t i = 0; i < std::min(got.size(), want.size()); i++) {
      const double d = std::abs(static_cast<double>(got[i]) - want[i]), w = std::abs(static_cast<double>(want[i]));
      const std::string at = t.name + "[" + std::to_string(i) + "]";
      gap.max_abs = std::max(gap.max_abs, d);
      if (w >= 1e-3 && d / w > gap.max_rel) gap.max_rel = d / w, gap.where = at;
      if (d - (atol + rtol * w) > gap.excess) gap.excess = d - (atol + rtol * w), gap.excess_where = at;
      diff2 += d * d, want2 += w * w, peak_diff = std::max(peak_diff, d), peak_want = std::max(peak_want, w);
      gap.compared++;
    }
    if (peak_want <= atol) {
      gap.noise.push_back(t.name);
      continue;
    }
    if (std::sqrt(diff2 / want2) > gap.tensor_rel) gap.tensor_rel = std::sqrt(diff2 / want2), gap.tensor_rel_where = t.name;
    if (peak_diff / peak_want > gap.tensor_peak) gap.tensor_peak = peak_diff / peak_want, gap.tensor_peak_where = t.name;
  }
  return gap;
}

// Prints the gap as one line under `label` and asserts the bounds above.
inline void expect_weights_match(const WeightGap& gap, const std::string& label, double rtol = 1e-5, double atol = 1e-6) {
  std::printf("[ %s ] %zu weights: per tensor ||a-b||/||b|| <= %.3g (%s), max|a-b|/max|b| <= %.3g (%s); per element "
              "max |a-b| %.3g, max |a-b|/|b| %.3g where |b| >= 1e-3 (%s); %zu all-noise tensors (|b| <= %.0e)\n",
              label.c_str(), gap.compared, gap.tensor_rel, gap.tensor_rel_where.c_str(), gap.tensor_peak,
              gap.tensor_peak_where.c_str(), gap.max_abs, gap.max_rel, gap.where.c_str(), gap.noise.size(), atol);
  EXPECT_LE(gap.tensor_rel, rtol) << label << ": ||a-b||/||b|| of " << gap.tensor_rel_where;
  EXPECT_LE(gap.tensor_peak, rtol) << label << ": max|a-b|/max|b| of " << gap.tensor_peak_where;
  EXPECT_LE(gap.excess, 0.0) << label << ": beyond " << atol << " + " << rtol << " |b| at " << gap.excess_where;
}

}  // namespace tuneserve::testing
