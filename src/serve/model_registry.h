// The models a server answers for, by name: each with its backend, its batcher and workers,
// and where it came from (its directory is its version). Load, unload and scale at runtime.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "serve/backend.h"
#include "serve/batcher.h"
#include "serve/metrics.h"

namespace tuneserve::serve {

struct Model {
  std::string name;
  std::string version;  // the directory it was loaded from
  std::shared_ptr<Backend> backend;
  std::unique_ptr<Batcher> batcher;
  double load_seconds = 0;
};

// Builds a backend from a model directory (the real one wraps pipeline/pipeline.h).
using Loader = std::function<std::shared_ptr<Backend>(const std::string& dir)>;

class ModelRegistry {
 public:
  ModelRegistry(Metrics& metrics, BatchConfig defaults) : metrics_(metrics), defaults_(defaults) {}
  ~ModelRegistry();

  // Loads `dir` with `loader` and serves it as `name` (fails if the name is taken).
  std::shared_ptr<Model> load(const std::string& name, const std::string& dir, const Loader& loader,
                              std::optional<int> workers = std::nullopt);
  std::shared_ptr<Model> add(const std::string& name, const std::string& version,
                             std::shared_ptr<Backend> backend, double load_seconds,
                             std::optional<int> workers = std::nullopt);
  // Stops taking work for `name`, finishes what it queued, and forgets it. False if unknown.
  bool unload(const std::string& name);
  std::shared_ptr<Model> find(const std::string& name) const;  // null if unknown
  // The model that routes without a name use: the only one, or the first loaded.
  std::shared_ptr<Model> default_model() const;
  std::vector<std::shared_ptr<Model>> list() const;
  bool ready() const;  // at least one model, every model with a worker
  void stop_all();     // drains every batcher (shutdown)
  const BatchConfig& defaults() const { return defaults_; }

 private:
  Metrics& metrics_;
  BatchConfig defaults_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Model>> models_;
  std::vector<std::string> order_;  // load order, for default_model
};

}  // namespace tuneserve::serve
