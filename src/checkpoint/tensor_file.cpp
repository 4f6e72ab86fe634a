// TensorFile for safetensors (an adapter over SafeTensorsReader) and the format dispatch.
#include "checkpoint/tensor_file.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "checkpoint/torch_pickle.h"
#include "core/error.h"
#include "core/json.h"

namespace tuneserve {
namespace {

class SafeTensorsFile : public TensorFile {
 public:
  explicit SafeTensorsFile(const std::string& path) : reader_(path) {}
  const std::string& path() const override { return reader_.path(); }
  const std::vector<TensorInfo>& tensors() const override { return reader_.tensors(); }
  std::vector<float> read_f32(const std::string& name) const override { return reader_.read_f32(name); }
  std::vector<std::uint8_t> read_bytes(const std::string& name) const override {
    const TensorInfo& t = reader_.info(name);
    const std::uint8_t* p = reader_.raw(name);
    return std::vector<std::uint8_t>(p, p + (t.end - t.begin));
  }

 private:
  SafeTensorsReader reader_;
};

}  // namespace

const TensorInfo& TensorFile::info(const std::string& name) const {
  const auto& all = tensors();
  auto it = std::find_if(all.begin(), all.end(), [&](const TensorInfo& t) { return t.name == name; });
  if (it == all.end()) fail("{}: no tensor named '{}'", path(), name);
  return *it;
}

bool TensorFile::contains(const std::string& name) const {
  const auto& all = tensors();
  return std::any_of(all.begin(), all.end(), [&](const TensorInfo& t) { return t.name == name; });
}

std::unique_ptr<TensorFile> open_tensor_file(const std::string& path) {
  if (path.ends_with(".bin") || looks_like_torch_checkpoint(path)) return open_torch_checkpoint(path);
  return std::make_unique<SafeTensorsFile>(path);
}

std::vector<std::string> checkpoint_files(const std::string& dir, bool pytorch_only) {
  namespace fs = std::filesystem;
  const fs::path d(dir);
  for (const char* single : {"model.safetensors", "pytorch_model.bin"}) {
    if (pytorch_only && std::string(single) == "model.safetensors") continue;
    if (fs::exists(d / single)) return {(d / single).string()};
    const fs::path index = d / (std::string(single) + ".index.json");
    if (!fs::exists(index)) continue;
    const nlohmann::json j = read_json_file(index.string());
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      fail("{}: field 'weight_map' is missing or not an object", index.string());
    std::set<std::string> files;
    for (auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) fail("{}: field 'weight_map.{}' must be a file name", index.string(), text_excerpt(name));
      const std::string f = file.get<std::string>();
      // Shards sit beside the index: a path (absolute, "../", "sub/") would let a model read files
      // outside its directory.
      if (f.empty() || f.find('/') != std::string::npos || f.find('\0') != std::string::npos || f == "." || f == "..")
        fail("{}: field 'weight_map.{}' is \"{}\": shards must be file names in the model directory", index.string(),
             text_excerpt(name), text_excerpt(f));
      files.insert(f);
    }
    std::vector<std::string> out;
    for (const auto& f : files) out.push_back((d / f).string());
    return out;
  }
  if (pytorch_only) fail("{}: no pytorch_model.bin or pytorch_model.bin.index.json in this directory", dir);
  fail("{}: no model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json "
       "in this directory",
       dir);
}

}  // namespace tuneserve
