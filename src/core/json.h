// The one JSON parser for everything read from outside (requests, management bodies, config.json,
// tokenizer files, safetensors headers, hyperparameters.json, manifests, JSON Lines records): it
// refuses documents nested deeper than a small limit or larger than the input's size limit before
// they can exhaust the stack or memory, and its errors say where and never quote more than a few
// hundred bytes of the input. nlohmann's parser is iterative, but dump() and every recursive walk
// over a parsed value are not: a bounded depth is what keeps them safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace tuneserve {

// Size limits per kind of input, in bytes: far above what real files hold, far below what would
// exhaust memory (a parsed document takes several times its text).
inline constexpr std::size_t kJsonFileBytes = std::size_t{16} << 20;       // config.json, index, manifests
inline constexpr std::size_t kJsonLargeFileBytes = std::size_t{256} << 20; // tokenizer.json, trainer_state.json
inline constexpr std::size_t kJsonRecordBytes = std::size_t{64} << 20;     // one JSON Lines record

struct JsonLimits {
  std::size_t max_bytes = kJsonFileBytes;
  int max_depth = 64;  // arrays and objects open at once; real inputs nest fewer than 10
};

// What parse_json throws: `where` (a path, "body", "line 3"), what is wrong and the byte offset.
class JsonError : public Error {
 public:
  using Error::Error;
};

// Parses `text` as one JSON document. Throws JsonError "<where>: ..." (no prefix when `where` is
// empty: the caller adds its own) for invalid JSON (also a number too large for a double),
// nesting deeper than max_depth, or more than max_bytes.
nlohmann::json parse_json(std::string_view text, std::string_view where, const JsonLimits& limits = {});

// Reads and parses a JSON file; its size is checked before it is read. Errors name the path.
nlohmann::json read_json_file(const std::string& path, const JsonLimits& limits = {});

// A value for an error message: compact JSON (invalid UTF-8 replaced), cut to max_bytes with
// "..." so a message never carries an unbounded client or file value.
std::string json_excerpt(const nlohmann::json& value, std::size_t max_bytes = 200);

// The same for raw text (a bad header value, a line of a file).
std::string text_excerpt(std::string_view text, std::size_t max_bytes = 200);

}  // namespace tuneserve
