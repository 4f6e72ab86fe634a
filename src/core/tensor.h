// A Tensor view: pointer + element type + device + shape (row-major, rank <= 4), the unit the
// checked kernel layer (kernels/ops.h) compares shapes, dtypes and devices on. It owns nothing.
// A 2-D view may have rows `row_stride` elements apart (some columns of a wider tensor).
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "core/device.h"
#include "core/dtype.h"

namespace tuneserve {

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  Device device{};
  std::array<std::int64_t, 4> shape{};
  int rank = 0;
  std::int64_t row_stride = 0;  // 2-D: elements from one row to the next; 0 = shape[1] (contiguous)

  Tensor() = default;
  Tensor(float* p, const Device& d, std::initializer_list<std::int64_t> dims) : Tensor(p, DType::F32, d, dims) {}
  Tensor(const float* p, const Device& d, std::initializer_list<std::int64_t> dims)
      : Tensor(const_cast<float*>(p), DType::F32, d, dims) {}
  Tensor(Bf16* p, const Device& d, std::initializer_list<std::int64_t> dims) : Tensor(p, DType::BF16, d, dims) {}
  Tensor(const Bf16* p, const Device& d, std::initializer_list<std::int64_t> dims)
      : Tensor(const_cast<Bf16*>(p), DType::BF16, d, dims) {}
  Tensor(std::int32_t* p, const Device& d, std::initializer_list<std::int64_t> dims) : Tensor(p, DType::I32, d, dims) {}
  Tensor(const std::int32_t* p, const Device& d, std::initializer_list<std::int64_t> dims)
      : Tensor(const_cast<std::int32_t*>(p), DType::I32, d, dims) {}
  Tensor(void* p, DType t, const Device& d, std::initializer_list<std::int64_t> dims) : data(p), dtype(t), device(d) {
    for (const std::int64_t n : dims) shape[static_cast<std::size_t>(rank++)] = n;
  }

  // The same view with rows `stride` elements apart (2-D).
  Tensor strided(std::int64_t stride) const {
    Tensor t = *this;
    t.row_stride = stride;
    return t;
  }
  bool empty() const { return data == nullptr; }
  std::int64_t dim(int i) const { return shape[static_cast<std::size_t>(i)]; }
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= shape[static_cast<std::size_t>(i)];
    return n;
  }
  std::int64_t stride() const { return row_stride ? row_stride : (rank == 2 ? shape[1] : 0); }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
  std::string describe() const;  // "F32 [8, 768] on cpu"
};

}  // namespace tuneserve
