// Trainer-style log lines (see trainer_log.h).
#include "train/trainer_log.h"

#include <cmath>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace tuneserve::train {
namespace {

double rounded(double v, int places) {
  const double scale = std::pow(10.0, places);
  return std::round(v * scale) / scale;
}

// The keys Trainer puts last in an evaluation's dict (speed metrics, then the epoch).
bool is_eval_trailer(std::string_view key) {
  return key == "eval_runtime" || key == "eval_samples_per_second" || key == "eval_steps_per_second";
}

}  // namespace

std::string python_float(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // fmt's shortest form is Python's repr except that integral values drop the ".0".
  std::string s = fmt::format("{}", value);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string trainer_log_line(const nlohmann::json& r) {
  std::vector<std::pair<std::string, double>> items;
  auto number = [&](const char* key) -> std::optional<double> {
    if (!r.contains(key) || !r[key].is_number()) return std::nullopt;
    return r[key].get<double>();
  };
  auto add = [&](const char* key, const char* name, int places) {
    if (const auto v = number(key)) items.emplace_back(name, places >= 0 ? rounded(*v, places) : *v);
  };
  if (r.contains("train_runtime")) {
    add("train_runtime", "train_runtime", 4);
    add("train_samples_per_second", "train_samples_per_second", 3);
    add("train_steps_per_second", "train_steps_per_second", 3);
    add("train_loss", "train_loss", -1);
  } else if (r.contains("eval_loss")) {
    add("eval_loss", "eval_loss", -1);
    for (const auto& [key, value] : r.items()) {
      // Floats only: eval_samples is a count, and Trainer's evaluation dict has no counts.
      if (key.starts_with("eval_") && key != "eval_loss" && !is_eval_trailer(key) && value.is_number_float())
        items.emplace_back(key, value.get<double>());
    }
    add("eval_runtime", "eval_runtime", 4);
    add("eval_samples_per_second", "eval_samples_per_second", 3);
    add("eval_steps_per_second", "eval_steps_per_second", 3);
  } else {
    add("loss", "loss", 4);
    add("grad_norm", "grad_norm", -1);
    add("lr", "learning_rate", -1);
  }
  add("epoch", "epoch", 2);
  std::string line = "{";
  for (const auto& [key, value] : items) {
    if (line.size() > 1) line += ", ";
    line += fmt::format("'{}': {}", key, python_float(value));
  }
  return line + "}";
}

}  // namespace tuneserve::train
