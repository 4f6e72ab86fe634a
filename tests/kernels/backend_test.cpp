// kernels/backend.h tables: the CPU table's optimizer entries are bitwise the Trainer's optimizer
// (train/optimizer.h), and the emulated GPU (tests/emulated_backend.h) keeps device memory out of
// the host's reach, rejects host pointers given to kernels by function and argument, and computes
// bitwise what the CPU table computes.
//
// Dimensions: n elements; M, K, N of a linear layer.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <omp.h>
#include <sys/mman.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <utility>
#include <random>
#include <vector>

#include "core/error.h"
#include "emulated_backend.h"
#include "kernels/backend.h"
#include "train/optimizer.h"

namespace tuneserve {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;
using testing::emulated_gpu;

std::vector<float> randn(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// A device copy of a host vector on `b`.
struct Dev {
  Dev(const Backend& b, const std::vector<float>& host) : buf(b, host.size() * sizeof(float)), n(host.size()) {
    buf.upload(host.data(), n * sizeof(float));
  }
  float* get() const { return buf.as<float>(); }
  std::vector<float> back() const {
    std::vector<float> host(n);
    buf.download(host.data(), n * sizeof(float));
    return host;
  }
  DeviceBuffer buf;
  std::size_t n;
};

TEST(CpuBackend, OptimizerEntriesAreBitwiseTheTrainersOptimizer) {
  // Three tensors, one above the 65536-element threshold where the sums go parallel, one not decayed.
  const std::vector<std::size_t> sizes = {70001, 513, 4096};
  const std::vector<std::string> names = {"encoder.dense.weight", "encoder.dense.bias", "classifier.weight"};
  std::vector<std::vector<float>> value_a, value_b, grads, m(3), v(3);
  std::vector<train::ParamRef> refs;
  std::vector<OptimizerSlice> slices;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    value_a.push_back(randn(sizes[i], 10 + i));
    value_b.push_back(value_a.back());
    grads.push_back(randn(sizes[i], 20 + i));
    m[i].assign(sizes[i], 0.0f);
    v[i].assign(sizes[i], 0.0f);
  }
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    refs.push_back({names[i], value_a[i].data(), grads[i].data(), sizes[i]});
    slices.push_back({value_b[i].data(), grads[i].data(), m[i].data(), v[i].data(), sizes[i],
                      train::uses_weight_decay(names[i])});
  }
  double sum = 0.0;  // serial: the parallel sum agrees to rounding
  for (const auto& g : grads)
    for (float x : g) sum += static_cast<double>(x) * x;
  EXPECT_NEAR(cpu_backend().grad_norm(slices), std::sqrt(sum), 1e-12 * std::sqrt(sum));
  // Pieces of fixed size added in order: the same bits on one thread as on several.
  const double parallel_norm = cpu_backend().grad_norm(slices);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  EXPECT_EQ(cpu_backend().grad_norm(slices), parallel_norm);
  omp_set_num_threads(threads);

  // The optimizer's step before it ran on a Backend: one kernel call per tensor, decay zeroed
  // outside the decay group (train::AdamW now calls adamw_update_all itself).
  std::vector<std::vector<float>> m_ref = m, v_ref = v;
  kernels::cpu::AdamWHyper hyper;
  hyper.weight_decay = 0.01;
  hyper.grad_scale = 0.5f;
  for (long step = 1; step <= 3; ++step) {
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      kernels::cpu::AdamWHyper h{1e-3, 0.9, 0.999, 1e-8, train::uses_weight_decay(names[i]) ? 0.01 : 0.0, step};
      h.grad_scale = 0.5f;
      kernels::cpu::adamw_update(refs[i].value, refs[i].grad, m_ref[i].data(), v_ref[i].data(), sizes[i], h);
    }
    hyper.lr = 1e-3;
    hyper.step = step;
    cpu_backend().adamw_update_all(slices, hyper);
  }
  for (std::size_t i = 0; i < sizes.size(); ++i)
    EXPECT_EQ(0, std::memcmp(value_a[i].data(), value_b[i].data(), sizes[i] * sizeof(float))) << names[i];
}

// The mapping of /proc/self/smaps that holds `p`: its size and AnonHugePages, in kB; {0, 0} if none.
std::pair<std::size_t, std::size_t> smaps_entry(const void* p) {
  std::ifstream in("/proc/self/smaps");
  const auto at = reinterpret_cast<std::uintptr_t>(p);
  bool inside = false;
  std::size_t size = 0, huge = 0;
  for (std::string line; std::getline(in, line);) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      if (inside) break;
      inside = lo <= at && at < hi;
    } else if (inside) {
      std::sscanf(line.c_str(), "Size: %zu kB", &size);
      std::sscanf(line.c_str(), "AnonHugePages: %zu kB", &huge);
    }
  }
  return {size, huge};
}

// Whether this process gets 2 MiB pages where it asks for them: a 4 MiB mapping of its own with
// MADV_HUGEPAGE, written, then looked up in smaps. Not under qemu-user (it does not pass the advice
// on), nor where transparent huge pages are off or memory too fragmented.
bool huge_pages_granted() {
  constexpr std::size_t kHuge = std::size_t{2} << 20;
  void* raw = mmap(nullptr, 3 * kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return false;
  auto* p = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(raw) + kHuge - 1) / kHuge * kHuge);
  const bool advised = madvise(p, 2 * kHuge, MADV_HUGEPAGE) == 0;
  std::memset(p, 1, 2 * kHuge);
  const bool granted = advised && smaps_entry(p).second > 0;
  munmap(raw, 3 * kHuge);
  return granted;
}

// Buffers from 2 MiB are their own mappings in 2 MiB pages (where this process gets them at all),
// and go back to the system when freed; smaller ones come from the heap, 64-byte aligned.
TEST(CpuBackend, LargeBuffersAreHugePageMappings) {
  const Backend& cpu = cpu_backend();
  void* small = cpu.allocate(1000);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(small) % 64, 0u);
  std::memset(small, 1, 1000);
  cpu.deallocate(small);

  const std::size_t bytes = (std::size_t{6} << 20) + 100;  // rounds up to 8 MiB
  void* big = cpu.allocate(bytes);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(big) % (std::size_t{2} << 20), 0u);
  std::memset(big, 1, bytes);
  EXPECT_EQ(static_cast<unsigned char*>(big)[bytes - 1], 1);
  const auto [size_kb, huge_kb] = smaps_entry(big);
  EXPECT_GE(size_kb, bytes / 1024) << "the buffer's mapping";
  cpu.deallocate(big);
  EXPECT_EQ(smaps_entry(big).first, 0u) << "freed: the mapping is gone";
  // A size that would wrap when rounded up to 2 MiB is an error, not a short mapping.
  EXPECT_THAT([&] { cpu.allocate(std::numeric_limits<std::size_t>::max() - 100); },
              ThrowsMessage<Error>(HasSubstr("cannot allocate")));
  if (!huge_pages_granted())
    GTEST_SKIP() << "this process gets no 2 MiB pages even for its own madvise(MADV_HUGEPAGE) mapping "
                    "(qemu-user, transparent huge pages off, or fragmented memory): the page size is not checked";
  EXPECT_GT(huge_kb, 0u) << "a mapping of this process's own gets 2 MiB pages, and the buffer got none";
}

TEST(EmulatedGpu, MemoryRoundTripsAndLeaksNothing) {
  const Backend& gpu = emulated_gpu();
  const std::size_t before = testing::emulated_gpu_bytes_in_use();
  {
    const std::vector<float> a = randn(1000, 1), b = randn(1000, 2);
    Dev da(gpu, a), db(gpu, b), dc(gpu, std::vector<float>(1000));
    EXPECT_TRUE(testing::is_emulated_device_address(da.get()));
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(da.get()) % 64, 0u);
    EXPECT_EQ(da.back(), a);
    gpu.copy(dc.get(), da.get(), 1000 * sizeof(float));
    EXPECT_EQ(dc.back(), a);
    gpu.add(dc.get(), db.get(), 1000);
    std::vector<float> sum = a;
    cpu_backend().add(sum.data(), b.data(), sum.size());
    EXPECT_EQ(dc.back(), sum);
    gpu.zero(dc.get(), 1000 * sizeof(float));
    EXPECT_EQ(dc.back(), std::vector<float>(1000, 0.0f));
    EXPECT_GT(testing::emulated_gpu_bytes_in_use(), before);
  }
  EXPECT_EQ(testing::emulated_gpu_bytes_in_use(), before);
}

TEST(EmulatedGpu, HostCannotDereferenceDeviceMemory) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  DeviceBuffer buf(emulated_gpu(), 64);
  const volatile float* p = buf.as<float>();
  EXPECT_DEATH({ [[maybe_unused]] const float x = *p; }, "");
}

TEST(EmulatedGpu, RejectsHostPointersNamingFunctionAndArgument) {
  const Backend& gpu = emulated_gpu();
  std::vector<float> host(16, 1.0f);
  Dev d(gpu, host);
  EXPECT_THAT([&] { gpu.add(d.get(), host.data(), 16); },
              ThrowsMessage<Error>(AllOf(HasSubstr("add"), HasSubstr("'b'"), HasSubstr("not device memory"))));
  EXPECT_THAT([&] { gpu.matmul_forward(host.data(), d.get(), d.get(), nullptr, 1, 4, 4, 0); },
              ThrowsMessage<Error>(AllOf(HasSubstr("matmul_forward"), HasSubstr("'out'"))));
  EXPECT_THAT([&] { gpu.upload(d.get(), d.get(), 16); },
              ThrowsMessage<Error>(AllOf(HasSubstr("upload"), HasSubstr("'host_src'"), HasSubstr("is device memory"))));
  EXPECT_THAT([&] { gpu.download(d.get(), d.get(), 16); }, ThrowsMessage<Error>(HasSubstr("'host_dst'")));
  // Past the end of the allocation, and a freed buffer.
  EXPECT_THAT([&] { gpu.zero(d.get(), 17 * sizeof(float)); },
              ThrowsMessage<Error>(AllOf(HasSubstr("zero"), HasSubstr("needs 68 bytes"))));
  float* stale = nullptr;
  {
    DeviceBuffer gone(gpu, 4096);
    stale = gone.as<float>();
  }
  EXPECT_THAT([&] { gpu.zero(stale, 4); }, ThrowsMessage<Error>(HasSubstr("not in a live device allocation")));
  EXPECT_THAT([&] { gpu.relu_forward(nullptr, d.get(), 16); }, ThrowsMessage<Error>(HasSubstr("'out' is null")));
}

TEST(EmulatedGpu, KernelsAndPreparedLinearAreBitwiseTheCpuTable) {
  const Backend& gpu = emulated_gpu();
  const int M = 7, K = 48, N = 32;
  const std::vector<float> x = randn(static_cast<std::size_t>(M) * K, 3), w = randn(static_cast<std::size_t>(N) * K, 4),
                           b = randn(N, 5);
  std::vector<float> want(static_cast<std::size_t>(M) * N), want_gelu(want.size());
  cpu_backend().matmul_forward(want.data(), x.data(), w.data(), b.data(), M, K, N, 0);
  cpu_backend()
      .prepare_linear(w.data(), b.data(), K, N, LinearActivation::Gelu, DType::F32)
      ->forward(want_gelu.data(), DType::F32, x.data(), DType::F32, M, 0, 0);
  Dev dx(gpu, x), dw(gpu, w), db(gpu, b), out(gpu, std::vector<float>(want.size()));
  gpu.matmul_forward(out.get(), dx.get(), dw.get(), db.get(), M, K, N, 0);
  EXPECT_EQ(out.back(), want);
  gpu.prepare_linear(dw.get(), db.get(), K, N, LinearActivation::Gelu, DType::F32)
      ->forward(out.get(), DType::F32, dx.get(), DType::F32, M, 0, 0);
  EXPECT_EQ(out.back(), want_gelu);

  // A loss returns its value to the host; the targets are device memory too.
  const std::vector<std::int32_t> targets = {0, 3, 1, 31, 2, 0, 5};
  DeviceBuffer dt(gpu, targets.size() * sizeof(std::int32_t));
  dt.upload(targets.data(), targets.size() * sizeof(std::int32_t));
  EXPECT_EQ(gpu.cross_entropy_forward(out.get(), dt.as<std::int32_t>(), M, N),
            cpu_backend().cross_entropy_forward(want_gelu.data(), targets.data(), M, N));
}

TEST(EmulatedGpu, StandsInForCudaWhileInstalled) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a real GPU is present";
  {
    testing::ScopedEmulatedGpu scoped;
    EXPECT_EQ(&backend_for(parse_device("cuda")), &emulated_gpu());
    DeviceBuffer buf(parse_device("cuda:0"), 32);
    EXPECT_TRUE(testing::is_emulated_device_address(buf.data()));
  }
  EXPECT_THROW(backend_for(parse_device("cuda")), Error);
}

}  // namespace
}  // namespace tuneserve
