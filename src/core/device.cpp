// Device selection and memory: the single dispatch point between the CPU and the CUDA backend.
// TUNESERVE_HAVE_CUDA is defined for this library only when src/kernels/cuda is built.
#include "core/device.h"

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "core/error.h"
#ifndef TUNESERVE_HAVE_CUDA
#define TUNESERVE_HAVE_CUDA 0
#endif
#if TUNESERVE_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace tuneserve {

namespace {
[[noreturn, maybe_unused]] void fail_no_cuda(const Device& device) {
  fail("device '{}': tuneserve was built without CUDA; rebuild with -DTUNESERVE_CUDA=ON", device.str());
}
}  // namespace

std::string Device::str() const { return is_cuda() ? "cuda:" + std::to_string(index) : "cpu"; }

Device parse_device(std::string_view text) {
  if (text == "cpu") return {};
  if (text == "cuda") return {Device::Kind::cuda, 0};
  if (text.starts_with("cuda:")) {
    const std::string_view digits = text.substr(5);
    int index = -1;
    const auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (!digits.empty() && err == std::errc() && end == digits.data() + digits.size() && index >= 0)
      return {Device::Kind::cuda, index};
  }
  fail("device '{}': expected cpu, cuda or cuda:N (N = GPU ordinal, 0-based)", text);
}

bool built_with_cuda() { return TUNESERVE_HAVE_CUDA != 0; }

int cuda_device_count(std::string* why_none) {
#if TUNESERVE_HAVE_CUDA
  return cuda::device_count(why_none);
#else
  if (why_none) *why_none = "built without CUDA";
  return 0;
#endif
}

void require_device(const Device& device) {
  if (!device.is_cuda()) return;
#if TUNESERVE_HAVE_CUDA
  cuda::set_device(device.index);
#else
  fail_no_cuda(device);
#endif
}

DeviceBuffer::DeviceBuffer(const Device& device, std::size_t bytes) : device_(device), bytes_(bytes) {
  if (bytes == 0) return;
  if (!device.is_cuda()) {
    data_ = std::malloc(bytes);
    if (!data_) fail("cannot allocate {} bytes of host memory", bytes);
    return;
  }
#if TUNESERVE_HAVE_CUDA
  data_ = cuda::allocate(bytes);
#else
  fail_no_cuda(device);
#endif
}

DeviceBuffer::~DeviceBuffer() { release(); }

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : device_(other.device_), data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    release();
    device_ = other.device_;
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::release() noexcept {
  if (!data_) return;
  if (!device_.is_cuda()) {
    std::free(data_);
  } else {
#if TUNESERVE_HAVE_CUDA
    try {
      cuda::deallocate(data_);
    } catch (...) {  // a destructor must not throw; the error resurfaces at the next checked CUDA call
    }
#endif
  }
  data_ = nullptr;
  bytes_ = 0;
}

void DeviceBuffer::upload(const void* host, std::size_t bytes) {
  if (bytes > bytes_) fail("upload of {} bytes into a {}-byte buffer on {}", bytes, bytes_, device_.str());
  if (!device_.is_cuda()) {
    if (bytes) std::memcpy(data_, host, bytes);
    return;
  }
#if TUNESERVE_HAVE_CUDA
  cuda::copy_to_device(data_, host, bytes);
#endif
}

void DeviceBuffer::download(void* host, std::size_t bytes) const {
  if (bytes > bytes_) fail("download of {} bytes from a {}-byte buffer on {}", bytes, bytes_, device_.str());
  if (!device_.is_cuda()) {
    if (bytes) std::memcpy(host, data_, bytes);
    return;
  }
#if TUNESERVE_HAVE_CUDA
  cuda::copy_to_host(host, data_, bytes);
#endif
}

}  // namespace tuneserve
