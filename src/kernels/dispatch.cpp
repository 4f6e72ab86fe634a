// Device checks, backend tables and device memory: the single dispatch point between the CPU and the
// CUDA backend (kernels/device.h, kernels/backend.h).
// TUNESERVE_HAVE_CUDA is defined for this library only when src/kernels/cuda is built.
#include "kernels/device.h"

#include <atomic>
#include <map>
#include <mutex>
#include <utility>

#include "core/error.h"
#include "kernels/backend.h"
#include "kernels/collective.h"
#ifndef TUNESERVE_HAVE_CUDA
#define TUNESERVE_HAVE_CUDA 0
#endif
#if TUNESERVE_HAVE_CUDA
#include "kernels/cuda/backend.h"
#include "kernels/cuda/nccl.h"
#include "kernels/cuda/runtime.h"
#endif

namespace tuneserve {

namespace {
[[noreturn, maybe_unused]] void fail_no_cuda(const Device& device) {
  fail("device '{}': tuneserve was built without CUDA; rebuild with -DTUNESERVE_CUDA=ON", device.str());
}
}  // namespace

bool built_with_cuda() { return TUNESERVE_HAVE_CUDA != 0; }

int cuda_device_count(std::string* why_none) {
#if TUNESERVE_HAVE_CUDA
  return cuda::device_count(why_none);
#else
  if (why_none) *why_none = "built without CUDA";
  return 0;
#endif
}

namespace {
// set_backend_for_tests: one stand-in table per Device::Kind (null: the real one).
std::atomic<const Backend*> g_test_backends[2] = {nullptr, nullptr};

const Backend* test_backend(Device::Kind kind) {
  return g_test_backends[static_cast<int>(kind)].load(std::memory_order_acquire);
}
}  // namespace

void set_backend_for_tests(Device::Kind kind, const Backend* backend) {
  g_test_backends[static_cast<int>(kind)].store(backend, std::memory_order_release);
}

void require_device(const Device& device) {
  if (test_backend(device.kind)) return;
  if (!device.is_cuda()) return;
#if TUNESERVE_HAVE_CUDA
  cuda::set_device(device.index);
#else
  fail_no_cuda(device);
#endif
}

const Backend& backend_for(const Device& device) {
  if (const Backend* stand_in = test_backend(device.kind)) return *stand_in;
  if (!device.is_cuda()) return cpu_backend();
  require_device(device);
#if TUNESERVE_HAVE_CUDA
  // One table per ordinal (the same functions; Backend::device names the GPU), kept for the process.
  static std::mutex mutex;
  static std::map<int, Backend> tables;
  const std::lock_guard lock(mutex);
  auto [it, inserted] = tables.try_emplace(device.index, cuda::backend());
  if (inserted) it->second.device = device;
  return it->second;
#else
  fail_no_cuda(device);
#endif
}

std::vector<char> nccl_unique_id() {
#if TUNESERVE_HAVE_CUDA
  return cuda::nccl_unique_id();
#else
  fail("NCCL: tuneserve was built without CUDA; rebuild with -DTUNESERVE_CUDA=ON");
#endif
}

std::unique_ptr<GradientCollective> nccl_collective(const Device& device, const std::vector<char>& unique_id, int rank,
                                                    int size) {
#if TUNESERVE_HAVE_CUDA
  if (!device.is_cuda()) fail("NCCL sums GPU memory; device {} is not a GPU", device.str());
  return cuda::nccl_collective(device.index, unique_id, rank, size);
#else
  fail_no_cuda(device);
#endif
}

DeviceBuffer::DeviceBuffer(const Backend& backend, std::size_t bytes)
    : backend_(&backend), data_(backend.allocate(bytes)), bytes_(bytes) {}

DeviceBuffer::~DeviceBuffer() { release(); }

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : backend_(other.backend_), data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    release();
    backend_ = other.backend_;
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::release() noexcept {
  if (data_) {
    try {
      backend_->deallocate(data_);
    } catch (...) {  // a destructor must not throw; a GPU error resurfaces at the next checked call
    }
  }
  data_ = nullptr;
  bytes_ = 0;
}

void DeviceBuffer::upload(const void* host, std::size_t bytes) {
  if (bytes > bytes_)
    fail("upload of {} bytes into a {}-byte buffer on {}", bytes, bytes_, backend_ ? backend_->device.str() : "cpu");
  if (bytes) backend_->upload(data_, host, bytes);
}

void DeviceBuffer::download(void* host, std::size_t bytes) const {
  if (bytes > bytes_)
    fail("download of {} bytes from a {}-byte buffer on {}", bytes, bytes_,
         backend_ ? backend_->device.str() : "cpu");
  if (bytes) backend_->download(host, data_, bytes);
}

}  // namespace tuneserve
