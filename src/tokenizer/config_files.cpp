// Tokenizer configuration files (see config_files.h).
#include "tokenizer/config_files.h"

#include "core/error.h"
#include "core/json.h"

namespace tuneserve::tok {

namespace fs = std::filesystem;
using json = nlohmann::json;

json read_json(const fs::path& path) {
  // tokenizer.json files run to tens of MB (large vocabularies); they are still bounded.
  return read_json_file(path.string(), JsonLimits{kJsonLargeFileBytes, 64});
}

bool get_bool(const json& obj, const char* key, bool fallback, const std::string& where) {
  if (!obj.contains(key) || obj[key].is_null()) return fallback;
  if (!obj[key].is_boolean()) fail("{}: field \"{}\" must be true or false", where, key);
  return obj[key].get<bool>();
}

std::int32_t get_id(const json& value, const std::string& where) {
  if (!value.is_number_integer()) fail("{}: must be an integer id", where);
  const auto id = value.get<std::int64_t>();
  if (id < 0 || id > 0x7FFFFFFF) fail("{}: id {} out of range", where, id);
  return static_cast<std::int32_t>(id);
}

AddedToken parse_added_token(const json& t, const std::string& where) {
  if (!t.is_object()) fail("{}: expected an object", where);
  AddedToken token;
  if (!t.contains("content") || !t["content"].is_string()) fail("{}: missing string \"content\"", where);
  token.content = t["content"].get<std::string>();
  token.single_word = get_bool(t, "single_word", false, where);
  token.lstrip = get_bool(t, "lstrip", false, where);
  token.rstrip = get_bool(t, "rstrip", false, where);
  token.special = get_bool(t, "special", false, where);
  token.normalized = get_bool(t, "normalized", !token.special, where);
  return token;
}

namespace {

// A token name in tokenizer_config.json / special_tokens_map.json: "x" or {"content": "x", ...}.
std::optional<std::string> token_name(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string())
    return value["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

std::vector<AddedToken> DirConfig::added_tokens_decoder() const {
  std::vector<AddedToken> out;
  if (!config.contains("added_tokens_decoder") || !config["added_tokens_decoder"].is_object()) return out;
  for (const auto& [key, value] : config["added_tokens_decoder"].items()) {
    const std::string where = fmt::format("{}: added_tokens_decoder[\"{}\"]", config_path(), key);
    AddedToken token = parse_added_token(value, where);
    try {
      std::size_t used = 0;
      const long id = std::stol(key, &used);
      if (used != key.size() || id < 0 || id > 0x7FFFFFFF) throw std::invalid_argument(key);
      token.id = static_cast<std::int32_t>(id);
    } catch (const std::exception&) {
      fail("{}: key is not an id", where);
    }
    out.push_back(std::move(token));
  }
  return out;
}

DirConfig read_dir_config(const fs::path& dir) {
  DirConfig out;
  out.dir = dir;
  const fs::path config_path = dir / "tokenizer_config.json";
  if (fs::exists(config_path)) {
    out.config = read_json(config_path);
    if (!out.config.is_object()) fail("{}: expected a JSON object", config_path.string());
  }
  const fs::path map_path = dir / "special_tokens_map.json";
  json map = json::object();
  if (fs::exists(map_path)) {
    map = read_json(map_path);
    if (!map.is_object()) fail("{}: expected a JSON object", map_path.string());
  }
  auto resolve = [&](const char* key, std::optional<std::string>& name) {
    for (const json* source : {&map, &out.config})
      if (source->contains(key))
        if (auto value = token_name((*source)[key])) {
          name = *value;
          return;
        }
  };
  resolve("pad_token", out.names.pad);
  resolve("cls_token", out.names.cls);
  resolve("sep_token", out.names.sep);
  resolve("unk_token", out.names.unk);
  resolve("mask_token", out.names.mask);
  resolve("bos_token", out.names.bos);
  resolve("eos_token", out.names.eos);
  if (out.config.contains("model_max_length") && out.config["model_max_length"].is_number()) {
    const double v = out.config["model_max_length"].get<double>();
    // transformers writes int(1e30) when a model has no limit.
    if (v >= 1 && v < 1e9) out.model_max_length = static_cast<std::size_t>(v);
  }
  if (out.config.contains("tokenizer_class") && out.config["tokenizer_class"].is_string()) {
    out.tokenizer_class = out.config["tokenizer_class"].get<std::string>();
    if (out.tokenizer_class.size() > 4 && out.tokenizer_class.ends_with("Fast"))
      out.tokenizer_class.resize(out.tokenizer_class.size() - 4);
  }
  // A model directory's config.json says which family the tokenizer belongs to.
  const fs::path model_config = dir / "config.json";
  if (fs::exists(model_config)) {
    const json c = read_json(model_config);
    if (c.is_object() && c.contains("model_type") && c["model_type"].is_string())
      out.model_type = c["model_type"].get<std::string>();
  }
  return out;
}

}  // namespace tuneserve::tok
