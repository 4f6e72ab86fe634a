// Example handler plugin overriding predict_fn with the model's own logits: a temperature-scaled
// softmax, softmax(logits / T), for calibrated scores. T comes from the request's
// "parameters": {"temperature": T}, else from code/temperature.json ({"temperature": T}) next to
// the plugin in the model directory, else 1. The answer has the Hugging Face Inference API's shape:
// one list per input of {"label", "score"}, best first.
//
// Deployed as SageMaker does with inference code: copy the built library into MODEL_DIR/code/
// and `tuneserve serve --model MODEL_DIR` picks it up.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <tuneserve/tuneserve_handler.h>

namespace {

using nlohmann::json;

struct Context {
  double temperature = 1.0;
};

char* copy(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

int fail(char** error, int status, const std::string& message) {
  *error = copy("temperature_softmax: " + message);
  return status;
}

// A temperature is a positive, finite number.
bool valid_temperature(const json& t) { return t.is_number() && t.get<double>() > 0 && std::isfinite(t.get<double>()); }

}  // namespace

extern "C" {

int tuneserve_handler_abi(void) { return TUNESERVE_HANDLER_ABI; }

void* tuneserve_model_fn(const char* model_dir, char** error) {
  auto* context = new Context();
  std::ifstream in(std::string(model_dir) + "/code/temperature.json");
  if (in) {
    const json config = json::parse(in, nullptr, false);
    if (!config.is_object() || !valid_temperature(config.value("temperature", json()))) {
      delete context;
      *error = copy(std::string(model_dir) + "/code/temperature.json: expected {\"temperature\": T} with T > 0");
      return nullptr;
    }
    context->temperature = config["temperature"].get<double>();
  }
  return context;
}

int tuneserve_predict_fn(void* context, const tuneserve_model* model, const char* request_json,
                         char** prediction_json, char** error) {
  json request = json::parse(request_json, nullptr, false);
  if (!request.is_object()) return fail(error, 400, "the body must be a JSON object {\"inputs\": ...}");
  double temperature = context ? static_cast<Context*>(context)->temperature : 1.0;
  if (auto p = request.find("parameters"); p != request.end() && p->is_object() && p->contains("temperature")) {
    if (!valid_temperature((*p)["temperature"]))
      return fail(error, 400, "parameters.temperature must be a number > 0");
    temperature = (*p)["temperature"].get<double>();
    p->erase("temperature");  // the model's own parameters stay (truncation, ...)
  }
  char* raw = nullptr;
  if (const int status = model->logits(model->self, request.dump().c_str(), &raw, error)) return status;
  const json out = json::parse(raw);
  std::free(raw);
  const auto labels = out["labels"].get<std::vector<std::string>>();
  json answer = json::array();
  for (const auto& row : out["logits"]) {
    const auto logits = row.get<std::vector<double>>();
    const double top = *std::max_element(logits.begin(), logits.end());
    std::vector<double> e(logits.size());
    double sum = 0;
    for (std::size_t k = 0; k < logits.size(); ++k) sum += e[k] = std::exp((logits[k] - top) / temperature);
    std::vector<std::size_t> order(logits.size());
    for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return e[a] > e[b]; });
    json scores = json::array();
    for (std::size_t k : order) scores.push_back({{"label", labels[k]}, {"score", e[k] / sum}});
    answer.push_back(std::move(scores));
  }
  *prediction_json = copy(answer.dump());
  return 0;
}

}  // extern "C"
