// The server's allocator policy (core/memory.h): memory that unloaded models and retired workers
// free goes back to the system.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

#include "core/memory.h"

namespace tuneserve {
namespace {

// Resident bytes of this process (/proc/self/statm).
std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// bench/soak.sh grew by ~12 MB per load/scale cycle: glibc raised its mmap threshold to the size
// of the first large block freed, and later blocks of that size came from the heap, where small
// allocations between them kept them from going back. Two rounds: the second is the one that
// stayed resident without tune_allocator_for_server.
TEST(ServerAllocator, FreedLargeBlocksGoBackToTheSystem) {
#if !defined(__GLIBC__)
  GTEST_SKIP() << "the policy is glibc's malloc's";
#endif
  tune_allocator_for_server();
  constexpr std::size_t kBlock = 4 * kServerMmapThreshold, kBlocks = 16;
  std::vector<std::unique_ptr<char[]>> pins;  // small allocations between the blocks, kept
  for (int round = 0; round < 2; ++round) {
    const std::size_t before = resident_bytes();
    std::vector<std::unique_ptr<char[]>> blocks;
    for (std::size_t i = 0; i < kBlocks; ++i) {
      blocks.emplace_back(new char[kBlock]);
      std::memset(blocks.back().get(), 1, kBlock);
      pins.emplace_back(new char[64]);
    }
    EXPECT_GE(resident_bytes(), before + kBlocks * kBlock * 3 / 4) << "round " << round;
    blocks.clear();
    EXPECT_LT(resident_bytes(), before + 2 * kBlock) << "round " << round << ": freed blocks stayed resident";
  }
}

}  // namespace
}  // namespace tuneserve
