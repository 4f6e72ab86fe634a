// `tuneserve serve`: an HTTP endpoint for a text classifier that SageMaker's and Hugging Face's
// clients talk to (see serve/server.h for the routes, serve/config.h for every setting).
//
//   tuneserve serve --model DIR [--tokenizer DIR] [--host 0.0.0.0] [--port 8080] [--workers N]
//                   [--config serve.json] [--handler lib.so] [--management-port P --model-store D]
// The handler: --handler, else TUNESERVE_HANDLER, else the one *.so in MODEL/code/ (SageMaker's
// place for a model's inference code).
//                   [--device cpu|cuda|cuda:N]
// Settings come from flags > environment (SAGEMAKER_*, HF_TASK, MAX_BATCH_TOKENS, ...) > --config
// file > defaults. SIGTERM/SIGINT: stop accepting, finish in-flight requests, exit 0.
#include <signal.h>

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include <fmt/ranges.h>

#include "cli/command.h"
#include "kernels/device_select.h"
#include "kernels/ops.h"
#include "core/cpus.h"
#include "core/error.h"
#include "core/memory.h"
#include "serve/config.h"
#include "storage/resolve.h"
#include "serve/pipeline_backend.h"
#include "serve/server.h"
#include "tokenizer/tokenizer.h"

namespace tuneserve::cli {
namespace {

using namespace tuneserve::serve;

constexpr const char* kSageMakerModelDir = "/opt/ml/model";

// SageMaker keeps a model's inference code in its code/ folder: the handler there, when there is
// exactly one shared library ("" when none; Error naming them when several).
std::string handler_in_code_dir(const std::string& model_dir) {
  const std::filesystem::path code = std::filesystem::path(model_dir) / "code";
  if (!std::filesystem::is_directory(code)) return "";
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator(code))
    if (entry.is_regular_file() && entry.path().extension() == ".so") found.push_back(entry.path().string());
  if (found.size() > 1)
    fail("{}: {} handler libraries ({}); keep one, or choose with --handler / TUNESERVE_HANDLER", code.string(),
         found.size(), fmt::join(found, ", "));
  return found.empty() ? "" : found.front();
}

int run_serve(ServeOptions options) {
  // SageMaker's serving containers load what the platform unpacked into /opt/ml/model.
  if (options.model.empty() && std::filesystem::is_directory(kSageMakerModelDir)) options.model = kSageMakerModelDir;
  if (options.model.empty())
    fail("serve: --model is required (or HF_MODEL_DIR / HF_MODEL_ID; {} is used when it exists)", kSageMakerModelDir);
  // Before the port is bound: an orchestrator must not see a listening server that can never load.
  const Device device = select_device({.value = options.device, .source = "serve"}).device;
  const DType dtype = parse_compute_dtype(options.dtype);
  ops::require(backend_for(device), dtype, fmt::format("serve: dtype {}", options.dtype));
  const storage::ModelPaths paths = storage::resolve_model(options.model, options.tokenizer, {options.revision});
  options.model = paths.model;
  if (!options.tokenizer.empty()) options.tokenizer = paths.tokenizer;
  // Every thread started from here inherits a blocked SIGTERM/SIGINT; the main thread takes
  // them with sigwait, so a signal during model loading is not lost and never kills a worker.
  const sigset_t signals = block_stop_signals();
  // Before the first large block: memory that unloaded models and retired workers free must go
  // back to the system, or RSS only grows (core/memory.h).
  tune_allocator_for_server();

  // Without batching, as SageMaker's inference toolkit: one worker per CPU the container may use (its
  // cgroup quota and affinity, not the host's cores), each pass on one thread, started once the model
  // shows what a worker's memory costs. A batcher instead runs one pass at a time on every CPU:
  // concurrent requests join that pass, and two passes side by side would each get half the CPUs for
  // half the batch (measured at concurrency 32 on 2 cores: 382-397 requests/s against 369-374 for
  // two workers; one pass on one thread: 6.6-7.1 ms for a lone request against 4-5 ms).
  const int cpus = available_cpus();
  const bool batching = options.batch.max_batch_requests > 1;
  const int wanted_workers = options.workers_given ? options.batch.workers : batching ? 1 : cpus;
  if (!options.workers_given) options.batch.workers = 1;
  Pipeline::Options pipeline_options;
  pipeline_options.threads = options.threads > 0 ? options.threads : cpus_per_pass(wanted_workers);
  pipeline_options.device = device;
  pipeline_options.dtype = dtype;
  pipeline_options.check_weights = options.weight_check;
  const std::string tokenizer = options.tokenizer;
  // Without --threads, a pass gets the CPUs divided among the model's workers, however many the
  // management API scales it to later.
  const bool share_cpus = options.threads <= 0;
  options.server.loader = [pipeline_options, tokenizer, share_cpus](const std::string& dir) {
    // A model from the store brings its own tokenizer when it has one.
    const bool own = tokenizer_file(dir).has_value();
    auto backend = std::make_shared<PipelineBackend>(dir, own || tokenizer.empty() ? dir : tokenizer,
                                                     pipeline_options, share_cpus);
    for (const auto& note : backend->load_notes()) spdlog::warn("{}: {}", dir, note);
    return backend;
  };
  if (options.handler.empty()) options.handler = handler_in_code_dir(options.model);
  if (!options.handler.empty()) {
    options.server.handler = HandlerPlugin::open(options.handler);
    spdlog::info("serve: handler {}", options.handler);
  }

  Metrics metrics;
  ModelRegistry models(metrics, options.batch);
  Server server(options.server, models, metrics);
  // Listening before the model is loaded: /ping answers 503 until it is.
  server.start();
  std::printf("tuneserve: listening on http://%s:%d\n", options.server.host.c_str(), server.port());
  if (server.management_port() >= 0)
    std::printf("tuneserve: management API on http://%s:%d\n",
                options.server.management_host.c_str(), server.management_port());
  std::fflush(stdout);

  try {
    auto model = models.load(options.model_name, options.model, options.server.loader);
    if (options.server.handler) options.server.handler->model_fn(options.model);
    if (!options.workers_given && wanted_workers > 1) {
      int workers = wanted_workers;
      const std::size_t each = model->backend->forward_bytes(options.batch.max_batch_tokens);
      if (const auto free = available_memory(); free && each > 0)
        workers = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(wanted_workers), 1 + *free / each));
      if (workers < wanted_workers)
        spdlog::warn("serve: {} CPUs, but memory holds the activations of {} workers at max_batch_tokens {}; "
                     "starting {}", cpus, workers, options.batch.max_batch_tokens, workers);
      model->batcher->set_workers(workers);
    }
    spdlog::info("serve: model {} ({}, {} labels) loaded on {} in {} in {:.2f} s; {} workers x {} threads ({} CPUs{})",
                 model->name, model->backend->info().model_type,
                 model->backend->info().labels.num_labels(), device.str(), options.dtype, model->load_seconds,
                 model->batcher->workers(),
                 share_cpus ? cpus_per_pass(model->batcher->workers()) : pipeline_options.threads, cpus,
                 options.workers_given ? "" : "; --workers or SAGEMAKER_MODEL_SERVER_WORKERS to choose");
  } catch (...) {
    server.stop();
    throw;
  }

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("serve: signal {}: finishing in-flight requests", sig);
  server.stop();
  return 0;
}

const Registration registration{Command{
    "serve", "serve a text classifier over HTTP (SageMaker and Hugging Face clients)",
    [](CLI::App& app) -> std::function<int()> {
      auto config_path = std::make_shared<std::string>();
      auto values = std::make_shared<std::map<std::string, std::string>>();
      app.add_option("--config", *config_path,
                     "JSON file of settings, keys as the flags with '_' (e.g. max_batch_tokens)");
      std::vector<std::pair<const Setting*, CLI::Option*>> flags;
      for (const auto& setting : serve_settings()) {
        std::string help = setting.help;
        if (!setting.env.empty()) {
          help += " [env:";
          for (const auto& e : setting.env) help += " " + e;
          help += "]";
        }
        flags.emplace_back(&setting, app.add_option(flag_of(setting), (*values)[setting.name], help));
      }
      return [config_path, values, flags]() {
        ServeOptions options;
        if (!config_path->empty()) apply_config_file(options, *config_path);
        apply_environment(options, [](const char* name) { return std::getenv(name); });
        for (const auto& [setting, option] : flags)
          if (option->count() > 0)
            apply_setting(options, *setting, values->at(setting->name), flag_of(*setting));
        return run_serve(std::move(options));
      };
    }}};

}  // namespace
}  // namespace tuneserve::cli
