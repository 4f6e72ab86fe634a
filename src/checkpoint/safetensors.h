// safetensors: read (memory-mapped) and write.
//
// On-disk layout (https://github.com/huggingface/safetensors):
//   8 bytes   little-endian u64 N: length of the header
//   N bytes   UTF-8 JSON object: {"__metadata__": {str: str}?,
//                                 "<name>": {"dtype": "F32"|"F16"|"BF16"|"I64"|..., "shape": [..],
//                                            "data_offsets": [begin, end]}, ...}
//             offsets are relative to the end of the header; the header may be space-padded.
//   rest      the tensors' bytes, little-endian, row-major.
// Floating tensors are handed out as fp32 whatever their stored dtype (F16/BF16 converted on load).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"

namespace tuneserve {

inline bool is_floating(DType d) { return d == DType::F64 || d == DType::F32 || d == DType::F16 || d == DType::BF16; }
// n little-endian values of a floating dtype (F64/F32/F16/BF16) to fp32; Error for other dtypes.
void convert_to_f32(DType dtype, const std::uint8_t* data, std::size_t n, float* out);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::size_t begin = 0;  // byte offset into the data section
  std::size_t end = 0;
  std::int64_t numel() const;
};

std::string shape_string(const std::vector<std::int64_t>& shape);  // "[3, 12]"

// A parsed header: tensors in header order, metadata, and where the data section starts.
struct SafeTensorsHeader {
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  std::size_t data_start = 0;
};

// Parses and validates the header of a whole file's bytes (`path` names it in errors), as the
// reference library does: header length, JSON (core/json.h limits), known dtypes, shapes whose
// byte size is computed with overflow checks and matches data_offsets, and offsets that tile the
// data section exactly (no overlap, no gap, nothing after). Throws Error naming file and tensor.
SafeTensorsHeader parse_safetensors_header(std::span<const std::uint8_t> file, const std::string& path);

class SafeTensorsReader {
 public:
  explicit SafeTensorsReader(const std::string& path);  // validates header and offsets

  const std::string& path() const { return file_.path(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // throws Error naming tensor and file

  // Floating tensor as fp32 (F32/F16/BF16/F64). Throws for integer dtypes.
  std::vector<float> read_f32(const std::string& name) const;
  // Integer tensor as int64 (I64/I32/I16/I8/U8/BOOL).
  std::vector<std::int64_t> read_i64(const std::string& name) const;
  // Raw stored bytes.
  const std::uint8_t* raw(const std::string& name) const;

 private:
  MappedFile file_;
  std::size_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

class SafeTensorsWriter {
 public:
  void add_f32(const std::string& name, std::vector<std::int64_t> shape, const float* data);
  void add_i64(const std::string& name, std::vector<std::int64_t> shape, const std::int64_t* data);
  // numel(shape) values of `dtype`, little-endian, row-major (copied).
  void add_raw(const std::string& name, DType dtype, std::vector<std::int64_t> shape, const void* data);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  // Writes to path + ".tmp" then renames, so a crash never leaves a half-written checkpoint.
  // Tensors are stored sorted by name, as the reference library does.
  void write(const std::string& path) const;

 private:
  struct Entry {
    DType dtype;
    std::vector<std::int64_t> shape;
    std::vector<std::uint8_t> bytes;
  };
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace tuneserve
