// The configuration files around a tokenizer (tokenizer_config.json, special_tokens_map.json,
// config.json) and the checked JSON readers every tokenizer loader uses; errors name the file and
// the field.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/added_tokens.h"

namespace tuneserve::tok {

nlohmann::json read_json(const std::filesystem::path& path);
bool get_bool(const nlohmann::json& obj, const char* key, bool fallback, const std::string& where);
std::int32_t get_id(const nlohmann::json& value, const std::string& where);
// An added-token object {"content", "single_word", "lstrip", "rstrip", "normalized", "special"}
// (no id).
AddedToken parse_added_token(const nlohmann::json& t, const std::string& where);

// Special-token names the files give (special_tokens_map.json, then tokenizer_config.json).
struct SpecialNames {
  std::optional<std::string> pad, cls, sep, unk, mask, bos, eos;
};

struct DirConfig {
  std::filesystem::path dir;
  nlohmann::json config = nlohmann::json::object();  // tokenizer_config.json or {}
  SpecialNames names;
  std::optional<std::size_t> model_max_length;
  std::string tokenizer_class;  // tokenizer_config.json's, without "Fast"; else from config.json
  std::string model_type;       // config.json's model_type, when the directory has one
  // tokenizer_config.json's added_tokens_decoder: {"id": {...}} -> added tokens with ids.
  std::vector<AddedToken> added_tokens_decoder() const;
  std::string config_path() const { return (dir / "tokenizer_config.json").string(); }
};

DirConfig read_dir_config(const std::filesystem::path& dir);

}  // namespace tuneserve::tok
