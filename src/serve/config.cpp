// The settings table of `tuneserve serve` (see config.h).
#include "serve/config.h"

#include <charconv>

#include <nlohmann/json.hpp>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/json.h"

namespace tuneserve::serve {
namespace {

long long to_int(const std::string& value, long long min, long long max) {
  long long n = 0;
  const char* end = value.data() + value.size();
  auto [p, ec] = std::from_chars(value.data(), end, n);
  if (ec != std::errc() || p != end || n < min || n > max)
    fail("expected an integer in {}..{}, got \"{}\"", min, max, text_excerpt(value));
  return n;
}

double to_number(const std::string& value, double min, double max) {
  std::size_t used = 0;
  double d = 0;
  try {
    d = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || !(d >= min && d <= max))
    fail("expected a number in {}..{}, got \"{}\"", min, max, text_excerpt(value));
  return d;
}

bool to_bool(const std::string& value) {
  if (value == "true" || value == "1" || value == "yes") return true;
  if (value == "false" || value == "0" || value == "no") return false;
  fail("expected true or false, got \"{}\"", text_excerpt(value));
}

std::chrono::milliseconds seconds(const std::string& value) {
  return std::chrono::milliseconds(static_cast<long long>(to_number(value, 0.001, 86400) * 1000));
}

using O = ServeOptions;
using S = const std::string&;

}  // namespace

const std::vector<Setting>& serve_settings() {
  static const std::vector<Setting> settings = {
      {"model", {"HF_MODEL_DIR", "HF_MODEL_ID"},
       "model: directory, Hub id, s3:// URI or model.tar.gz (default: /opt/ml/model when it exists)",
       [](O& o, S v) { o.model = v; }},
      {"tokenizer", {}, "tokenizer directory or Hub id (default: the model's)",
       [](O& o, S v) { o.tokenizer = v; }},
      {"revision", {"HF_MODEL_REVISION"}, "Hub branch, tag or commit of the model and tokenizer",
       [](O& o, S v) { o.revision = v; }},
      {"model_name", {}, "name the model is served under (/predictions/NAME)",
       [](O& o, S v) { o.model_name = v; }},
      {"task", {"HF_TASK"}, "pipeline task: text-classification (sentiment-analysis is an alias)",
       [](O& o, S v) {
         if (v != "text-classification" && v != "sentiment-analysis")
           fail("only text-classification (or sentiment-analysis) is served, not \"{}\"", v);
         o.task = v;
       }},
      {"host", {}, "address to listen on", [](O& o, S v) { o.server.host = v; }},
      {"port", {"SAGEMAKER_BIND_TO_PORT", "PORT"}, "port (0: any free port, printed at start)",
       [](O& o, S v) { o.server.port = static_cast<int>(to_int(v, 0, 65535)); }},
      {"workers", {"SAGEMAKER_MODEL_SERVER_WORKERS"},
       "concurrent forward passes per model (default: the CPUs the container may use, as many as memory holds)",
       [](O& o, S v) {
         o.batch.workers = static_cast<int>(to_int(v, 1, 256));
         o.workers_given = true;
       }},
      {"threads", {}, "OpenMP threads per forward pass (0: cores / workers)",
       [](O& o, S v) { o.threads = static_cast<int>(to_int(v, 0, 1024)); }},
      {"device", {"TUNESERVE_DEVICE"}, "where the model runs: cpu | cuda | cuda:N (default cpu)",
       [](O& o, S v) { o.device = parse_device(v).str(); }},
      {"dtype", {"TUNESERVE_DTYPE"},
       "what the matrix products compute in: fp32 | bf16 (bf16 weights, fp32 accumulation; CPU: AVX512-BF16)",
       [](O& o, S v) { o.dtype = compute_dtype_name(parse_compute_dtype(v)); }},
      {"weight_check", {}, "refuse a model whose weights hold NaN or Inf (default true)",
       [](O& o, S v) { o.weight_check = to_bool(v); }},
      {"job_queue_size", {"MAX_CONCURRENT_REQUESTS"},
       "requests admitted per model at once; more get 503 + Retry-After",
       [](O& o, S v) { o.batch.queue_size = static_cast<std::size_t>(to_int(v, 1, 1'000'000)); }},
      {"response_timeout", {"SAGEMAKER_MODEL_SERVER_TIMEOUT"},
       "seconds until a request is answered 504 and its work dropped",
       [](O& o, S v) { o.server.response_timeout = seconds(v); }},
      {"max_payload_mb", {"SAGEMAKER_MAX_PAYLOAD_IN_MB"}, "largest request body in MB (413 above)",
       [](O& o, S v) {
         o.server.max_payload_bytes = static_cast<std::size_t>(to_number(v, 0.001, 4096) * 1024 * 1024);
       }},
      // After max_payload_mb: as in SageMaker's model servers, the size in bytes wins over the one in MB.
      {"max_request_size", {"SAGEMAKER_MAX_REQUEST_SIZE"}, "largest request body in bytes (wins over max_payload_mb)",
       [](O& o, S v) { o.server.max_payload_bytes = static_cast<std::size_t>(to_int(v, 1, 4096LL * 1024 * 1024)); }},
      {"default_accept", {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"},
       "response type when a request has no Accept or */*: application/json | text/csv | application/jsonlines",
       [](O& o, S v) {
         if (v.find_first_of("*,") != std::string::npos) fail("expected one media type, got \"{}\"", text_excerpt(v));
         try {
           o.server.default_accept = accept_format(v);
         } catch (const HttpError& e) {
           fail("{}", e.what());
         }
       }},
      {"max_batch_tokens", {"MAX_BATCH_TOKENS"}, "real tokens per forward pass (batches are packed, unpadded)",
       [](O& o, S v) { o.batch.max_batch_tokens = static_cast<std::size_t>(to_int(v, 1, 10'000'000)); }},
      {"max_batch_requests", {"MAX_BATCH_REQUESTS"}, "requests per forward pass (1: no batching)",
       [](O& o, S v) { o.batch.max_batch_requests = static_cast<std::size_t>(to_int(v, 1, 100'000)); }},
      {"max_batch_delay_ms", {"MAX_BATCH_DELAY_MS"},
       "longest wait for a batch to fill, in ms (it goes earlier once the clients the last batch answered are back)",
       [](O& o, S v) {
         o.batch.max_batch_delay = std::chrono::microseconds(static_cast<long long>(to_number(v, 0, 60'000) * 1000));
       }},
      {"max_client_batch_size", {"MAX_CLIENT_BATCH_SIZE"}, "inputs in one request (413 above)",
       [](O& o, S v) { o.server.limits.max_inputs = static_cast<std::size_t>(to_int(v, 1, 100'000)); }},
      {"io_threads", {}, "HTTP I/O threads", [](O& o, S v) { o.server.io_threads = static_cast<int>(to_int(v, 1, 256)); }},
      {"request_threads", {"TOKENIZATION_WORKERS"}, "decode + tokenize threads (0: one per core)",
       [](O& o, S v) { o.server.request_threads = static_cast<int>(to_int(v, 0, 1024)); }},
      {"max_connections", {}, "open connections; more get 503",
       [](O& o, S v) { o.server.max_connections = static_cast<std::size_t>(to_int(v, 1, 1'000'000)); }},
      {"max_header_kb", {}, "largest request header in KB (431 above)",
       [](O& o, S v) { o.server.max_header_bytes = static_cast<std::size_t>(to_int(v, 1, 1024)) * 1024; }},
      {"idle_timeout", {}, "seconds a connection may wait between requests or send a header",
       [](O& o, S v) { o.server.idle_timeout = seconds(v); }},
      {"read_timeout", {}, "seconds a client has to send a body or read an answer",
       [](O& o, S v) { o.server.read_timeout = seconds(v); }},
      {"api_key", {"API_KEY"}, "require Authorization: Bearer KEY (all but /ping, /health)",
       [](O& o, S v) { o.server.api_key = v; }},
      {"sigv4_credentials", {"SIGV4_CREDENTIALS"},
       "ACCESS_KEY_ID:SECRET: require AWS SigV4 signatures made with them (the AWS CLI), checked locally",
       [](O& o, S v) { o.server.sigv4 = parse_sigv4_credentials(v); }},
      {"management_port", {}, "port of the management API (off unless given; 0: any free port)",
       [](O& o, S v) { o.server.management_port = static_cast<int>(to_int(v, 0, 65535)); }},
      {"model_store", {}, "directory the management API loads models from",
       [](O& o, S v) { o.server.model_store = v; }},
      {"handler", {"TUNESERVE_HANDLER"},
       "handler plugin: a shared library with the tuneserve_handler.h hooks (default: the one *.so in "
       "the model's code/ folder)",
       [](O& o, S v) { o.handler = v; }},
  };
  return settings;
}

std::string flag_of(const Setting& setting) {
  std::string flag = "--" + setting.name;
  for (char& c : flag)
    if (c == '_') c = '-';
  return flag;
}

void apply_setting(ServeOptions& options, const Setting& setting, const std::string& value,
                   const std::string& where) {
  try {
    setting.set(options, value);
  } catch (const Error& e) {
    fail("{}: {}", where, e.what());
  }
}

void apply_config_file(ServeOptions& options, const std::string& path) {
  const nlohmann::json doc = read_json_file(path);
  if (!doc.is_object()) fail("{}: expected a JSON object of settings", path);
  for (const auto& [key, value] : doc.items()) {
    const Setting* setting = nullptr;
    for (const auto& s : serve_settings())
      if (s.name == key) setting = &s;
    if (!setting) fail("{}: unknown setting \"{}\"", path, text_excerpt(key));
    if (!value.is_string() && !value.is_number() && !value.is_boolean())
      fail("{}: {}: expected a string or a number, got {}", path, key, value.type_name());
    apply_setting(options, *setting, value.is_string() ? value.get<std::string>() : value.dump(),
                  fmt::format("{}: {}", path, key));
  }
}

void apply_environment(ServeOptions& options,
                       const std::function<const char*(const char*)>& getenv) {
  for (const auto& setting : serve_settings())
    for (const auto& name : setting.env)
      if (const char* value = getenv(name.c_str()); value && *value) {
        apply_setting(options, setting, value, "environment " + name);
        break;
      }
}

}  // namespace tuneserve::serve
