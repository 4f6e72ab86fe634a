// What each route of the server does (server.cpp routes to these): health and info pages, the
// inference routes (decode -> tokenize on the request pool -> the model's batcher -> postprocess ->
// encode), /tokenize, and the management API (list, load, scale, unload models).
#include <filesystem>
#include <future>

#include "core/json.h"
#include "serve/server_internal.h"

namespace tuneserve::serve {
namespace {

bool valid_model_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return false;
  return name != "." && name != "..";
}

// A pass's OpenMP threads, or null where the backend does not know them.
json threads_json(const Backend& backend) {
  const int n = backend.threads();
  return n > 0 ? json(n) : json(nullptr);
}

json model_json(const Model& model) {
  const ModelInfo& info = model.backend->info();
  return json{{"name", model.name},
              {"version", model.version},
              {"model_id", info.id},
              {"model_type", info.model_type},
              {"labels", info.labels.id2label},
              {"max_input_length", info.max_input_length},
              {"device", info.device},
              {"dtype", info.dtype},
              {"workers", model.batcher->workers()},
              {"threads_per_worker", threads_json(*model.backend)},
              {"queued", model.batcher->admitted()},
              {"load_seconds", model.load_seconds}};
}

}  // namespace

std::shared_ptr<Model> Server::Impl::model_for(const std::string& name, bool must_exist) const {
  if (!name.empty()) {
    if (auto model = models.find(name)) return model;
    if (must_exist) http_fail(404, "not_found", "unknown model \"{}\"", text_excerpt(name));
  }
  auto model = models.default_model();
  if (!model) http_fail(503, "unhealthy", "no model is loaded");
  return model;
}

// ---- the main port's routes (server.cpp's table) ----

void Server::Impl::health(Request&, const std::shared_ptr<Exchange>& ex, const std::vector<std::string>&) {
  if (!models.ready()) http_fail(503, "unhealthy", "the model is not loaded yet");
  finish(*ex, Reply{200, R"({"status":"healthy"})"});
}

void Server::Impl::metrics_page(Request&, const std::shared_ptr<Exchange>& ex, const std::vector<std::string>&) {
  finish(*ex, Reply{200, metrics.render(), "text/plain; version=0.0.4"});
}

void Server::Impl::info_page(Request&, const std::shared_ptr<Exchange>& ex, const std::vector<std::string>&) {
  finish(*ex, info());
}

void Server::Impl::tokenize_route(Request& req, const std::shared_ptr<Exchange>& ex, const std::vector<std::string>&) {
  tokenize(req, ex);
}

void Server::Impl::inference_api(Request& req, const std::shared_ptr<Exchange>& ex, const std::vector<std::string>&) {
  inference(req, ex, model_for("", false), Shape::inference_api);
}

void Server::Impl::invocations(Request& req, const std::shared_ptr<Exchange>& ex, const std::vector<std::string>&) {
  // SageMaker multi-model endpoints name the model in this header.
  const std::string target_model = header(req, "X-Amzn-SageMaker-Target-Model");
  inference(req, ex, model_for(target_model, !target_model.empty()), Shape::pipeline);
}

void Server::Impl::endpoint_invocations(Request& req, const std::shared_ptr<Exchange>& ex,
                                        const std::vector<std::string>& parts) {
  // The endpoint is this server whatever its name; a model of that name is picked if loaded.
  inference(req, ex, model_for(parts[1], false), Shape::pipeline);
}

void Server::Impl::predictions(Request& req, const std::shared_ptr<Exchange>& ex,
                               const std::vector<std::string>& parts) {
  inference(req, ex, model_for(parts[1], true), Shape::pipeline);
}

Reply Server::Impl::info() const {
  const auto& batch = models.defaults();
  json out{{"version", TUNESERVE_VERSION},
           {"max_batch_tokens", batch.max_batch_tokens},
           {"max_batch_requests", batch.max_batch_requests},
           {"max_batch_delay_ms", batch.max_batch_delay.count() / 1000.0},
           {"max_client_batch_size", config.limits.max_inputs},
           {"job_queue_size", batch.queue_size},
           {"max_payload_bytes", config.max_payload_bytes},
           {"response_timeout_ms", config.response_timeout.count()},
           {"models", json::array()}};
  if (auto model = models.default_model()) {
    const ModelInfo& info = model->backend->info();
    out["model_id"] = info.id;
    out["model_type"] = info.model_type;
    out["labels"] = info.labels.id2label;
    out["max_input_length"] = info.max_input_length;
    out["device"] = info.device;
    out["dtype"] = info.dtype;
    out["workers"] = model->batcher->workers();
    out["threads_per_worker"] = threads_json(*model->backend);
  }
  for (const auto& model : models.list()) out["models"].push_back(model_json(*model));
  return Reply{200, out.dump()};
}

void Server::Impl::answer_on_pool(const std::shared_ptr<Exchange>& ex, std::function<Reply()> work) {
  asio::post(*pool, [this, ex, work = std::move(work)] {
    if (ex->cancelled->load()) return;
    try {
      finish(*ex, work());
    } catch (...) {
      finish(*ex, current_exception_reply(Blame::Request));
    }
  });
}

namespace {

// Holds one of a model's job-queue places until the request's work is gone.
struct Admission {
  explicit Admission(std::shared_ptr<Model> m) : model(std::move(m)) {}
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;
  ~Admission() { model->batcher->release(); }
  std::shared_ptr<Model> model;
};

std::vector<Encoding> tokenize_all(const Backend& backend, const ParsedRequest& request) {
  const ModelInfo& info = backend.info();
  check_options(request.options, info);
  std::vector<Encoding> encodings;
  encodings.reserve(request.inputs.inputs.size());
  for (std::size_t i = 0; i < request.inputs.inputs.size(); ++i) {
    try {
      encodings.push_back(backend.tokenize(request.inputs.inputs[i], request.options.tokenize));
    } catch (const InputTooLongError& e) {
      http_fail(422, "too_long", "inputs[{}]: {}", i, e.what());
    }
  }
  return encodings;
}

// Each input's labels and scores from the batcher's (inputs, K) logits.
std::vector<std::vector<LabelScore>> postprocess_all(std::span<const float> logits, std::size_t n,
                                                     const LabelInfo& labels,
                                                     const CallOptions& request_options,
                                                     Shape shape) {
  const std::size_t K = logits.size() / n;
  PostprocessOptions options = request_options.postprocess;
  options.top_k = effective_top_k(request_options, shape);
  std::vector<std::vector<LabelScore>> results;
  for (std::size_t i = 0; i < n; ++i)
    results.push_back(tuneserve::postprocess(logits.subspan(i * K, K), labels, options));
  return results;
}

// What a handler's tuneserve_model runs: requests through the model's own batcher, waited for on
// this pool thread (the batcher's workers run the forward pass, so the wait never waits on itself).
ModelAccess model_access(const std::shared_ptr<Model>& model, const RequestLimits& limits,
                         const std::shared_ptr<std::atomic<bool>>& cancelled) {
  struct Run {
    ParsedRequest request;
    std::vector<float> logits;  // (inputs, K)
  };
  auto run = [model, limits, cancelled](const std::string& request_json) {
    Run r{parse_request(Format::json, request_json, limits), {}};
    Job job;
    job.encodings = tokenize_all(*model->backend, r.request);
    job.cancelled = cancelled;
    auto promise = std::make_shared<std::promise<std::vector<float>>>();
    std::future<std::vector<float>> result = promise->get_future();
    job.done = [promise](std::vector<float> logits, std::exception_ptr error) {
      if (error) promise->set_exception(error);
      else promise->set_value(std::move(logits));
    };
    model->batcher->push(std::move(job));
    r.logits = result.get();
    if (r.logits.empty()) http_fail(503, "cancelled", "the request was cancelled while the model ran");
    return r;
  };
  ModelAccess access;
  access.logits = [model, run](const std::string& request_json) {
    const Run r = run(request_json);
    const std::size_t n = r.request.inputs.inputs.size(), K = r.logits.size() / n;
    json rows = json::array();
    for (std::size_t i = 0; i < n; ++i)
      rows.push_back(std::vector<float>(r.logits.begin() + static_cast<std::ptrdiff_t>(i * K),
                                        r.logits.begin() + static_cast<std::ptrdiff_t>((i + 1) * K)));
    return json{{"labels", model->backend->info().labels.id2label}, {"logits", std::move(rows)}}.dump();
  };
  access.predict = [model, run](const std::string& request_json) {
    const Run r = run(request_json);
    const auto results = postprocess_all(r.logits, r.request.inputs.inputs.size(),
                                         model->backend->info().labels, r.request.options, Shape::pipeline);
    return encode_response(r.request, results, Shape::pipeline, Format::json);
  };
  return access;
}

}  // namespace

void Server::Impl::inference(Request& req, const std::shared_ptr<Exchange>& ex,
                             std::shared_ptr<Model> model, Shape shape) {
  const std::string content_type = header(req, "Content-Type");
  const std::string accept = header(req, "Accept");
  const std::shared_ptr<HandlerPlugin> handler = config.handler;
  const bool custom_in = handler && (handler->has_input() || handler->has_transform());
  const bool custom_out = handler && (handler->has_output() || handler->has_transform());
  const Format in = custom_in ? Format::json : content_format(content_type);
  const Format out = custom_out ? Format::json : accept_format(accept, config.default_accept);
  if (!model->batcher->try_admit())
    http_fail(503, "overloaded", "model {}: the job queue is full ({} requests); retry later",
              model->name, model->batcher->config().queue_size);
  auto admission = std::make_shared<Admission>(model);

  asio::post(*pool, [this, ex, model, admission, shape, in, out, handler, content_type, accept,
                     body = std::move(req.body())]() mutable {
    try {
      if (ex->cancelled->load()) return;
      if (handler && handler->has_transform()) {
        auto result = handler->transform(model_access(model, config.limits, ex->cancelled), body, content_type, accept);
        finish(*ex, Reply{200, std::move(result.body), std::move(result.content_type)});
        return;
      }
      const auto start = Clock::now();
      if (handler && handler->has_predict()) {
        std::string request_json = handler->has_input() ? handler->input(body, content_type) : body;
        if (!handler->has_input() && in != Format::json)
          http_fail(415, "unsupported_media_type",
                    "this handler's predict_fn takes application/json (it has no input_fn)");
        std::string prediction = handler->predict(model_access(model, config.limits, ex->cancelled), request_json);
        if (handler->has_output()) {
          auto result = handler->output(prediction, accept);
          finish(*ex, Reply{200, std::move(result.body), std::move(result.content_type)});
        } else {
          finish(*ex, Reply{200, std::move(prediction)});
        }
        return;
      }
      auto request = std::make_shared<ParsedRequest>(parse_request(
          in, handler && handler->has_input() ? handler->input(body, content_type) : body,
          config.limits));
      body.clear();
      Job job;
      job.encodings = tokenize_all(*model->backend, *request);
      job.cancelled = ex->cancelled;
      metrics.observe("tuneserve_tokenize_duration_seconds", {{"model", model->name}},
                      std::chrono::duration<double>(Clock::now() - start).count());
      job.done = [this, ex, model, admission, request, shape, out, handler, accept](
                     std::vector<float> logits, std::exception_ptr error) {
        if (!error && logits.empty()) return;  // dropped: the client left or timed out
        try {
          if (error) std::rethrow_exception(error);
          const auto results = postprocess_all(logits, request->inputs.inputs.size(),
                                               model->backend->info().labels, request->options, shape);
          if (handler && handler->has_output()) {
            auto result = handler->output(
                encode_response(*request, results, Shape::pipeline, Format::json), accept);
            finish(*ex, Reply{200, std::move(result.body), std::move(result.content_type)});
          } else {
            finish(*ex, Reply{200, encode_response(*request, results, shape, out),
                              media_type(out)});
          }
        } catch (...) {
          finish(*ex, current_exception_reply(Blame::Backend));
        }
      };
      model->batcher->push(std::move(job));
    } catch (...) {
      finish(*ex, current_exception_reply(Blame::Request));
    }
  });
}

void Server::Impl::tokenize(Request& req, const std::shared_ptr<Exchange>& ex) {
  auto model = model_for(header(req, "X-Amzn-SageMaker-Target-Model"), false);
  const Format in = content_format(header(req, "Content-Type"));
  if (!model->batcher->try_admit())
    http_fail(503, "overloaded", "model {}: the job queue is full; retry later", model->name);
  auto admission = std::make_shared<Admission>(model);
  answer_on_pool(ex, [this, model, admission, in, body = std::move(req.body())] {
    const ParsedRequest request = parse_request(in, body, config.limits);
    const auto encodings = tokenize_all(*model->backend, request);
    json out = json::array();
    for (const auto& e : encodings) {
      json offsets = json::array();
      for (const auto& [b, end] : e.offsets) offsets.push_back({b, end});
      out.push_back({{"input_ids", e.ids},
                     {"token_type_ids", e.type_ids},
                     {"attention_mask", e.attention_mask},
                     {"offsets", offsets}});
    }
    return Reply{200, out.dump()};
  });
}

std::string Server::Impl::store_path(const std::string& relative) const {
  namespace fs = std::filesystem;
  if (config.model_store.empty())
    http_fail(400, "validation", "no model store is configured (--model-store)");
  const fs::path rel(relative);
  if (relative.empty() || rel.is_absolute())
    http_fail(400, "validation", "model path \"{}\" must be relative to the model store",
              text_excerpt(relative));
  for (const auto& part : rel)
    if (part == "..")
      http_fail(403, "forbidden", "model path \"{}\" leaves the model store", text_excerpt(relative));
  std::error_code ec;
  const fs::path store = fs::weakly_canonical(config.model_store, ec);
  const fs::path full = fs::weakly_canonical(store / rel, ec);
  // Symbolic links are resolved first, so a link pointing outside is caught too.
  auto [s, f] = std::mismatch(store.begin(), store.end(), full.begin(), full.end());
  if (ec || s != store.end())
    http_fail(403, "forbidden", "model path \"{}\" leaves the model store", text_excerpt(relative));
  if (!fs::is_directory(full))
    http_fail(404, "not_found", "model path \"{}\" is not a directory in the model store",
              text_excerpt(relative));
  return full.string();
}

void Server::Impl::route_management(Request& req, const std::shared_ptr<Exchange>& ex) {
  check_auth(req);
  const std::string_view target = req.target();
  const std::size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  auto query = query_of(q == std::string_view::npos ? std::string_view{} : target.substr(q + 1));
  const auto parts = split_path(path);
  json body = json::object();
  if (!req.body().empty()) {
    try {
      body = parse_json(req.body(), "body", JsonLimits{config.max_payload_bytes});
    } catch (const JsonError& e) {
      http_fail(400, "validation", "{}", e.what());
    }
    if (!body.is_object()) http_fail(400, "validation", "body: expected a JSON object");
  }
  auto param = [&](const char* a, const char* b = nullptr) -> std::optional<std::string> {
    for (const char* key : {a, b}) {
      if (!key) continue;
      if (body.contains(key)) {
        const json& v = body[key];
        return v.is_string() ? v.get<std::string>() : v.dump();
      }
      if (query.count(key)) return query[key];
    }
    return std::nullopt;
  };
  auto workers_param = [&]() -> std::optional<int> {
    auto w = param("workers", "min_worker");
    if (!w) return std::nullopt;
    char* end = nullptr;
    const long n = std::strtol(w->c_str(), &end, 10);
    if (end == w->c_str() || *end != '\0' || n < 1 || n > 256)
      http_fail(400, "validation", "workers: expected an integer in 1..256, got \"{}\"", text_excerpt(*w));
    return static_cast<int>(n);
  };
  if (parts.empty() || parts[0] != "models" || parts.size() > 2)
    http_fail(404, "not_found", "no route for {} {} (management: /models, /models/{{name}})",
              std::string(req.method_string()), text_excerpt(path));
  ex->route = parts.size() == 1 ? "mgmt:/models" : "mgmt:/models/{name}";

  if (parts.size() == 1 && req.method() == http::verb::get) {
    json out = json::array();
    for (const auto& model : models.list()) out.push_back(model_json(*model));
    finish(*ex, Reply{200, json{{"models", out}}.dump()});
    return;
  }
  if (parts.size() == 1 && req.method() == http::verb::post) {
    const auto name = param("name", "model_name");
    const auto dir = param("path", "url");
    if (!name || !valid_model_name(*name))
      http_fail(400, "validation", "name: expected 1-64 letters, digits, '-', '_' or '.'");
    if (!dir) http_fail(400, "validation", "path: the model's directory inside the model store");
    if (!config.loader) http_fail(500, "internal", "this server cannot load models");
    const std::string full = store_path(*dir);
    const auto workers = workers_param();
    // Held from here until the model is served or its load fails: a second POST of this name
    // gets 409 now instead of loading the model again.
    auto reservation = models.reserve(*name);
    if (!reservation) http_fail(409, "conflict", "model \"{}\" is already loaded or being loaded", *name);
    answer_on_pool(ex, [this, reservation = std::make_shared<ModelRegistry::Reservation>(std::move(*reservation)),
                        full, workers] {
      auto model = models.load(std::move(*reservation), full, config.loader, workers);
      if (config.handler) config.handler->model_fn(full);
      return Reply{201, model_json(*model).dump()};
    });
    return;
  }
  if (parts.size() != 2) http_fail(405, "validation", "use GET or POST on /models");
  const std::string name = parts[1];
  auto model = models.find(name);
  if (!model) http_fail(404, "not_found", "unknown model \"{}\"", text_excerpt(name));
  switch (req.method()) {
    case http::verb::get:
      finish(*ex, Reply{200, model_json(*model).dump()});
      return;
    case http::verb::delete_:
      // Unloading waits for the model's queued work: off the I/O thread.
      answer_on_pool(ex, [this, name] {
        if (!models.unload(name)) http_fail(404, "not_found", "unknown model \"{}\"", name);
        return Reply{200, json{{"unloaded", name}}.dump()};
      });
      return;
    case http::verb::put: {
      const auto workers = workers_param();
      if (!workers) http_fail(400, "validation", "workers: required (e.g. ?workers=2)");
      answer_on_pool(ex, [model, workers] {
        model->batcher->set_workers(*workers);
        return Reply{200, model_json(*model).dump()};
      });
      return;
    }
    default:
      http_fail(405, "validation", "use GET, PUT or DELETE on /models/{{name}}");
  }
}

}  // namespace tuneserve::serve
