// Handler plugins through dlopen (see handler_plugin.h and tuneserve_handler.h).
#include "serve/handler_plugin.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"
#include "serve/request.h"
#include <tuneserve/tuneserve_handler.h>

namespace tuneserve::serve {
namespace {

// Owns a malloc'd string handed back by a plugin.
struct Owned {
  char* p = nullptr;
  ~Owned() { std::free(p); }
  std::string str(std::size_t size) const { return p ? std::string(p, size) : std::string(); }
  std::string str() const { return p ? std::string(p) : std::string(); }
};

void check(int status, const Owned& error, const char* hook) {
  if (status == 0) return;
  const int code = status >= 400 && status <= 599 ? status : 500;
  throw HttpError(code, "handler",
                  fmt::format("{}: {}", hook, error.p ? error.str() : std::string("failed")));
}

char* copy_out(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (!p) throw std::bad_alloc();
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

// A ModelAccess call from C: the answer or the failure as a status and message, never an exception
// across the plugin's frames.
int call_model(const std::function<std::string(const std::string&)>& f, const char* request_json, char** out,
               char** error) {
  *out = nullptr;
  *error = nullptr;
  try {
    *out = copy_out(f(request_json ? request_json : ""));
    return 0;
  } catch (const HttpError& e) {
    *error = copy_out(e.what());
    return e.status;
  } catch (const std::exception& e) {
    *error = copy_out(e.what());
    return 500;
  }
}

// The C view of a ModelAccess, valid while `access` lives.
tuneserve_model c_model(const ModelAccess& access) {
  tuneserve_model m;
  m.self = const_cast<ModelAccess*>(&access);
  m.logits = [](void* self, const char* request, char** out, char** error) {
    return call_model(static_cast<ModelAccess*>(self)->logits, request, out, error);
  };
  m.predict = [](void* self, const char* request, char** out, char** error) {
    return call_model(static_cast<ModelAccess*>(self)->predict, request, out, error);
  };
  return m;
}

template <typename F>
void resolve(void* library, const char* name, F& out) {
  out = reinterpret_cast<F>(dlsym(library, name));
}

}  // namespace

std::shared_ptr<HandlerPlugin> HandlerPlugin::open(const std::string& path) {
  std::shared_ptr<HandlerPlugin> plugin(new HandlerPlugin());
  plugin->path_ = path;
  plugin->library_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!plugin->library_) fail("handler {}: cannot load: {}", path, dlerror());
  int (*abi)() = nullptr;
  resolve(plugin->library_, "tuneserve_handler_abi", abi);
  if (!abi) fail("handler {}: no tuneserve_handler_abi(); is it a tuneserve handler?", path);
  if (abi() != TUNESERVE_HANDLER_ABI)
    fail("handler {}: built for handler ABI {}, this server speaks {}", path, abi(),
         TUNESERVE_HANDLER_ABI);
  resolve(plugin->library_, "tuneserve_model_fn", plugin->model_);
  resolve(plugin->library_, "tuneserve_input_fn", plugin->input_);
  resolve(plugin->library_, "tuneserve_predict_fn", plugin->predict_);
  resolve(plugin->library_, "tuneserve_output_fn", plugin->output_);
  resolve(plugin->library_, "tuneserve_transform_fn", plugin->transform_);
  if (plugin->transform_ && (plugin->input_ || plugin->predict_ || plugin->output_))
    fail("handler {}: transform_fn replaces input_fn, predict_fn and output_fn; export either "
         "transform_fn or those",
         path);
  if (!plugin->model_ && !plugin->input_ && !plugin->predict_ && !plugin->output_ &&
      !plugin->transform_)
    fail("handler {}: exports none of the hooks (tuneserve_model_fn, _input_fn, _predict_fn, "
         "_output_fn, _transform_fn)",
         path);
  return plugin;
}

HandlerPlugin::~HandlerPlugin() {
  if (library_) dlclose(library_);
}

void HandlerPlugin::model_fn(const std::string& model_dir) {
  if (!model_) return;
  Owned error;
  context_ = model_(model_dir.c_str(), &error.p);
  if (error.p) fail("handler {}: model_fn({}): {}", path_, model_dir, error.str());
}

std::string HandlerPlugin::input(std::string_view body, const std::string& content_type) const {
  Owned out, error;
  check(input_(context_, body.data(), body.size(), content_type.c_str(), &out.p, &error.p), error,
        "input_fn");
  return out.str();
}

std::string HandlerPlugin::predict(const ModelAccess& model, const std::string& request_json) const {
  Owned out, error;
  const tuneserve_model m = c_model(model);
  check(predict_(context_, &m, request_json.c_str(), &out.p, &error.p), error, "predict_fn");
  return out.str();
}

HandlerOutput HandlerPlugin::output(const std::string& prediction_json,
                                    const std::string& accept) const {
  Owned body, type, error;
  std::size_t size = 0;
  check(output_(context_, prediction_json.c_str(), accept.c_str(), &body.p, &size, &type.p,
                &error.p),
        error, "output_fn");
  return {body.str(size), type.p ? type.str() : "application/json"};
}

HandlerOutput HandlerPlugin::transform(const ModelAccess& model, std::string_view body,
                                       const std::string& content_type, const std::string& accept) const {
  Owned out, type, error;
  std::size_t size = 0;
  const tuneserve_model m = c_model(model);
  check(transform_(context_, &m, body.data(), body.size(), content_type.c_str(), accept.c_str(),
                   &out.p, &size, &type.p, &error.p),
        error, "transform_fn");
  return {out.str(size), type.p ? type.str() : "application/json"};
}

}  // namespace tuneserve::serve
