// Request decoding and response encoding for the classification routes (see request.h).
//   K labels, k = top_k
#include "serve/request.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <random>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/json.h"

namespace tuneserve::serve {
namespace {

using nlohmann::json;

constexpr const char* kSupportedInput =
    "application/json, text/csv, application/jsonlines, text/plain";
constexpr const char* kSupportedOutput = "application/json, text/csv, application/jsonlines";
// A 413 says how to raise the limit it hit.
constexpr const char* kRaiseInputLimit = " (raise it with --max-client-batch-size or MAX_CLIENT_BATCH_SIZE)";

std::string lower_trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// "type/subtype; params" -> "type/subtype", lower-cased.
std::string media_of(std::string_view value) {
  return lower_trim(value.substr(0, value.find(';')));
}

std::optional<Format> format_of(const std::string& media) {
  if (media == "application/json") return Format::json;
  if (media == "text/csv") return Format::csv;
  if (media == "application/jsonlines" || media == "application/x-jsonlines" ||
      media == "application/jsonl")
    return Format::jsonlines;
  if (media == "text/plain") return Format::text;
  return std::nullopt;
}

const char* json_type(const json& v) { return v.type_name(); }

void check_text(const std::string& text, const std::string& where) {
  if (!valid_utf8(text)) http_fail(400, "validation", "{}: text is not valid UTF-8", where);
}

void check_not_empty(const ParsedInputs& parsed, std::string_view where) {
  for (std::size_t i = 0; i < parsed.inputs.size(); ++i) {
    const TextInput& input = parsed.inputs[i];
    if (input.text.empty() && (!input.text_pair || input.text_pair->empty()))
      http_fail(400, "empty", "{}[{}]: input text is empty", where, i);
  }
}

// The pipeline's parsers fail with tuneserve::Error naming the field; here that is a 400.
template <typename F>
auto client_error(F&& parse) {
  try {
    return parse();
  } catch (const HttpError&) {
    throw;
  } catch (const Error& e) {
    throw HttpError(400, "validation", e.what());
  }
}

// Bounded nesting and size (core/json.h): a deeply nested body is a 400, not a stack overflow.
json parse_body_json(std::string_view text, std::string_view where, const RequestLimits& limits) {
  try {
    return parse_json(text, where, JsonLimits{limits.max_bytes});
  } catch (const JsonError& e) {
    throw HttpError(400, "validation", e.what());
  }
}

ParsedRequest parse_json_request(std::string_view body, const RequestLimits& limits) {
  const json doc = parse_body_json(body, "body", limits);
  if (!doc.is_object())
    http_fail(400, "validation", "body: expected a JSON object with \"inputs\", got {}",
              json_type(doc));
  ParsedRequest request;
  for (const auto& [key, value] : doc.items()) {
    // "options" is what the Hugging Face Inference API clients add (wait_for_model, use_cache);
    // it has no meaning for a dedicated endpoint.
    if (key != "inputs" && key != "parameters" && key != "options")
      http_fail(400, "validation", "body: unknown key \"{}\" (expected \"inputs\", \"parameters\")",
                text_excerpt(key));
  }
  if (!doc.contains("inputs")) http_fail(400, "validation", "body: missing \"inputs\"");
  const json& inputs = doc.at("inputs");
  if (inputs.is_array() && inputs.empty()) http_fail(400, "empty", "inputs: the list is empty");
  if (inputs.is_array() && inputs.size() > limits.max_inputs)
    http_fail(413, "too_many_inputs", "inputs: {} inputs, more than the limit of {}{}",
              inputs.size(), limits.max_inputs, kRaiseInputLimit);
  request.inputs = client_error([&] { return parse_inputs(inputs); });
  check_not_empty(request.inputs, "inputs");
  if (doc.contains("parameters") && !doc.at("parameters").is_null())
    request.options = client_error([&] { return parse_parameters(doc.at("parameters")); });
  return request;
}

// RFC 4180: quoted fields with "" escapes, CRLF or LF line ends.
std::vector<std::vector<std::string>> parse_csv(std::string_view body) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, field_started = false;
  std::size_t line = 1;
  auto end_row = [&] {
    row.push_back(std::move(field));
    field.clear();
    if (!(row.size() == 1 && row[0].empty() && !field_started)) rows.push_back(std::move(row));
    row.clear();
    field_started = false;
  };
  for (std::size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < body.size() && body[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
    } else if (c == '"') {
      if (!field.empty())
        http_fail(400, "validation", "CSV line {}: a quote inside an unquoted field", line);
      quoted = true;
      field_started = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      field_started = true;
    } else if (c == '\r' && i + 1 < body.size() && body[i + 1] == '\n') {
      continue;
    } else if (c == '\n') {
      end_row();
      ++line;
    } else {
      field += c;
      field_started = true;
    }
  }
  if (quoted) http_fail(400, "validation", "CSV line {}: unterminated quoted field", line);
  if (field_started || !field.empty() || !row.empty()) end_row();
  return rows;
}

ParsedRequest parse_csv_request(std::string_view body, const RequestLimits& limits) {
  if (!valid_utf8(body)) http_fail(400, "validation", "CSV body is not valid UTF-8");
  auto rows = parse_csv(body);
  if (rows.empty()) http_fail(400, "empty", "CSV body is empty");
  const auto& header = rows[0];
  auto column = [&](std::string_view name) -> std::optional<std::size_t> {
    for (std::size_t i = 0; i < header.size(); ++i)
      if (lower_trim(header[i]) == name) return i;
    return std::nullopt;
  };
  auto text_col = column("inputs");
  if (!text_col)
    http_fail(400, "validation", "CSV header: no \"inputs\" column (header is \"{}\")",
              text_excerpt(fmt::format("{}", fmt::join(header, ","))));
  auto pair_col = column("text_pair");
  ParsedRequest request;
  request.inputs.shape = CallShape::List;
  if (rows.size() == 1) http_fail(400, "empty", "CSV body has a header but no rows");
  if (rows.size() - 1 > limits.max_inputs)
    http_fail(413, "too_many_inputs", "CSV: {} rows, more than the limit of {}{}", rows.size() - 1,
              limits.max_inputs, kRaiseInputLimit);
  for (std::size_t r = 1; r < rows.size(); ++r) {
    if (rows[r].size() != header.size())
      http_fail(400, "validation", "CSV row {}: {} fields, the header has {}", r + 1,
                rows[r].size(), header.size());
    TextInput input{rows[r][*text_col], std::nullopt};
    if (pair_col) input.text_pair = rows[r][*pair_col];
    if (input.text.empty()) http_fail(400, "empty", "CSV row {}: input text is empty", r + 1);
    request.inputs.inputs.push_back(std::move(input));
  }
  return request;
}

ParsedRequest parse_jsonlines(std::string_view body, const RequestLimits& limits) {
  ParsedRequest request;
  request.inputs.shape = CallShape::List;
  std::size_t line_no = 0;
  while (!body.empty()) {
    ++line_no;
    std::size_t nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    body = nl == std::string_view::npos ? std::string_view{} : body.substr(nl + 1);
    if (lower_trim(line).empty()) continue;
    json v = parse_body_json(line, fmt::format("JSON lines line {}", line_no), limits);
    // A line is one input: "text", {"text", "text_pair"} or {"inputs": either of those}.
    if (v.is_object() && v.contains("inputs")) {
      if (v.size() != 1)
        http_fail(400, "validation", "line {}: expected {{\"inputs\": ...}} and nothing else",
                  line_no);
      v = json(v["inputs"]);
    }
    if (v.is_array())
      http_fail(400, "validation", "line {}: one input per line, not a list", line_no);
    ParsedInputs one = client_error([&] { return parse_inputs(v); });
    check_not_empty(one, fmt::format("line {}", line_no));
    request.inputs.inputs.push_back(std::move(one.inputs.front()));
    if (request.inputs.inputs.size() > limits.max_inputs)
      http_fail(413, "too_many_inputs", "JSON lines: more than the limit of {} inputs{}",
                limits.max_inputs, kRaiseInputLimit);
  }
  if (request.inputs.inputs.empty()) http_fail(400, "empty", "JSON lines body has no lines");
  return request;
}

std::string csv_field(std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string error_body(std::string_view message, std::string_view type) {
  // Messages quote client text; replace invalid UTF-8 rather than throw while reporting. "message"
  // repeats the error for AWS SDK clients (the AWS CLI prints a JSON error body's "message").
  return json{{"error", std::string(message)}, {"error_type", std::string(type)}, {"message", std::string(message)}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
}

Format content_format(std::string_view content_type) {
  const std::string media = media_of(content_type);
  if (media.empty()) return Format::json;
  if (auto f = format_of(media)) return *f;
  http_fail(415, "unsupported_media_type", "Content-Type \"{}\" is not supported; use one of {}",
            media, kSupportedInput);
}

Format accept_format(std::string_view accept, Format any) {
  if (lower_trim(accept).empty()) return any;
  std::string_view rest = accept;
  while (!rest.empty()) {
    std::size_t comma = rest.find(',');
    std::string_view entry = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    // An entry with q=0 means "not this one".
    const std::string lowered = lower_trim(entry);
    if (lowered.find("q=0") != std::string::npos && lowered.find("q=0.") == std::string::npos)
      continue;
    const std::string media = media_of(entry);
    if (media == "*/*") return any;
    if (media == "application/*") return any == Format::csv ? Format::json : any;
    if (media == "text/*") return Format::csv;
    if (auto f = format_of(media); f && *f != Format::text) return *f;
  }
  http_fail(406, "not_acceptable", "Accept \"{}\" names no supported type; use one of {}", accept,
            kSupportedOutput);
}

std::string request_id(std::string_view client) {
  const bool sane = !client.empty() && client.size() <= 128 &&
                    std::all_of(client.begin(), client.end(), [](char c) {
                      return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ':';
                    });
  if (sane) return std::string(client);
  thread_local std::mt19937_64 random(std::random_device{}());
  return fmt::format("{:016x}{:016x}", random(), random());
}

const char* media_type(Format format) {
  switch (format) {
    case Format::json: return "application/json";
    case Format::csv: return "text/csv";
    case Format::jsonlines: return "application/jsonlines";
    case Format::text: return "text/plain";
  }
  return "application/json";
}

ParsedRequest parse_request(Format format, std::string_view body, const RequestLimits& limits) {
  switch (format) {
    case Format::json: return parse_json_request(body, limits);
    case Format::csv: return parse_csv_request(body, limits);
    case Format::jsonlines: return parse_jsonlines(body, limits);
    case Format::text: {
      ParsedRequest request;
      request.inputs.shape = CallShape::Text;
      std::string text(body);
      check_text(text, "body");
      if (lower_trim(text).empty()) http_fail(400, "empty", "body: input text is empty");
      request.inputs.inputs.push_back({std::move(text), std::nullopt});
      return request;
    }
  }
  http_fail(415, "unsupported_media_type", "unsupported content type");
}

void check_options(const CallOptions& options, const ModelInfo& info) {
  const auto& max_length = options.tokenize.max_length;
  if (max_length && (*max_length < 2 || *max_length > info.max_input_length))
    http_fail(400, "validation", "parameters.max_length: {} is outside 2..{} (the model's limit)",
              *max_length, info.max_input_length);
}

TopK effective_top_k(const CallOptions& options, Shape shape) {
  const TopK& top_k = options.postprocess.top_k;
  if (shape == Shape::inference_api && top_k.kind == TopK::Kind::Unset) return TopK::all();
  return top_k;
}

std::string encode_response(const ParsedRequest& request,
                            const std::vector<std::vector<LabelScore>>& results, Shape shape,
                            Format format) {
  const TopK top_k = effective_top_k(request.options, shape);
  if (format == Format::csv) {
    std::string out = "input,label,score\n";
    for (std::size_t i = 0; i < results.size(); ++i)
      for (const auto& s : results[i])
        out += fmt::format("{},{},{}\n", i, csv_field(s.label), python_float_repr(s.score));
    return out;
  }
  if (format == Format::jsonlines) {
    std::string out;
    for (const auto& r : results) out += python_json(result_json(r, top_k)) + "\n";
    return out;
  }
  if (shape == Shape::pipeline)
    return python_json(call_json(results, request.inputs.shape, top_k));
  json out = json::array();
  for (const auto& r : results) out.push_back(result_json(r, top_k));
  return python_json(out);
}

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    std::uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
      return false;
    i += len;
  }
  return true;
}

}  // namespace tuneserve::serve
