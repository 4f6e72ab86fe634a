// An emulated GPU for tests on machines without one: a Backend whose "device" memory the host cannot
// touch. Device memory is one memfd mapped twice: the device range is PROT_NONE (any host-side
// dereference of a device pointer SEGFAULTs, as on a GPU), the other mapping is readable and is what
// the CPU kernels get after translation. Every table function checks that each pointer argument is
// device memory (null allowed where the kernel allows it) and throws Error naming the function and
// argument otherwise — a host pointer handed to a kernel is the classic GPU bug. upload/download are
// the only functions that take host pointers. Results are bitwise those of the CPU table.
//
// Dimensions: bytes in bytes.
#pragma once

#include <cstddef>

#include "kernels/backend.h"

namespace tuneserve::testing {

// The table (Backend::device = cuda:0). The memory region is created on first use.
const Backend& emulated_gpu();

// Installs emulated_gpu() as every cuda device (set_backend_for_tests) for its lifetime.
class ScopedEmulatedGpu {
 public:
  ScopedEmulatedGpu();
  ~ScopedEmulatedGpu();
  ScopedEmulatedGpu(const ScopedEmulatedGpu&) = delete;
  ScopedEmulatedGpu& operator=(const ScopedEmulatedGpu&) = delete;
};

// Bytes of emulated device memory allocated and not yet freed (leak checks in tests).
std::size_t emulated_gpu_bytes_in_use();
// True when p lies in the emulated device address range (allocated or not).
bool is_emulated_device_address(const void* p);

}  // namespace tuneserve::testing
