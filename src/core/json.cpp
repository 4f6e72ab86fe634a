// Bounded JSON parsing (see json.h): nlohmann's parser with a callback that refuses depth, and
// error messages cut to a few hundred bytes.
#include "core/json.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace tuneserve {
namespace {

// nlohmann's what() is "[json.exception.parse_error.101] parse error at line 1, column 3: ...;
// last read: '<the token>'": the prefix is noise, and the token may be megabytes long.
std::string reason_of(const nlohmann::json::exception& e) {
  std::string_view what = e.what();
  if (what.starts_with("[json.exception.")) {
    const std::size_t close = what.find("] ");
    if (close != std::string_view::npos) what.remove_prefix(close + 2);
  }
  return text_excerpt(what, 300);
}

std::string size_text(std::size_t bytes) {
  return bytes >= (std::size_t{1} << 20) ? fmt::format("{} MiB", bytes >> 20) : fmt::format("{} bytes", bytes);
}

}  // namespace

nlohmann::json parse_json(std::string_view text, std::string_view where_, const JsonLimits& limits) {
  const std::string where = where_.empty() ? std::string() : std::string(where_) + ": ";
  if (text.size() > limits.max_bytes)
    throw JsonError(fmt::format("{}{} bytes of JSON, over the limit of {}", where, text.size(),
                                size_text(limits.max_bytes)));
  const int max_depth = limits.max_depth;
  // The depth the parser reports for a container's start is the number already open around it.
  const nlohmann::json::parser_callback_t refuse_depth = [&](int depth, nlohmann::json::parse_event_t event,
                                                              nlohmann::json&) {
    if ((event == nlohmann::json::parse_event_t::object_start || event == nlohmann::json::parse_event_t::array_start) &&
        depth >= max_depth)
      throw JsonError(fmt::format("{}JSON nested deeper than {} levels", where, max_depth));
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), refuse_depth);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e999
    throw JsonError(fmt::format("{}invalid JSON: {}", where, reason_of(e)));
  }
}

nlohmann::json read_json_file(const std::string& path, const JsonLimits& limits) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && static_cast<std::size_t>(st.st_size) > limits.max_bytes)
    throw JsonError(fmt::format("{}: {} bytes, over the limit of {} for this JSON file", path,
                                static_cast<std::size_t>(st.st_size), size_text(limits.max_bytes)));
  // Read at most one byte past the limit, so a pipe or a growing file cannot make it unbounded.
  std::string text;
  char chunk[1 << 16];
  while (text.size() <= limits.max_bytes && in.read(chunk, sizeof chunk).gcount() > 0)
    text.append(chunk, static_cast<std::size_t>(in.gcount()));
  if (in.bad()) fail("{}: read failed: {}", path, std::strerror(errno));
  return parse_json(text, path, limits);
}

std::string json_excerpt(const nlohmann::json& value, std::size_t max_bytes) {
  return text_excerpt(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), max_bytes);
}

std::string text_excerpt(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  std::size_t cut = max_bytes;
  // Not inside a UTF-8 sequence: back up over continuation bytes.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return fmt::format("{}... ({} bytes)", text.substr(0, cut), text.size());
}

}  // namespace tuneserve
