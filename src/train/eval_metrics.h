// Evaluation metrics per problem type (transformers' config.problem_type), as scikit-learn and
// scipy define them:
// - single_label_classification: accuracy, precision/recall/F1 (binary for two labels, positive
//   class 1, and macro over all labels; 0 where undefined), the confusion matrix;
// - multi_label_classification (a label is predicted when sigmoid(logit) >= 0.5): micro and macro
//   precision/recall/F1 over the (N, K) decisions, subset accuracy (every label of a row right:
//   accuracy_score on multi-label data), per-label precision/recall/F1;
// - regression: MSE and MAE over all (N, K) values; Pearson's r and Spearman's rho (scipy's
//   pearsonr / spearmanr, ranks averaged over ties; NaN when a side is constant) per target,
//   averaged over the K targets.
// Every kind has the mean loss.
//
// Dimensions: N examples, K labels (or regression targets).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tuneserve::train {

struct ClassMetrics {
  double precision = 0, recall = 0, f1 = 0;
  long support = 0;  // true examples of the class
};

struct EvalMetrics {
  std::string problem_type = "single_label_classification";
  long count = 0;                               // N
  double loss = 0;                              // mean loss over examples
  double accuracy = 0;
  std::vector<ClassMetrics> per_class;          // (K)
  double macro_precision = 0, macro_recall = 0, macro_f1 = 0;
  bool binary = false;                          // K == 2: precision/recall/f1 of class 1 below
  double precision = 0, recall = 0, f1 = 0;     // binary when K == 2, else the macro values
  std::vector<std::vector<long>> confusion;     // (K, K): [true][predicted] (single label)
  // multi-label (per_class and the macro values above are per label)
  double micro_precision = 0, micro_recall = 0, micro_f1 = 0;
  double subset_accuracy = 0;
  // regression
  double mse = 0, mae = 0, pearson = 0, spearman = 0;
};

// predictions (N) and labels (N) are label ids in [0, K); loss_sum is the summed per-example loss.
EvalMetrics compute_metrics(std::span<const std::int64_t> predictions,
                            std::span<const std::int64_t> labels, int num_labels, double loss_sum);

// logits and targets (N, K) row-major: 0/1 targets; a logit >= 0 (sigmoid >= 0.5) predicts the label.
EvalMetrics compute_multi_label_metrics(std::span<const double> logits, std::span<const double> targets,
                                        int num_labels, double loss_sum);

// predictions and targets (N, K) row-major.
EvalMetrics compute_regression_metrics(std::span<const double> predictions, std::span<const double> targets,
                                       int num_targets, double loss_sum);

// Pearson's r and Spearman's rho of two equally long series (NaN when either is constant or n < 2).
double pearson_correlation(std::span<const double> x, std::span<const double> y);
double spearman_correlation(std::span<const double> x, std::span<const double> y);

// Single label: {"loss", "accuracy", "precision", "recall", "f1", "precision_macro", "recall_macro", "f1_macro",
//  "confusion_matrix", "per_class": [...], "samples"}; keys prefixed with `prefix` (e.g. "eval_")
// except confusion_matrix and per_class. Multi-label: {"loss", "f1_micro", "f1_macro",
// "precision_micro", "recall_micro", "precision_macro", "recall_macro", "subset_accuracy",
// "per_class", "samples"}. Regression: {"loss", "mse", "mae", "pearson", "spearmanr", "samples"}
// (scipy's names; NaN is written as null).
nlohmann::json metrics_to_json(const EvalMetrics& metrics, const std::string& prefix,
                               const std::vector<std::string>& label_names);

// Trainer's speed figures of an evaluation of `metrics.count` rows in `seconds`, batches of
// `batch_size`: eval_runtime, eval_samples_per_second, eval_steps_per_second (eval_results.json's keys).
void add_eval_speed(nlohmann::json& record, const EvalMetrics& metrics, long batch_size, double seconds);

// A readable table: headline metrics, per-class rows, confusion matrix.
std::string metrics_table(const EvalMetrics& metrics, const std::vector<std::string>& label_names);

// One line of an evaluation record (metrics_to_json with prefix "eval_"): its headline metrics,
// whichever problem type made it.
std::string eval_summary(const nlohmann::json& record);

}  // namespace tuneserve::train
