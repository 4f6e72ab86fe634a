// Models by name (see model_registry.h). Unloading stops a model's batcher from the caller's
// thread, so a worker never ends up joining itself.
#include "serve/model_registry.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/memory.h"

namespace tuneserve::serve {

ModelRegistry::~ModelRegistry() { stop_all(); }

ModelRegistry::Reservation::~Reservation() {
  if (!registry_) return;
  std::lock_guard lock(registry_->mutex_);
  registry_->loading_.erase(name_);
}

std::optional<ModelRegistry::Reservation> ModelRegistry::reserve(const std::string& name) {
  std::lock_guard lock(mutex_);
  if (models_.count(name) || !loading_.insert(name).second) return std::nullopt;
  return Reservation(this, name);
}

std::shared_ptr<Model> ModelRegistry::load(Reservation reservation, const std::string& dir,
                                           const Loader& loader, std::optional<int> workers) {
  if (reservation.registry_ != this) fail("model \"{}\": the name is reserved in another registry", reservation.name());
  const auto start = std::chrono::steady_clock::now();
  std::shared_ptr<Backend> backend = loader(dir);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return publish(make_model(reservation.name(), dir, std::move(backend), seconds, workers), &reservation);
}

std::shared_ptr<Model> ModelRegistry::load(const std::string& name, const std::string& dir,
                                           const Loader& loader, std::optional<int> workers) {
  auto reservation = reserve(name);
  if (!reservation) fail("model \"{}\" is already loaded or being loaded", name);
  return load(std::move(*reservation), dir, loader, workers);
}

std::shared_ptr<Model> ModelRegistry::add(const std::string& name, const std::string& version,
                                          std::shared_ptr<Backend> backend, double load_seconds,
                                          std::optional<int> workers) {
  return publish(make_model(name, version, std::move(backend), load_seconds, workers), nullptr);
}

std::shared_ptr<Model> ModelRegistry::make_model(const std::string& name, const std::string& version,
                                                 std::shared_ptr<Backend> backend, double load_seconds,
                                                 std::optional<int> workers) {
  if (name.empty()) fail("a model needs a name");
  auto model = std::make_shared<Model>();
  model->name = name;
  model->version = version;
  model->backend = backend;
  model->load_seconds = load_seconds;
  BatchConfig config = defaults_;
  if (workers) config.workers = *workers;
  model->batcher = std::make_unique<Batcher>(std::move(backend), config, &metrics_, name);
  return model;
}

std::shared_ptr<Model> ModelRegistry::publish(std::shared_ptr<Model> model, Reservation* reservation) {
  const std::string& name = model->name;
  {
    std::lock_guard lock(mutex_);
    if (reservation) {
      loading_.erase(name);  // the name goes from reserved to loaded in one step
      reservation->registry_ = nullptr;
    } else if (models_.count(name) || loading_.count(name)) {
      fail("model \"{}\" is already loaded", name);
    }
    models_[name] = model;
    order_.push_back(name);
  }
  metrics_.set("tuneserve_model_load_seconds", {{"model", name}}, model->load_seconds);
  return model;
}

bool ModelRegistry::unload(const std::string& name) {
  std::shared_ptr<Model> model;
  {
    std::lock_guard lock(mutex_);
    auto it = models_.find(name);
    if (it == models_.end()) return false;
    model = it->second;
    models_.erase(it);
    order_.erase(std::remove(order_.begin(), order_.end(), name), order_.end());
  }
  model->batcher->stop();
  model.reset();  // the weights go with the last reference (a request still answering may hold one)
  release_free_memory();
  return true;
}

std::shared_ptr<Model> ModelRegistry::find(const std::string& name) const {
  std::lock_guard lock(mutex_);
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : it->second;
}

std::shared_ptr<Model> ModelRegistry::default_model() const {
  std::lock_guard lock(mutex_);
  if (order_.empty()) return nullptr;
  return models_.at(order_.front());
}

std::vector<std::shared_ptr<Model>> ModelRegistry::list() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<Model>> out;
  for (const auto& name : order_) out.push_back(models_.at(name));
  return out;
}

bool ModelRegistry::ready() const {
  std::lock_guard lock(mutex_);
  if (models_.empty()) return false;
  for (const auto& [name, model] : models_)
    if (model->batcher->workers() < 1) return false;
  return true;
}

void ModelRegistry::stop_all() {
  for (const auto& model : list()) model->batcher->stop();
}

}  // namespace tuneserve::serve
