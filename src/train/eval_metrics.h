// Classification metrics for evaluation: accuracy, precision/recall/F1 (binary for two labels,
// positive class 1, and macro over all labels, as scikit-learn defines them, 0 where undefined),
// mean loss and the confusion matrix.
//
// Dimensions: N examples, K labels.
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
  long count = 0;                               // N
  double loss = 0;                              // mean loss over examples
  double accuracy = 0;
  std::vector<ClassMetrics> per_class;          // (K)
  double macro_precision = 0, macro_recall = 0, macro_f1 = 0;
  bool binary = false;                          // K == 2: precision/recall/f1 of class 1 below
  double precision = 0, recall = 0, f1 = 0;     // binary when K == 2, else the macro values
  std::vector<std::vector<long>> confusion;     // (K, K): [true][predicted]
};

// predictions (N) and labels (N) are label ids in [0, K); loss_sum is the summed per-example loss.
EvalMetrics compute_metrics(std::span<const std::int64_t> predictions,
                            std::span<const std::int64_t> labels, int num_labels, double loss_sum);

// {"loss", "accuracy", "precision", "recall", "f1", "precision_macro", "recall_macro", "f1_macro",
//  "confusion_matrix", "per_class": [...], "samples"}; keys prefixed with `prefix` (e.g. "eval_")
// except confusion_matrix and per_class.
nlohmann::json metrics_to_json(const EvalMetrics& metrics, const std::string& prefix,
                               const std::vector<std::string>& label_names);

// Trainer's speed figures of an evaluation of `metrics.count` rows in `seconds`, batches of
// `batch_size`: eval_runtime, eval_samples_per_second, eval_steps_per_second (eval_results.json's keys).
void add_eval_speed(nlohmann::json& record, const EvalMetrics& metrics, long batch_size, double seconds);

// A readable table: headline metrics, per-class rows, confusion matrix.
std::string metrics_table(const EvalMetrics& metrics, const std::vector<std::string>& label_names);

}  // namespace tuneserve::train
