#include "checkpoint/safetensors.h"

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

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

SafeTensorsReader::SafeTensorsReader(const std::string& path) : file_(path) {
  const std::size_t size = file_.size();
  if (size < 8) fail("{}: not a safetensors file (only {} bytes)", path, size);
  std::uint64_t header_len;
  std::memcpy(&header_len, file_.data(), 8);
  if (header_len > kMaxHeader || header_len > size - 8)
    fail("{}: not a safetensors file (header length {} does not fit in {} bytes)", path, header_len, size);
  data_start_ = 8 + header_len;
  const std::size_t data_size = size - data_start_;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(file_.data() + 8, file_.data() + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: safetensors header is not valid JSON: {}", path, e.what());
  }
  if (!header.is_object()) fail("{}: safetensors header is not a JSON object", path);

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail("{}: __metadata__ is not an object", path);
      for (auto m = v.begin(); m != v.end(); ++m)
        metadata_[m.key()] = m.value().is_string() ? m.value().get<std::string>() : m.value().dump();
      continue;
    }
    try {
      TensorInfo t;
      t.name = name;
      const std::string dt = v.at("dtype").get<std::string>();
      const std::optional<DType> dtype = dtype_from_name(dt);
      if (!dtype) fail("{}: tensor '{}' has unsupported dtype {}", path, name, dt);
      t.dtype = *dtype;
      for (const auto& d : v.at("shape")) {
        auto dim = d.get<std::int64_t>();
        if (dim < 0) fail("{}: tensor '{}' has a negative dimension", path, name);
        t.shape.push_back(dim);
      }
      const auto& off = v.at("data_offsets");
      if (!off.is_array() || off.size() != 2) fail("{}: tensor '{}': data_offsets must be [begin, end]", path, name);
      t.begin = off[0].get<std::size_t>();
      t.end = off[1].get<std::size_t>();
      if (t.begin > t.end || t.end > data_size)
        fail("{}: tensor '{}': data_offsets [{}, {}] outside the {} data bytes", path, name, t.begin, t.end,
             data_size);
      if (static_cast<std::size_t>(t.numel()) * dtype_size(t.dtype) != t.end - t.begin)
        fail("{}: tensor '{}': {} {} needs {} bytes but data_offsets give {}", path, name, dt,
             shape_string(t.shape), t.numel() * dtype_size(t.dtype), t.end - t.begin);
      index_[name] = tensors_.size();
      tensors_.push_back(std::move(t));
    } catch (const nlohmann::json::exception& e) {
      fail("{}: tensor '{}': malformed entry: {}", path, name, e.what());
    }
  }
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
