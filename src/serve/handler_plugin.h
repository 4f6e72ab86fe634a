// Loads a handler plugin (a shared library speaking <tuneserve/tuneserve_handler.h>) and calls its
// hooks with C++ types; a hook's failure becomes an HttpError with the status it chose.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

struct tuneserve_model;  // <tuneserve/tuneserve_handler.h>

namespace tuneserve::serve {

struct HandlerOutput {
  std::string body;
  std::string content_type;
};

// What the server lends predict_fn and transform_fn: the request's model (tuneserve_model in C).
// Each takes a JSON request and returns JSON or throws (HttpError keeps its status).
struct ModelAccess {
  std::function<std::string(const std::string& request_json)> logits;   // {"labels", "logits"}
  std::function<std::string(const std::string& request_json)> predict;  // the default prediction
};

class HandlerPlugin {
 public:
  // dlopen()s `path` and resolves the hooks; fails (Error) naming the file and the problem.
  static std::shared_ptr<HandlerPlugin> open(const std::string& path);
  ~HandlerPlugin();

  void model_fn(const std::string& model_dir);  // no-op when the plugin has none
  bool has_input() const { return input_ != nullptr; }
  bool has_predict() const { return predict_ != nullptr; }
  bool has_output() const { return output_ != nullptr; }
  bool has_transform() const { return transform_ != nullptr; }
  std::string input(std::string_view body, const std::string& content_type) const;
  std::string predict(const ModelAccess& model, const std::string& request_json) const;
  HandlerOutput output(const std::string& prediction_json, const std::string& accept) const;
  HandlerOutput transform(const ModelAccess& model, std::string_view body, const std::string& content_type,
                          const std::string& accept) const;
  const std::string& path() const { return path_; }

 private:
  HandlerPlugin() = default;
  std::string path_;
  void* library_ = nullptr;
  void* context_ = nullptr;
  void* (*model_)(const char*, char**) = nullptr;
  int (*input_)(void*, const char*, std::size_t, const char*, char**, char**) = nullptr;
  int (*predict_)(void*, const tuneserve_model*, const char*, char**, char**) = nullptr;
  int (*output_)(void*, const char*, const char*, char**, std::size_t*, char**, char**) = nullptr;
  int (*transform_)(void*, const tuneserve_model*, const char*, std::size_t, const char*, const char*, char**,
                    std::size_t*, char**, char**) = nullptr;
};

}  // namespace tuneserve::serve
