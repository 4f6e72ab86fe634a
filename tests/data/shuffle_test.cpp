// Row orders against numpy itself: np.random.default_rng(seed).permutation(n) for several seeds
// and sizes (run through Debian's /usr/bin/python3), and datasets' split arithmetic.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>

#include "core/error.h"
#include "data/shuffle.h"
#include "temp_files.h"

using namespace tuneserve::data;

namespace {

const char* kPython = "/usr/bin/python3";

// Runs python code; false (and why in `out`) when it fails, e.g. numpy is not importable.
bool run_python(const std::string& code, std::string& out) {
  if (!std::filesystem::exists(kPython)) {
    out = std::string(kPython) + " not found";
    return false;
  }
  return tuneserve::testing::run_command(std::string(kPython) + " -c '" + code + "'", out) == 0;
}

bool have_numpy(std::string& why) { return run_python("import numpy", why); }

}  // namespace

TEST(Shuffle, PermutationMatchesNumpy) {
  std::string why;
  if (!have_numpy(why)) GTEST_SKIP() << "numpy unavailable (install python3-numpy): " << why;
  // Sizes cross the 32-bit draw path at every power of two; seeds include 0, small, and >32-bit.
  const std::vector<std::uint64_t> seeds = {0, 1, 42, 1234, 4294967295ULL, 4294967296ULL, 18446744073709551615ULL};
  const std::vector<std::int64_t> sizes = {0, 1, 2, 3, 10, 17, 1000, 4000, 67349};
  std::ostringstream code;
  code << "import numpy as np\n";
  code << "for s in [";
  for (auto s : seeds) code << s << ",";
  code << "]:\n for n in [";
  for (auto n : sizes) code << n << ",";
  code << "]:\n  print(\" \".join(map(str, np.random.default_rng(s).permutation(n))))\n";
  std::string out;
  ASSERT_TRUE(run_python(code.str(), out)) << out;
  std::istringstream lines(out);
  for (auto s : seeds) {
    for (auto n : sizes) {
      std::string line;
      ASSERT_TRUE(std::getline(lines, line)) << "numpy printed too few lines";
      std::istringstream values(line);
      std::vector<std::int64_t> want;
      for (std::int64_t v; values >> v;) want.push_back(v);
      const auto got = numpy_permutation(n, s);
      ASSERT_EQ(got, want) << "seed " << s << " n " << n;
    }
  }
}

TEST(Shuffle, FirstDrawsMatchNumpyBitGenerator) {
  std::string why;
  if (!have_numpy(why)) GTEST_SKIP() << "numpy unavailable (install python3-numpy): " << why;
  std::string out;
  ASSERT_TRUE(run_python("import numpy as np\n"
                         "g = np.random.PCG64(np.random.SeedSequence(42))\n"
                         "print(\" \".join(str(g.random_raw()) for _ in range(5)))\n",
                         out))
      << out;
  std::istringstream values(out);
  Pcg64 rng(42);
  for (int i = 0; i < 5; ++i) {
    std::uint64_t want;
    ASSERT_TRUE(values >> want);
    EXPECT_EQ(rng.next64(), want) << "draw " << i;
  }
}

TEST(Shuffle, SelectTakesThePermutationPrefix) {
  const auto perm = numpy_permutation(50, 3);
  const auto sel = shuffle_select(50, true, 3, 20);
  ASSERT_EQ(sel.size(), 20u);
  EXPECT_TRUE(std::equal(sel.begin(), sel.end(), perm.begin()));
  const auto plain = shuffle_select(50, false, 3, 5);
  EXPECT_EQ(plain, (std::vector<std::int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(shuffle_select(50, false, 0, -1).size(), 50u);
  EXPECT_THROW(shuffle_select(50, true, 3, 51), tuneserve::Error);
}

TEST(Shuffle, TrainTestSplitLikeDatasets) {
  std::string why;
  if (!have_numpy(why)) GTEST_SKIP() << "numpy unavailable (install python3-numpy): " << why;
  // The same arithmetic datasets uses: n_test = ceil(test_size * n), test = perm[:n_test].
  std::string out;
  ASSERT_TRUE(run_python("import numpy as np, math\n"
                         "n, t, s = 1459, 0.15, 7\n"
                         "p = np.random.default_rng(s).permutation(n)\n"
                         "k = math.ceil(t * n)\n"
                         "print(\" \".join(map(str, p[:k])))\n"
                         "print(\" \".join(map(str, p[k:])))\n",
                         out))
      << out;
  std::istringstream lines(out);
  std::string test_line, train_line;
  std::getline(lines, test_line);
  std::getline(lines, train_line);
  auto parse = [](const std::string& line) {
    std::istringstream in(line);
    std::vector<std::int64_t> v;
    for (std::int64_t x; in >> x;) v.push_back(x);
    return v;
  };
  const auto split = train_test_split(1459, 0.15, 7);
  EXPECT_EQ(split.test, parse(test_line));
  EXPECT_EQ(split.train, parse(train_line));
}

TEST(Shuffle, SplitSizesAndErrors) {
  auto s = train_test_split(10, 0.25, 0);
  EXPECT_EQ(s.test.size(), 3u);  // ceil(2.5)
  EXPECT_EQ(s.train.size(), 7u);
  auto c = train_test_split(10, 4, 0);  // a whole number is a row count
  EXPECT_EQ(c.test.size(), 4u);
  EXPECT_THROW(train_test_split(10, 0.0, 0), tuneserve::Error);
  EXPECT_THROW(train_test_split(10, 10, 0), tuneserve::Error);
  EXPECT_THROW(train_test_split(10, 2.5, 0), tuneserve::Error);
  EXPECT_THROW(train_test_split(1, 0.5, 0), tuneserve::Error);  // ceil(0.5) = 1 leaves no train row
}
