// Request bodies in, response bodies out: decoding JSON / CSV / JSON lines / plain text into
// classification inputs and parameters (pipeline/pipeline.h's types and JSON parsing), and encoding
// scores as each client expects them. Pure functions (no I/O): the fuzzer drives them directly.
//   K labels, k = top_k
#pragma once

#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "pipeline/pipeline.h"
#include "serve/backend.h"

namespace tuneserve::serve {

// A failure the client caused (or an overload/timeout): becomes {"error","error_type"} with
// this HTTP status. error_type is one word: validation, empty, too_many_inputs, too_long,
// payload_too_large, unsupported_media_type, not_acceptable, not_found, unauthorized,
// overloaded, timeout, unhealthy, internal.
class HttpError : public std::runtime_error {
 public:
  HttpError(int status, std::string type, std::string message)
      : std::runtime_error(std::move(message)), status(status), type(std::move(type)) {}
  int status;
  std::string type;
};

template <typename... Args>
[[noreturn]] void http_fail(int status, const char* type, fmt::format_string<Args...> format,
                            Args&&... args) {
  throw HttpError(status, type, fmt::format(format, std::forward<Args>(args)...));
}

// {"error": message, "error_type": type, "message": message} ("message" for AWS SDK clients).
std::string error_body(std::string_view message, std::string_view type);

enum class Format { json, csv, jsonlines, text };

// Media type of a Content-Type header ("application/json; charset=utf-8" -> json); 415 naming
// the supported ones otherwise. An absent header means JSON.
Format content_format(std::string_view content_type);
// Picks the response format from an Accept header (first supported entry); an absent header or
// */* gets `any` (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, default JSON); 406 naming the supported
// ones otherwise.
Format accept_format(std::string_view accept, Format any = Format::json);

// The id of a request, echoed in X-Request-Id and the access log: the client's own when it is sane
// (1 to 128 characters of A-Z a-z 0-9 - _ . :), else 32 random hex digits.
std::string request_id(std::string_view client);
const char* media_type(Format format);

// The shape of the answer. pipeline: what transformers' text-classification pipeline returns
// (SageMaker Hugging Face toolkit, /invocations); inference_api: the Hugging Face Inference API,
// one list per input with every label sorted unless top_k says otherwise (what
// @huggingface/inference accepts, POST /).
enum class Shape { pipeline, inference_api };

struct ParsedRequest {
  ParsedInputs inputs;  // the texts and the call's shape (string, {text, text_pair}, list)
  CallOptions options;  // parameters: top_k, function_to_apply, truncation, max_length
};

struct RequestLimits {
  std::size_t max_inputs = 32;  // max_client_batch_size
  std::size_t max_bytes = 6 * 1024 * 1024;  // largest JSON document decoded (the payload limit)
};

// Throws HttpError (400 validation/empty, 413 too_many_inputs) on anything malformed: bad JSON
// (also nested deeper than core/json.h allows), wrong types, unknown keys or parameters, invalid UTF-8, empty or too many inputs.
// CSV (header "inputs", optional "text_pair") and JSON lines give a list; text/plain one string.
ParsedRequest parse_request(Format format, std::string_view body, const RequestLimits& limits);

// Validates parameters that depend on the model (max_length within the model's limit).
void check_options(const CallOptions& options, const ModelInfo& info);

// The top_k an answer of this shape uses: the Inference API lists every label when none is given.
TopK effective_top_k(const CallOptions& options, Shape shape);

// Encodes one result list per input (each from tuneserve::postprocess with effective_top_k) as
// Python's json.dumps prints the pipeline's return value. CSV has columns input,label,score
// (input = index in the request); JSON lines has one line per input.
std::string encode_response(const ParsedRequest& request,
                            const std::vector<std::vector<LabelScore>>& results, Shape shape,
                            Format format);

bool valid_utf8(std::string_view text);

}  // namespace tuneserve::serve
