// The CUDA runtime as the rest of tuneserve sees it: device count, memory, copies, the stream every
// kernel launches on, bf16 conversion. Plain C++ (no CUDA headers), so any file may include it.
//
// Dimensions: n elements. All pointers named d_* or documented "device" are device memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dtype.h"

struct CUstream_st;  // cudaStream_t is CUstream_st*; declared here so callers need no CUDA header

namespace tuneserve::cuda {

using Stream = CUstream_st*;

// bf16 storage (the top 16 bits of an fp32), as __nv_bfloat16 lays it out: core/dtype.h's.
using Bf16 = tuneserve::Bf16;

// Number of usable GPUs; 0 when there is no driver or no device (why_none, when given, says which).
int device_count(std::string* why_none = nullptr);
// Makes `index` the current device of this thread; a clear error when it does not exist.
void set_device(int index);

// The stream every kernel of this library launches on, per host thread (default: the legacy stream).
// Kernels never synchronise the host except where a header says so.
void set_stream(Stream stream);
Stream current_stream();
void synchronize();  // waits for the current stream; throws with the first asynchronous error

// Stream-ordered device memory on the current stream. deallocate(nullptr) is a no-op.
void* allocate(std::size_t bytes);
void deallocate(void* ptr);
void copy_to_device(void* dst, const void* src, std::size_t bytes);  // blocks until copied
void copy_to_host(void* dst, const void* src, std::size_t bytes);    // blocks until copied
void copy_device(void* dst, const void* src, std::size_t bytes);     // stream-ordered
void zero(void* dst, std::size_t bytes);                             // stream-ordered

// out (n) = round-to-nearest-even bf16 of inp (n), and back.
void to_bf16(Bf16* out, const float* inp, std::size_t n);
void from_bf16(float* out, const Bf16* inp, std::size_t n);

}  // namespace tuneserve::cuda
