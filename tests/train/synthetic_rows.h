// Tokenized training rows for trainer tests that need no reference data: random ids whose label
// depends on them, so the loss moves in a few steps.
#pragma once

#include <cstdint>
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace tuneserve::testing {

// `n` rows of random ids (lengths 4..20) below `vocab`, [CLS] ... [SEP], label = second id's parity.
inline data::TokenizedDataset synthetic_rows(int vocab, int n = 37, unsigned seed = 7) {
  std::mt19937 rng(seed);
  data::TokenizedRows rows;
  for (int r = 0; r < n; r++) {
    const int len = 4 + static_cast<int>(rng() % 17);
    std::vector<std::int32_t> ids{101};
    for (int t = 1; t < len - 1; t++)
      ids.push_back(1000 + static_cast<std::int32_t>(rng() % static_cast<unsigned>(vocab - 1000)));
    ids.push_back(102);
    rows.add(ids, std::vector<std::int32_t>(ids.size(), 0), ids[1] % 2);
  }
  data::Manifest m;
  m.id2label = {"0", "1"};
  return data::TokenizedDataset::from_rows(std::move(rows), m);
}

// The same rows with K float targets each: regression targets (second id mod 7, over 2, then the
// third's) or multi-hot labels (bit k of the second id), as `tuneserve prep` writes them.
inline data::TokenizedDataset synthetic_target_rows(int vocab, const std::string& problem_type, int K, int n = 37,
                                                    unsigned seed = 7) {
  const data::TokenizedDataset classes = synthetic_rows(vocab, n, seed);
  data::TokenizedRows rows;
  for (std::size_t r = 0; r < classes.size(); r++) {
    const auto ids = classes.input_ids(r);
    std::vector<float> t;
    for (int k = 0; k < K; k++) {
      const std::int32_t id = ids[std::min<std::size_t>(1 + static_cast<std::size_t>(k), ids.size() - 2)];
      t.push_back(problem_type == data::kRegression ? static_cast<float>(id % 7) / 2.0f : static_cast<float>((ids[1] >> k) & 1));
    }
    rows.add(ids, classes.token_type_ids(r), std::nullopt, t);
  }
  data::Manifest m;
  m.problem_type = problem_type;
  m.num_targets = K;
  for (int k = 0; problem_type == data::kMultiLabel && k < K; k++) m.id2label.push_back("bit" + std::to_string(k));
  m.label_counts.assign(m.id2label.size(), 0);
  return data::TokenizedDataset::from_rows(std::move(rows), m);
}

}  // namespace tuneserve::testing
