// Where tensors live and kernels run: the CPU or one CUDA GPU. The only place that knows whether
// this build has CUDA (device.cpp); everything else asks it, so model code needs no #ifdef.
//
// Device strings: "cpu", "cuda" (= cuda:0), "cuda:N".
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tuneserve {

struct Device {
  enum class Kind { cpu, cuda };
  Kind kind = Kind::cpu;
  int index = 0;  // GPU ordinal for cuda

  bool is_cuda() const { return kind == Kind::cuda; }
  std::string str() const;  // "cpu" or "cuda:N"
  bool operator==(const Device&) const = default;
};

// Parses a --device value; a clear error naming the value otherwise. Does not check that the GPU
// exists (see require_device).
Device parse_device(std::string_view text);

// True when this build has the CUDA backend (-DTUNESERVE_CUDA=ON).
bool built_with_cuda();
// GPUs usable now: 0 without the CUDA backend, a driver or a device (why_none says which).
int cuda_device_count(std::string* why_none = nullptr);

// Makes `device` usable on this thread (selects the GPU) or throws: "built without CUDA; rebuild
// with -DTUNESERVE_CUDA=ON", or no driver/GPU, or no such ordinal.
void require_device(const Device& device);

// Memory on a device: plain heap memory on the CPU, device memory on a GPU. Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const Device& device, std::size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  template <typename T>
  T* as() const { return static_cast<T*>(data_); }
  std::size_t bytes() const { return bytes_; }
  const Device& device() const { return device_; }

  // Copies from/to host memory (bytes must not exceed bytes()); both block until done.
  void upload(const void* host, std::size_t bytes);
  void download(void* host, std::size_t bytes) const;

 private:
  void release() noexcept;
  Device device_;
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace tuneserve
