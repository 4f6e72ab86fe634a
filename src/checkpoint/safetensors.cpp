#include "checkpoint/safetensors.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json.h"

namespace tuneserve {
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors is little-endian");

constexpr std::size_t kMaxHeader = 100u << 20;  // the reference library's limit


float half_to_float(std::uint16_t h) {
  std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

}  // namespace

std::int64_t TensorInfo::numel() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string shape_string(const std::vector<std::int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

namespace {

// a * b, or nullopt when it does not fit in 64 bits.
std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b) {
  std::uint64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) return std::nullopt;
  return out;
}

TensorInfo parse_entry(const std::string& path, const std::string& name, const nlohmann::json& v) {
  const std::string where = fmt::format("{}: tensor '{}'", path, text_excerpt(name));
  if (!v.is_object()) fail("{}: expected an object with dtype, shape and data_offsets", where);
  TensorInfo t;
  t.name = name;
  const auto dtype = v.find("dtype");
  if (dtype == v.end() || !dtype->is_string()) fail("{}: dtype is missing or not a string", where);
  const std::string& dt = dtype->get_ref<const std::string&>();
  const std::optional<DType> known = dtype_from_name(dt);
  if (!known) fail("{}: unsupported dtype {}", where, text_excerpt(dt));
  t.dtype = *known;
  const auto shape = v.find("shape");
  if (shape == v.end() || !shape->is_array()) fail("{}: shape is missing or not a list", where);
  // Products are checked: a shape like [2^32, 2^32] must not wrap around to 0 bytes.
  std::uint64_t numel = 1;
  for (const auto& d : *shape) {
    if (!d.is_number_unsigned()) fail("{}: shape {} holds something other than a non-negative integer", where, json_excerpt(*shape));
    const auto dim = d.get<std::uint64_t>();
    const auto product = checked_mul(numel, dim);
    if (!product || dim > static_cast<std::uint64_t>(INT64_MAX)) fail("{}: shape {} has more elements than fit in 64 bits", where, json_excerpt(*shape));
    numel = *product;
    t.shape.push_back(static_cast<std::int64_t>(dim));
  }
  const auto bytes = checked_mul(numel, dtype_size(t.dtype));
  if (!bytes || numel > static_cast<std::uint64_t>(INT64_MAX)) fail("{}: {} {} is larger than 2^64 bytes", where, dt, json_excerpt(*shape));
  const auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
    fail("{}: data_offsets must be [begin, end], two non-negative integers", where);
  t.begin = (*off)[0].get<std::uint64_t>();
  t.end = (*off)[1].get<std::uint64_t>();
  if (t.begin > t.end || t.end - t.begin != *bytes)
    fail("{}: {} {} needs {} bytes but data_offsets [{}, {}] give {}", where, dt, shape_string(t.shape), *bytes, t.begin,
         t.end, t.begin > t.end ? std::string("a negative size") : std::to_string(t.end - t.begin));
  return t;
}

}  // namespace

SafeTensorsHeader parse_safetensors_header(std::span<const std::uint8_t> file, const std::string& path) {
  const std::size_t size = file.size();
  if (size < 8) fail("{}: not a safetensors file (only {} bytes)", path, size);
  std::uint64_t header_len;
  std::memcpy(&header_len, file.data(), 8);
  // The length is not printed when it is absurd: it is then 8 bytes of some other file's content.
  if (header_len > kMaxHeader) fail("{}: not a safetensors file (its first 8 bytes are not a header length)", path);
  if (header_len > size - 8)
    fail("{}: truncated safetensors file (a header of {} bytes does not fit in {} bytes)", path, header_len, size);
  SafeTensorsHeader out;
  out.data_start = 8 + header_len;
  const std::size_t data_size = size - out.data_start;
  const std::string_view text(reinterpret_cast<const char*>(file.data() + 8), header_len);
  const nlohmann::json header = parse_json(text, path + ": safetensors header", JsonLimits{kMaxHeader});
  if (!header.is_object()) fail("{}: safetensors header is not a JSON object", path);

  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) fail("{}: __metadata__ is not an object", path);
      for (const auto& [key, value] : v.items())
        out.metadata[key] = value.is_string() ? value.get<std::string>() : json_excerpt(value, 1 << 20);
      continue;
    }
    out.tensors.push_back(parse_entry(path, name, v));
  }
  // As the reference library requires: the tensors tile the data section exactly, in offset order,
  // with no overlap (two tensors sharing bytes), no gap and nothing after the last one.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : out.tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return std::pair(a->begin, a->end) < std::pair(b->begin, b->end); });
  std::size_t expected = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo* t : by_offset) {
    if (t->begin < expected)
      fail("{}: tensor '{}' at bytes [{}, {}) overlaps tensor '{}' at [{}, {})", path, text_excerpt(t->name), t->begin,
           t->end, text_excerpt(previous->name), previous->begin, previous->end);
    if (t->begin > expected)
      fail("{}: tensor '{}' starts at byte {}, leaving bytes [{}, {}) of the data section unused", path,
           text_excerpt(t->name), t->begin, expected, t->begin);
    expected = t->end;
    previous = t;
  }
  if (expected != data_size)
    fail("{}: the tensors end at byte {} of a {}-byte data section ({})", path, expected, data_size,
         expected > data_size ? "the file is truncated" : "bytes after the last tensor");
  return out;
}

SafeTensorsReader::SafeTensorsReader(const std::string& path) : file_(path) {
  SafeTensorsHeader header = parse_safetensors_header(file_.bytes(), path);
  data_start_ = header.data_start;
  tensors_ = std::move(header.tensors);
  metadata_ = std::move(header.metadata);
  for (std::size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

const TensorInfo& SafeTensorsReader::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("{}: no tensor named '{}'", path(), name);
  return tensors_[it->second];
}

const std::uint8_t* SafeTensorsReader::raw(const std::string& name) const {
  return file_.data() + data_start_ + info(name).begin;
}

void convert_to_f32(DType dtype, const std::uint8_t* p, std::size_t n, float* out) {
  switch (dtype) {
    case DType::F32:
      std::memcpy(out, p, n * 4);
      break;
    case DType::F64:
      for (std::size_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, 8);
        out[i] = static_cast<float>(d);
      }
      break;
    case DType::F16:
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = half_to_float(h);
      }
      break;
    case DType::BF16:
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
      }
      break;
    default:
      fail("{} is not a floating dtype", dtype_name(dtype));
  }
}

std::vector<float> SafeTensorsReader::read_f32(const std::string& name) const {
  const TensorInfo& t = info(name);
  if (!is_floating(t.dtype)) fail("{}: tensor '{}' is {}, expected a floating dtype", path(), name, dtype_name(t.dtype));
  std::vector<float> out(static_cast<std::size_t>(t.numel()));
  convert_to_f32(t.dtype, raw(name), out.size(), out.data());
  return out;
}

std::vector<std::int64_t> SafeTensorsReader::read_i64(const std::string& name) const {
  const TensorInfo& t = info(name);
  const std::uint8_t* p = raw(name);
  const std::size_t n = static_cast<std::size_t>(t.numel());
  std::vector<std::int64_t> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    switch (t.dtype) {
      case DType::I64: std::memcpy(&out[i], p + 8 * i, 8); break;
      case DType::I32: { std::int32_t v; std::memcpy(&v, p + 4 * i, 4); out[i] = v; break; }
      case DType::I16: { std::int16_t v; std::memcpy(&v, p + 2 * i, 2); out[i] = v; break; }
      case DType::I8: out[i] = static_cast<std::int8_t>(p[i]); break;
      case DType::U8:
      case DType::BOOL: out[i] = p[i]; break;
      default: fail("{}: tensor '{}' is {}, expected an integer dtype", path(), name, dtype_name(t.dtype));
    }
  }
  return out;
}

void SafeTensorsWriter::add_raw(const std::string& name, DType dtype, std::vector<std::int64_t> shape,
                                const void* data) {
  Entry e{dtype, std::move(shape), {}};
  std::int64_t n = 1;
  for (auto d : e.shape) n *= d;
  e.bytes.resize(static_cast<std::size_t>(n) * dtype_size(dtype));
  if (n > 0) std::memcpy(e.bytes.data(), data, e.bytes.size());
  entries_[name] = std::move(e);
}

void SafeTensorsWriter::add_f32(const std::string& name, std::vector<std::int64_t> shape, const float* data) {
  add_raw(name, DType::F32, std::move(shape), data);
}

void SafeTensorsWriter::add_i64(const std::string& name, std::vector<std::int64_t> shape,
                                const std::int64_t* data) {
  add_raw(name, DType::I64, std::move(shape), data);
}

void SafeTensorsWriter::write(const std::string& path) const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  std::size_t offset = 0;
  for (const auto& [name, e] : entries_) {
    header[name] = {{"dtype", dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.bytes.size()}}};
    offset += e.bytes.size();
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');  // keeps tensor data 8-byte aligned

  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("{}: cannot write: {}", tmp, std::strerror(errno));
    const std::uint64_t n = text.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& [name, e] : entries_)
      out.write(reinterpret_cast<const char*>(e.bytes.data()), static_cast<std::streamsize>(e.bytes.size()));
    out.flush();
    if (!out) fail("{}: write failed: {}", tmp, std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail("{}: cannot rename to {}: {}", tmp, path, ec.message());
}

}  // namespace tuneserve
