// Metrics against hand-counted confusion matrices.
#include <gtest/gtest.h>

#include "core/error.h"
#include "train/eval_metrics.h"

using namespace tuneserve::train;

TEST(Metrics, BinaryByHand) {
  // labels:      1 1 1 0 0 0 0 1
  // predictions: 1 0 1 0 1 0 0 1   -> tp=3 fn=1 fp=1 tn=3
  std::vector<std::int64_t> y{1, 1, 1, 0, 0, 0, 0, 1}, p{1, 0, 1, 0, 1, 0, 0, 1};
  EvalMetrics m = compute_metrics(p, y, 2, 4.0);
  EXPECT_EQ(m.count, 8);
  EXPECT_DOUBLE_EQ(m.loss, 0.5);
  EXPECT_DOUBLE_EQ(m.accuracy, 6.0 / 8.0);
  EXPECT_TRUE(m.binary);
  EXPECT_DOUBLE_EQ(m.precision, 0.75);
  EXPECT_DOUBLE_EQ(m.recall, 0.75);
  EXPECT_DOUBLE_EQ(m.f1, 0.75);
  EXPECT_EQ(m.confusion[1][0], 1);
  EXPECT_EQ(m.confusion[0][1], 1);
  EXPECT_EQ(m.confusion[1][1], 3);
  EXPECT_EQ(m.per_class[0].support, 4);
}

TEST(Metrics, MulticlassMacroByHand) {
  // 3 classes. Class 0: tp 2, predicted 3, actual 2. Class 1: tp 1, predicted 1, actual 2.
  // Class 2: tp 0, predicted 0, actual 1 (precision undefined -> 0).
  std::vector<std::int64_t> y{0, 0, 1, 1, 2}, p{0, 0, 1, 0, 0};
  EvalMetrics m = compute_metrics(p, y, 3, 0.0);
  const double p0 = 2.0 / 4.0, r0 = 1.0, f0 = 2 * p0 * r0 / (p0 + r0);
  const double p1 = 1.0, r1 = 0.5, f1 = 2 * p1 * r1 / (p1 + r1);
  EXPECT_FALSE(m.binary);
  EXPECT_DOUBLE_EQ(m.per_class[0].precision, p0);
  EXPECT_DOUBLE_EQ(m.macro_precision, (p0 + p1 + 0.0) / 3);
  EXPECT_DOUBLE_EQ(m.macro_recall, (r0 + r1 + 0.0) / 3);
  EXPECT_DOUBLE_EQ(m.macro_f1, (f0 + f1 + 0.0) / 3);
  EXPECT_DOUBLE_EQ(m.f1, m.macro_f1);
  EXPECT_DOUBLE_EQ(m.accuracy, 3.0 / 5.0);
}

TEST(Metrics, JsonKeysAndTable) {
  std::vector<std::int64_t> y{0, 1}, p{0, 1};
  EvalMetrics m = compute_metrics(p, y, 2, 0.2);
  auto j = metrics_to_json(m, "eval_", {"neg", "pos"});
  EXPECT_DOUBLE_EQ(j["eval_accuracy"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["eval_loss"].get<double>(), 0.1);
  EXPECT_TRUE(j.contains("eval_f1_macro"));
  EXPECT_EQ(j["confusion_matrix"][1][1].get<long>(), 1);
  EXPECT_EQ(j["per_class"][0]["label"], "neg");
  const std::string table = metrics_table(m, {"neg", "pos"});
  EXPECT_NE(table.find("accuracy   1.0000"), std::string::npos) << table;
}

TEST(Metrics, RejectsOutOfRangeLabels) {
  std::vector<std::int64_t> y{0, 5}, p{0, 1};
  EXPECT_THROW(compute_metrics(p, y, 2, 0.0), tuneserve::Error);
  std::vector<std::int64_t> short_p{0};
  EXPECT_THROW(compute_metrics(short_p, y, 2, 0.0), tuneserve::Error);
}
