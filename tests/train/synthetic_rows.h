// Tokenized training rows for trainer tests that need no reference data: random ids whose label
// depends on them, so the loss moves in a few steps.
#pragma once

#include <cstdint>
#include <random>
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

}  // namespace tuneserve::testing
