// Row orders exactly as Hugging Face `datasets` draws them: shuffle(seed).select(range(N)) and
// train_test_split(test_size, seed) both use np.random.default_rng(seed).permutation(n).
//
// Dimensions: n rows in the input.
//
// That is numpy's SeedSequence(seed) -> PCG64 (128-bit LCG, XSL-RR output) -> Generator.shuffle
// (Fisher-Yates from the end, each index drawn by masked rejection sampling, 32-bit draws taken
// from the low then the high half of one 64-bit output). Reproduced here so a prepared dataset
// holds the same rows, in the same order, as the Python reference workflow.
#pragma once

#include <cstdint>
#include <vector>

namespace tuneserve::data {

// PCG64's 128-bit state; __extension__ keeps -Wpedantic quiet about the GCC/Clang builtin type.
__extension__ typedef unsigned __int128 Pcg128;

// numpy.random.SeedSequence(seed).generate_state(4, uint64) -> PCG64 state; then draws.
class Pcg64 {
 public:
  explicit Pcg64(std::uint64_t seed);
  std::uint64_t next64();
  std::uint32_t next32();               // buffered: low half of a 64-bit draw, then its high half
  std::uint64_t interval(std::uint64_t max);  // uniform in [0, max], numpy's random_interval

 private:
  Pcg128 state_ = 0, inc_ = 0;
  bool has32_ = false;
  std::uint32_t buffered32_ = 0;
};

// np.random.default_rng(seed).permutation(n)
std::vector<std::int64_t> numpy_permutation(std::int64_t n, std::uint64_t seed);

// datasets: ds.shuffle(seed=seed).select(range(select)); select < 0 keeps all rows.
// Without shuffling, the first `select` rows in file order.
std::vector<std::int64_t> shuffle_select(std::int64_t n, bool shuffle, std::uint64_t seed,
                                         std::int64_t select);

struct SplitIndices {
  std::vector<std::int64_t> train, test;  // positions in [0, n)
};

// datasets: ds.train_test_split(test_size=..., seed=seed) with shuffle=True.
// A fraction in (0, 1) gives ceil(test_size * n) test rows; a whole number >= 1 is a row count.
// Error when the test or train part would be empty or the size is out of range.
SplitIndices train_test_split(std::int64_t n, double test_size, std::uint64_t seed);

}  // namespace tuneserve::data
