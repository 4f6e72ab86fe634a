// Classification metrics (accuracy, precision, recall, F1 binary and macro, confusion matrix).
// Undefined ratios (no predictions or no examples of a class) are 0, as scikit-learn's default.
//
// Dimensions: N examples, K labels.
#include "train/eval_metrics.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/error.h"

namespace tuneserve::train {

namespace {
double ratio(long num, long den) { return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den); }
}  // namespace

EvalMetrics compute_metrics(std::span<const std::int64_t> predictions,
                            std::span<const std::int64_t> labels, int num_labels, double loss_sum) {
  if (predictions.size() != labels.size())
    fail("metrics: {} predictions for {} labels", predictions.size(), labels.size());
  if (num_labels < 1) fail("metrics: num_labels must be >= 1, got {}", num_labels);
  const auto k = static_cast<std::size_t>(num_labels);
  EvalMetrics m;
  m.count = static_cast<long>(labels.size());
  m.loss = m.count ? loss_sum / static_cast<double>(m.count) : 0.0;
  m.confusion.assign(k, std::vector<long>(k, 0));
  long correct = 0;
  for (std::size_t i = 0; i < labels.size(); i++) {
    const std::int64_t y = labels[i], p = predictions[i];
    if (y < 0 || y >= num_labels) fail("metrics: example {} has label {} outside [0, {})", i, y, num_labels);
    if (p < 0 || p >= num_labels) fail("metrics: example {} has prediction {} outside [0, {})", i, p, num_labels);
    m.confusion[static_cast<std::size_t>(y)][static_cast<std::size_t>(p)]++;
    correct += y == p;
  }
  m.accuracy = ratio(correct, m.count);
  m.per_class.resize(k);
  for (std::size_t c = 0; c < k; c++) {
    long tp = m.confusion[c][c], predicted = 0, actual = 0;
    for (std::size_t j = 0; j < k; j++) {
      predicted += m.confusion[j][c];
      actual += m.confusion[c][j];
    }
    ClassMetrics& cm = m.per_class[c];
    cm.precision = ratio(tp, predicted);
    cm.recall = ratio(tp, actual);
    cm.f1 = cm.precision + cm.recall > 0 ? 2 * cm.precision * cm.recall / (cm.precision + cm.recall) : 0.0;
    cm.support = actual;
    m.macro_precision += cm.precision / static_cast<double>(k);
    m.macro_recall += cm.recall / static_cast<double>(k);
    m.macro_f1 += cm.f1 / static_cast<double>(k);
  }
  m.binary = k == 2;
  if (m.binary) {
    m.precision = m.per_class[1].precision;
    m.recall = m.per_class[1].recall;
    m.f1 = m.per_class[1].f1;
  } else {
    m.precision = m.macro_precision;
    m.recall = m.macro_recall;
    m.f1 = m.macro_f1;
  }
  return m;
}

nlohmann::json metrics_to_json(const EvalMetrics& m, const std::string& prefix,
                               const std::vector<std::string>& label_names) {
  nlohmann::json j;
  j[prefix + "loss"] = m.loss;
  j[prefix + "accuracy"] = m.accuracy;
  j[prefix + "precision"] = m.precision;
  j[prefix + "recall"] = m.recall;
  j[prefix + "f1"] = m.f1;
  j[prefix + "precision_macro"] = m.macro_precision;
  j[prefix + "recall_macro"] = m.macro_recall;
  j[prefix + "f1_macro"] = m.macro_f1;
  j[prefix + "samples"] = m.count;
  j["confusion_matrix"] = m.confusion;
  nlohmann::json per_class = nlohmann::json::array();
  for (std::size_t c = 0; c < m.per_class.size(); c++) {
    per_class.push_back({{"label", c < label_names.size() ? label_names[c] : fmt::format("LABEL_{}", c)},
                         {"precision", m.per_class[c].precision},
                         {"recall", m.per_class[c].recall},
                         {"f1", m.per_class[c].f1},
                         {"support", m.per_class[c].support}});
  }
  j["per_class"] = per_class;
  return j;
}

void add_eval_speed(nlohmann::json& record, const EvalMetrics& m, long batch_size, double seconds) {
  const double batches = std::ceil(static_cast<double>(m.count) / static_cast<double>(std::max(1L, batch_size)));
  record["eval_runtime"] = seconds;
  record["eval_samples_per_second"] = seconds > 0 ? static_cast<double>(m.count) / seconds : 0.0;
  record["eval_steps_per_second"] = seconds > 0 ? batches / seconds : 0.0;
}

std::string metrics_table(const EvalMetrics& m, const std::vector<std::string>& label_names) {
  auto name = [&](std::size_t c) {
    return c < label_names.size() ? label_names[c] : fmt::format("LABEL_{}", c);
  };
  std::size_t width = 9;
  for (std::size_t c = 0; c < m.per_class.size(); c++) width = std::max(width, name(c).size());
  std::string out;
  out += fmt::format("examples   {}\nloss       {:.4f}\naccuracy   {:.4f}\n", m.count, m.loss, m.accuracy);
  if (m.binary) {
    out += fmt::format("precision  {:.4f}  recall {:.4f}  f1 {:.4f}   (binary, positive = {})\n",
                       m.precision, m.recall, m.f1, name(1));
  }
  out += fmt::format("precision  {:.4f}  recall {:.4f}  f1 {:.4f}   (macro)\n\n", m.macro_precision,
                     m.macro_recall, m.macro_f1);
  out += fmt::format("{:<{}}  precision  recall     f1         support\n", "label", width);
  for (std::size_t c = 0; c < m.per_class.size(); c++) {
    const ClassMetrics& cm = m.per_class[c];
    out += fmt::format("{:<{}}  {:<9.4f}  {:<9.4f}  {:<9.4f}  {}\n", name(c), width, cm.precision,
                       cm.recall, cm.f1, cm.support);
  }
  out += fmt::format("\nconfusion matrix (rows true, columns predicted)\n{:<{}}", "", width);
  for (std::size_t c = 0; c < m.per_class.size(); c++) out += fmt::format("  {:>9}", name(c));
  out += "\n";
  for (std::size_t r = 0; r < m.confusion.size(); r++) {
    out += fmt::format("{:<{}}", name(r), width);
    for (long v : m.confusion[r]) out += fmt::format("  {:>9}", v);
    out += "\n";
  }
  return out;
}

}  // namespace tuneserve::train
