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

// A fresh directory for one test.
inline fs::path scratch_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("tuneserve_dp_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

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

// How far the weights of model directory `a` are from `b`'s, per element. The tests assert the form
// |a - b| <= atol + rtol * |b| (rtol 1e-5, atol 1e-6: excess > 0 fails). atol because AdamW scales each
// element's update by its own gradient's size: where a gradient is a sum that cancels to rounding
// noise (attention key biases, whose true gradient is 0), another summation order (rows split over
// ranks) moves the update by a fraction of lr (1e-3). Also reported: the largest |a - b| / |b| over
// elements with |b| >= 1e-3, and the largest |a - b|.
struct WeightGap {
  double max_rel = 0, max_abs = 0;
  double excess = -1;  // max over elements of |a - b| - (atol + rtol * |b|)
  std::string where, excess_where;
  std::size_t compared = 0;
};
inline WeightGap weight_gap(const fs::path& a, const fs::path& b, double rtol = 1e-5, double atol = 1e-6) {
  const SafeTensorsReader ra((a / "model.safetensors").string()), rb((b / "model.safetensors").string());
  WeightGap gap;
  for (const auto& t : rb.tensors()) {
    const auto want = rb.read_f32(t.name);
    const auto got = ra.read_f32(t.name);
    EXPECT_EQ(got.size(), want.size()) << t.name;
    for (std::size_t i = 0; i < std::min(got.size(), want.size()); i++) {
      const double d = std::abs(static_cast<double>(got[i]) - want[i]), w = std::abs(static_cast<double>(want[i]));
      const std::string at = t.name + "[" + std::to_string(i) + "]";
      gap.max_abs = std::max(gap.max_abs, d);
      if (w >= 1e-3 && d / w > gap.max_rel) gap.max_rel = d / w, gap.where = at;
      if (d - (atol + rtol * w) > gap.excess) gap.excess = d - (atol + rtol * w), gap.excess_where = at;
      gap.compared++;
    }
  }
  return gap;
}

}  // namespace tuneserve::testing
