// numpy-compatible PCG64 seeding and permutation, and datasets' shuffle/select/train_test_split.
// Dimensions: n rows in the input.
#include "data/shuffle.h"

#include <cmath>
#include <numeric>

#include "core/error.h"

namespace tuneserve::data {

namespace {

// numpy/random/bit_generator.pyx SeedSequence constants (uint32 arithmetic throughout).
constexpr std::uint32_t kInitA = 0x43b0d7e5, kMultA = 0x931e8875;
constexpr std::uint32_t kInitB = 0x8b51f9dd, kMultB = 0x58f38ded;
constexpr std::uint32_t kMixMultL = 0xca01f9dd, kMixMultR = 0x4973f715;
constexpr int kXShift = 16;
constexpr int kPoolSize = 4;

std::uint32_t hashmix(std::uint32_t value, std::uint32_t& hash_const) {
  value ^= hash_const;
  hash_const *= kMultA;
  value *= hash_const;
  value ^= value >> kXShift;
  return value;
}

std::uint32_t mix(std::uint32_t x, std::uint32_t y) {
  std::uint32_t result = kMixMultL * x - kMixMultR * y;
  result ^= result >> kXShift;
  return result;
}

// SeedSequence(seed).generate_state(4, np.uint64): the entropy is the seed's little-endian
// 32-bit words (a single 0 word for seed 0), mixed into a pool of four words.
void seed_sequence_state(std::uint64_t seed, std::uint64_t out[4]) {
  std::vector<std::uint32_t> entropy;
  if (seed == 0) entropy.push_back(0);
  for (std::uint64_t s = seed; s > 0; s >>= 32) entropy.push_back(static_cast<std::uint32_t>(s));

  std::uint32_t pool[kPoolSize];
  std::uint32_t hash_const = kInitA;
  for (int i = 0; i < kPoolSize; ++i)
    pool[i] = hashmix(i < static_cast<int>(entropy.size()) ? entropy[static_cast<std::size_t>(i)] : 0, hash_const);
  for (int src = 0; src < kPoolSize; ++src)
    for (int dst = 0; dst < kPoolSize; ++dst)
      if (src != dst) pool[dst] = mix(pool[dst], hashmix(pool[src], hash_const));
  for (std::size_t src = kPoolSize; src < entropy.size(); ++src)
    for (int dst = 0; dst < kPoolSize; ++dst) pool[dst] = mix(pool[dst], hashmix(entropy[src], hash_const));

  std::uint32_t words[8];
  std::uint32_t hash_b = kInitB;
  for (int i = 0; i < 8; ++i) {
    std::uint32_t v = pool[i % kPoolSize];
    v ^= hash_b;
    hash_b *= kMultB;
    v *= hash_b;
    v ^= v >> kXShift;
    words[i] = v;
  }
  for (int i = 0; i < 4; ++i) out[i] = static_cast<std::uint64_t>(words[2 * i]) | (static_cast<std::uint64_t>(words[2 * i + 1]) << 32);
}

constexpr Pcg128 kPcgMultiplier =
    (static_cast<Pcg128>(2549297995355413924ULL) << 64) + 4865540595714422341ULL;

}  // namespace

Pcg64::Pcg64(std::uint64_t seed) {
  std::uint64_t s[4];
  seed_sequence_state(seed, s);
  // pcg64_set_seed: state from words 0 (high) and 1 (low), increment from words 2 and 3.
  const Pcg128 initstate = (static_cast<Pcg128>(s[0]) << 64) | s[1];
  const Pcg128 initseq = (static_cast<Pcg128>(s[2]) << 64) | s[3];
  state_ = 0;
  inc_ = (initseq << 1) | 1;
  state_ = state_ * kPcgMultiplier + inc_;
  state_ += initstate;
  state_ = state_ * kPcgMultiplier + inc_;
}

std::uint64_t Pcg64::next64() {
  state_ = state_ * kPcgMultiplier + inc_;
  const auto hi = static_cast<std::uint64_t>(state_ >> 64);
  const auto lo = static_cast<std::uint64_t>(state_);
  const auto rot = static_cast<unsigned>(state_ >> 122);
  const std::uint64_t x = hi ^ lo;
  return (x >> rot) | (x << ((64 - rot) & 63));
}

std::uint32_t Pcg64::next32() {
  if (has32_) {
    has32_ = false;
    return buffered32_;
  }
  const std::uint64_t v = next64();
  has32_ = true;
  buffered32_ = static_cast<std::uint32_t>(v >> 32);
  return static_cast<std::uint32_t>(v);
}

std::uint64_t Pcg64::interval(std::uint64_t max) {
  if (max == 0) return 0;
  std::uint64_t mask = max;
  mask |= mask >> 1;
  mask |= mask >> 2;
  mask |= mask >> 4;
  mask |= mask >> 8;
  mask |= mask >> 16;
  mask |= mask >> 32;
  std::uint64_t value;
  if (max <= 0xffffffffULL) {
    while ((value = (next32() & mask)) > max) {
    }
  } else {
    while ((value = (next64() & mask)) > max) {
    }
  }
  return value;
}

std::vector<std::int64_t> numpy_permutation(std::int64_t n, std::uint64_t seed) {
  if (n < 0) fail("permutation of {} rows", n);
  std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  Pcg64 rng(seed);
  for (std::int64_t i = n - 1; i >= 1; --i) {
    const auto j = static_cast<std::int64_t>(rng.interval(static_cast<std::uint64_t>(i)));
    std::swap(perm[static_cast<std::size_t>(i)], perm[static_cast<std::size_t>(j)]);
  }
  return perm;
}

std::vector<std::int64_t> shuffle_select(std::int64_t n, bool shuffle, std::uint64_t seed,
                                         std::int64_t select) {
  if (select > n) fail("--select {}: only {} rows available", select, n);
  std::vector<std::int64_t> order;
  if (shuffle) {
    order = numpy_permutation(n, seed);
  } else {
    order.resize(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), 0);
  }
  if (select >= 0) order.resize(static_cast<std::size_t>(select));
  return order;
}

SplitIndices train_test_split(std::int64_t n, double test_size, std::uint64_t seed) {
  std::int64_t n_test = 0;
  const bool fraction = test_size > 0.0 && test_size < 1.0;
  if (fraction) {
    n_test = static_cast<std::int64_t>(std::ceil(test_size * static_cast<double>(n)));
  } else if (test_size >= 1.0 && test_size == std::floor(test_size) && test_size < static_cast<double>(n)) {
    n_test = static_cast<std::int64_t>(test_size);
  } else {
    fail("--test-size {}: expected a fraction in (0, 1) or a row count below the {} rows", test_size, n);
  }
  const std::int64_t n_train = n - n_test;
  if (n_train <= 0)
    fail("--test-size {} with {} rows leaves no training rows", test_size, n);
  const auto perm = numpy_permutation(n, seed);
  SplitIndices s;
  s.test.assign(perm.begin(), perm.begin() + n_test);
  s.train.assign(perm.begin() + n_test, perm.end());
  return s;
}

}  // namespace tuneserve::data
