// The models a server answers for, by name: each with its backend, its batcher and workers,
// and where it came from (its directory is its version). Load, unload and scale at runtime.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
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

  // A name held while its model loads (loading takes seconds), so that a second load under the
  // same name is refused at once instead of loading the model twice. Released when destroyed.
  class Reservation {
   public:
    Reservation(Reservation&& other) noexcept : registry_(std::exchange(other.registry_, nullptr)), name_(std::move(other.name_)) {}
    Reservation& operator=(Reservation&&) = delete;
    ~Reservation();
    const std::string& name() const { return name_; }

   private:
    friend class ModelRegistry;
    Reservation(ModelRegistry* registry, std::string name) : registry_(registry), name_(std::move(name)) {}
    ModelRegistry* registry_;
    std::string name_;
  };
  // Empty when `name` is loaded or being loaded.
  std::optional<Reservation> reserve(const std::string& name);

  // Loads `dir` with `loader` and serves it under the reserved name.
  std::shared_ptr<Model> load(Reservation reservation, const std::string& dir, const Loader& loader,
                              std::optional<int> workers = std::nullopt);
  // The same, reserving `name` first (fails if it is taken).
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
  std::shared_ptr<Model> make_model(const std::string& name, const std::string& version,
                                    std::shared_ptr<Backend> backend, double load_seconds,
                                    std::optional<int> workers);
  // Makes `model` findable; with a reservation its name was held for it, else the name must be free.
  std::shared_ptr<Model> publish(std::shared_ptr<Model> model, Reservation* reservation);

  Metrics& metrics_;
  BatchConfig defaults_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Model>> models_;
  std::set<std::string> loading_;  // reserved names whose model is not added yet
  std::vector<std::string> order_;  // load order, for default_model
};

}  // namespace tuneserve::serve
