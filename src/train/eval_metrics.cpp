// Evaluation metrics for the three problem types (see eval_metrics.h). Undefined ratios (no
// predictions or no examples of a class) are 0, as scikit-learn's default; an undefined
// correlation is NaN, as scipy's.
//
// Dimensions: N examples, K labels.
#include "train/eval_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "core/error.h"

namespace tuneserve::train {

namespace {
double ratio(long num, long den) { return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den); }
double f1_of(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0.0; }

// Ranks 1..n, ties given the mean of the ranks they span (scipy.stats.rankdata's "average").
std::vector<double> average_ranks(std::span<const double> x) {
  std::vector<std::size_t> order(x.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return x[a] < x[b]; });
  std::vector<double> rank(x.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
    const double mean_rank = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (std::size_t k = i; k <= j; ++k) rank[order[k]] = mean_rank;
    i = j + 1;
  }
  return rank;
}

void check_shape(std::span<const double> a, std::span<const double> b, int k, const char* what) {
  if (k < 1) fail("metrics: {} must be >= 1, got {}", what, k);
  if (a.size() != b.size() || a.size() % static_cast<std::size_t>(k) != 0)
    fail("metrics: {} predictions for {} targets ({} {} per row)", a.size(), b.size(), k, what);
}
}  // namespace

double pearson_correlation(std::span<const double> x, std::span<const double> y) {
  if (x.size() != y.size()) fail("metrics: correlation of {} against {} values", x.size(), y.size());
  const std::size_t n = x.size();
  if (n < 2) return std::numeric_limits<double>::quiet_NaN();
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(n);
  const double my = std::accumulate(y.begin(), y.end(), 0.0) / static_cast<double>(n);
  double sxy = 0, sxx = 0, syy = 0;
  for (std::size_t i = 0; i < n; ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx == 0 || syy == 0) return std::numeric_limits<double>::quiet_NaN();
  return std::clamp(sxy / std::sqrt(sxx * syy), -1.0, 1.0);
}

double spearman_correlation(std::span<const double> x, std::span<const double> y) {
  if (x.size() != y.size()) fail("metrics: correlation of {} against {} values", x.size(), y.size());
  const std::vector<double> rx = average_ranks(x), ry = average_ranks(y);
  return pearson_correlation(rx, ry);
}

EvalMetrics compute_multi_label_metrics(std::span<const double> logits, std::span<const double> targets,
                                        int num_labels, double loss_sum) {
  check_shape(logits, targets, num_labels, "labels");
  const auto K = static_cast<std::size_t>(num_labels);
  const std::size_t n = targets.size() / K;
  EvalMetrics m;
  m.problem_type = "multi_label_classification";
  m.count = static_cast<long>(n);
  m.loss = n ? loss_sum / static_cast<double>(n) : 0.0;
  std::vector<long> tp(K, 0), predicted(K, 0), actual(K, 0);
  long exact = 0;
  for (std::size_t i = 0; i < n; ++i) {
    bool all_right = true;
    for (std::size_t k = 0; k < K; ++k) {
      const double y = targets[i * K + k];
      if (y != 0.0 && y != 1.0) fail("metrics: example {} label {} has target {} (multi-label targets are 0 or 1)", i, k, y);
      const bool p = logits[i * K + k] >= 0.0, t = y == 1.0;
      tp[k] += p && t;
      predicted[k] += p;
      actual[k] += t;
      all_right = all_right && p == t;
    }
    exact += all_right;
  }
  m.subset_accuracy = ratio(exact, m.count);
  m.per_class.resize(K);
  long tp_all = 0, predicted_all = 0, actual_all = 0;
  for (std::size_t k = 0; k < K; ++k) {
    ClassMetrics& c = m.per_class[k];
    c.precision = ratio(tp[k], predicted[k]);
    c.recall = ratio(tp[k], actual[k]);
    c.f1 = f1_of(c.precision, c.recall);
    c.support = actual[k];
    m.macro_precision += c.precision / static_cast<double>(K);
    m.macro_recall += c.recall / static_cast<double>(K);
    m.macro_f1 += c.f1 / static_cast<double>(K);
    tp_all += tp[k];
    predicted_all += predicted[k];
    actual_all += actual[k];
  }
  m.micro_precision = ratio(tp_all, predicted_all);
  m.micro_recall = ratio(tp_all, actual_all);
  m.micro_f1 = f1_of(m.micro_precision, m.micro_recall);
  m.precision = m.micro_precision;
  m.recall = m.micro_recall;
  m.f1 = m.micro_f1;
  return m;
}

EvalMetrics compute_regression_metrics(std::span<const double> predictions, std::span<const double> targets,
                                       int num_targets, double loss_sum) {
  check_shape(predictions, targets, num_targets, "targets");
  const auto K = static_cast<std::size_t>(num_targets);
  const std::size_t n = targets.size() / K;
  EvalMetrics m;
  m.problem_type = "regression";
  m.count = static_cast<long>(n);
  m.loss = n ? loss_sum / static_cast<double>(n) : 0.0;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const double d = predictions[i] - targets[i];
    m.mse += d * d;
    m.mae += std::abs(d);
  }
  if (!targets.empty()) {
    m.mse /= static_cast<double>(targets.size());
    m.mae /= static_cast<double>(targets.size());
  }
  std::vector<double> p(n), t(n);
  for (std::size_t k = 0; k < K; ++k) {
    for (std::size_t i = 0; i < n; ++i) {
      p[i] = predictions[i * K + k];
      t[i] = targets[i * K + k];
    }
    m.pearson += pearson_correlation(p, t) / static_cast<double>(K);
    m.spearman += spearman_correlation(p, t) / static_cast<double>(K);
  }
  return m;
}

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

namespace {
std::string label_name(const std::vector<std::string>& names, std::size_t c) {
  return c < names.size() ? names[c] : fmt::format("LABEL_{}", c);
}

nlohmann::json per_class_json(const EvalMetrics& m, const std::vector<std::string>& label_names) {
  nlohmann::json per_class = nlohmann::json::array();
  for (std::size_t c = 0; c < m.per_class.size(); c++) {
    per_class.push_back({{"label", label_name(label_names, c)},
                         {"precision", m.per_class[c].precision},
                         {"recall", m.per_class[c].recall},
                         {"f1", m.per_class[c].f1},
                         {"support", m.per_class[c].support}});
  }
  return per_class;
}

// NaN (an undefined correlation) has no JSON spelling: null, as Python's json would refuse it.
nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }
}  // namespace

nlohmann::json metrics_to_json(const EvalMetrics& m, const std::string& prefix,
                               const std::vector<std::string>& label_names) {
  nlohmann::json j;
  j[prefix + "loss"] = m.loss;
  if (m.problem_type == "regression") {
    j[prefix + "mse"] = m.mse;
    j[prefix + "mae"] = m.mae;
    j[prefix + "pearson"] = number(m.pearson);
    j[prefix + "spearmanr"] = number(m.spearman);
    j[prefix + "samples"] = m.count;
    return j;
  }
  if (m.problem_type == "multi_label_classification") {
    j[prefix + "f1_micro"] = m.micro_f1;
    j[prefix + "f1_macro"] = m.macro_f1;
    j[prefix + "precision_micro"] = m.micro_precision;
    j[prefix + "recall_micro"] = m.micro_recall;
    j[prefix + "precision_macro"] = m.macro_precision;
    j[prefix + "recall_macro"] = m.macro_recall;
    j[prefix + "subset_accuracy"] = m.subset_accuracy;
    j[prefix + "samples"] = m.count;
    j["per_class"] = per_class_json(m, label_names);
    return j;
  }
  j[prefix + "accuracy"] = m.accuracy;
  j[prefix + "precision"] = m.precision;
  j[prefix + "recall"] = m.recall;
  j[prefix + "f1"] = m.f1;
  j[prefix + "precision_macro"] = m.macro_precision;
  j[prefix + "recall_macro"] = m.macro_recall;
  j[prefix + "f1_macro"] = m.macro_f1;
  j[prefix + "samples"] = m.count;
  j["confusion_matrix"] = m.confusion;
  j["per_class"] = per_class_json(m, label_names);
  return j;
}

void add_eval_speed(nlohmann::json& record, const EvalMetrics& m, long batch_size, double seconds) {
  const double batches = std::ceil(static_cast<double>(m.count) / static_cast<double>(std::max(1L, batch_size)));
  record["eval_runtime"] = seconds;
  record["eval_samples_per_second"] = seconds > 0 ? static_cast<double>(m.count) / seconds : 0.0;
  record["eval_steps_per_second"] = seconds > 0 ? batches / seconds : 0.0;
}

std::string eval_summary(const nlohmann::json& r) {
  auto v = [&](const char* key) {
    const auto it = r.find(std::string("eval_") + key);
    return it != r.end() && it->is_number() ? fmt::format("{:.4f}", it->get<double>()) : std::string("nan");
  };
  if (r.contains("eval_mse"))
    return fmt::format("loss {} mse {} mae {} pearson {} spearman {}", v("loss"), v("mse"), v("mae"), v("pearson"), v("spearmanr"));
  if (r.contains("eval_f1_micro"))
    return fmt::format("loss {} f1 micro {} macro {} subset accuracy {}", v("loss"), v("f1_micro"), v("f1_macro"),
                       v("subset_accuracy"));
  return fmt::format("loss {} accuracy {} precision {} recall {} f1 {}", v("loss"), v("accuracy"), v("precision"),
                     v("recall"), v("f1"));
}

std::string metrics_table(const EvalMetrics& m, const std::vector<std::string>& label_names) {
  auto name = [&](std::size_t c) { return label_name(label_names, c); };
  std::size_t width = 9;
  for (std::size_t c = 0; c < m.per_class.size(); c++) width = std::max(width, name(c).size());
  std::string out;
  if (m.problem_type == "regression") {
    return fmt::format("examples   {}\nloss       {:.4f}\nmse        {:.4f}\nmae        {:.4f}\npearson    {:.4f}\n"
                       "spearman   {:.4f}\n", m.count, m.loss, m.mse, m.mae, m.pearson, m.spearman);
  }
  if (m.problem_type == "multi_label_classification") {
    out += fmt::format("examples   {}\nloss       {:.4f}\nsubset accuracy {:.4f}   (every label of a row right)\n", m.count,
                       m.loss, m.subset_accuracy);
    out += fmt::format("precision  {:.4f}  recall {:.4f}  f1 {:.4f}   (micro)\n", m.micro_precision, m.micro_recall, m.micro_f1);
    out += fmt::format("precision  {:.4f}  recall {:.4f}  f1 {:.4f}   (macro)\n\n", m.macro_precision, m.macro_recall,
                       m.macro_f1);
    out += fmt::format("{:<{}}  precision  recall     f1         support\n", "label", width);
    for (std::size_t c = 0; c < m.per_class.size(); c++) {
      const ClassMetrics& cm = m.per_class[c];
      out += fmt::format("{:<{}}  {:<9.4f}  {:<9.4f}  {:<9.4f}  {}\n", name(c), width, cm.precision, cm.recall, cm.f1, cm.support);
    }
    return out;
  }
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
