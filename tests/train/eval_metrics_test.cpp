// Metrics against hand-counted confusion matrices, hand-computed correlations and numpy references.
#include <gtest/gtest.h>

#include <cmath>

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

TEST(Metrics, CorrelationsByHand) {
  // x - 3 = -2 -1 0 1 2, y - 3 = -1 -2 1 0 2: sxy 8, sxx = syy = 10 -> 0.8 (no ties: Spearman the same).
  const std::vector<double> x{1, 2, 3, 4, 5}, y{2, 1, 4, 3, 5};
  EXPECT_DOUBLE_EQ(pearson_correlation(x, y), 0.8);
  EXPECT_DOUBLE_EQ(spearman_correlation(x, y), 0.8);
  // Ties take the mean rank: ranks 1 2.5 2.5 4 against 1 3 2 4 -> 4.5 / sqrt(4.5 * 5) (scipy 0.9486832980505138).
  const std::vector<double> a{1, 2, 2, 3}, b{1, 3, 2, 4};
  EXPECT_NEAR(spearman_correlation(a, b), 4.5 / std::sqrt(22.5), 1e-15);
  EXPECT_NEAR(spearman_correlation(a, b), 0.9486832980505138, 1e-12);
  // Undefined (a constant side, fewer than 2 values): NaN, as scipy.
  EXPECT_TRUE(std::isnan(pearson_correlation(std::vector<double>{1, 1, 1}, std::vector<double>{1, 2, 3})));
  EXPECT_TRUE(std::isnan(spearman_correlation(std::vector<double>{1}, std::vector<double>{2})));
  EXPECT_THROW(pearson_correlation(x, a), tuneserve::Error);
}

TEST(Metrics, RegressionAgainstNumpy) {
  // Values and references from numpy 1.24 (np.corrcoef; Spearman as np.corrcoef of average ranks,
  // which is scipy.stats.spearmanr's definition); t holds a tie (rows 3 and 5).
  const std::vector<double> p{2.041, -2.556, 0.418, -0.568, -0.453, -0.216, -2.02, -0.232, -0.865, 3.323, 0.226, -0.353};
  const std::vector<double> t{0.739, -1.946, -0.846, -0.347, 0.255, -0.347, -0.052, -0.316, -0.408, 3.207, 0.658, -0.682};
  EvalMetrics m = compute_regression_metrics(p, t, 1, 6.0);
  EXPECT_EQ(m.problem_type, "regression");
  EXPECT_EQ(m.count, 12);
  EXPECT_DOUBLE_EQ(m.loss, 0.5);
  EXPECT_NEAR(m.pearson, 0.8317428523491008, 1e-12);
  EXPECT_NEAR(m.spearman, 0.5253948512537597, 1e-12);
  EXPECT_NEAR(m.mse, 0.7191263333333334, 1e-12);
  EXPECT_NEAR(m.mae, 0.6351666666666668, 1e-12);
  // Two targets per row: MSE/MAE over every value, correlations per target then averaged.
  const std::vector<double> p2{1, 10, 2, 30, 3, 20}, t2{1, 1, 2, 3, 4, 2};
  m = compute_regression_metrics(p2, t2, 2, 0.0);
  EXPECT_EQ(m.count, 3);
  EXPECT_DOUBLE_EQ(m.mse, (0 + 81 + 0 + 27 * 27 + 1 + 18 * 18) / 6.0);
  EXPECT_NEAR(m.spearman, (1.0 + 1.0) / 2, 1e-12);
  const auto j = metrics_to_json(m, "eval_", {});
  for (const char* key : {"eval_loss", "eval_mse", "eval_mae", "eval_pearson", "eval_spearmanr", "eval_samples"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_FALSE(j.contains("eval_accuracy"));
  // NaN has no JSON spelling: null.
  EXPECT_TRUE(metrics_to_json(compute_regression_metrics(std::vector<double>{1, 1}, std::vector<double>{1, 2}, 1, 0), "", {})["pearson"]
                  .is_null());
  EXPECT_THROW(compute_regression_metrics(p2, t, 1, 0), tuneserve::Error);
}

TEST(Metrics, MultiLabelByHand) {
  // targets      logits            predicted (logit >= 0, i.e. sigmoid >= 0.5)
  // 1 0 1        2   -1   0.5      1 0 1   all right
  // 0 1 0        0   -0.3 -2       1 0 0
  // 1 1 0        1    1   -1       1 1 0   all right
  // label 0: tp 2, predicted 3, true 2 -> p 2/3 r 1 f1 0.8; label 1: tp 1, 1, 2 -> 1, 0.5, 2/3;
  // label 2: tp 1, 1, 1 -> 1, 1, 1. Micro: tp 4, predicted 5, true 5 -> 0.8 each.
  const std::vector<double> t{1, 0, 1, 0, 1, 0, 1, 1, 0}, z{2, -1, 0.5, 0, -0.3, -2, 1, 1, -1};
  const EvalMetrics m = compute_multi_label_metrics(z, t, 3, 3.0);
  EXPECT_EQ(m.problem_type, "multi_label_classification");
  EXPECT_EQ(m.count, 3);
  EXPECT_DOUBLE_EQ(m.loss, 1.0);
  EXPECT_DOUBLE_EQ(m.subset_accuracy, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.micro_precision, 0.8);
  EXPECT_DOUBLE_EQ(m.micro_recall, 0.8);
  EXPECT_NEAR(m.micro_f1, 0.8, 1e-15);
  EXPECT_NEAR(m.per_class[0].f1, 0.8, 1e-15);
  EXPECT_NEAR(m.per_class[1].f1, 2.0 / 3.0, 1e-15);
  EXPECT_DOUBLE_EQ(m.per_class[2].f1, 1.0);
  EXPECT_NEAR(m.macro_f1, (0.8 + 2.0 / 3.0 + 1.0) / 3.0, 1e-15);
  EXPECT_EQ(m.per_class[1].support, 2);
  const auto j = metrics_to_json(m, "eval_", {"a", "b", "c"});
  EXPECT_DOUBLE_EQ(j["eval_f1_macro"].get<double>(), m.macro_f1);
  EXPECT_DOUBLE_EQ(j["eval_subset_accuracy"].get<double>(), 2.0 / 3.0);
  EXPECT_EQ(j["per_class"][2]["label"], "c");
  EXPECT_NE(eval_summary(j).find("subset accuracy 0.6667"), std::string::npos) << eval_summary(j);
  // Targets are 0 or 1.
  EXPECT_THROW(compute_multi_label_metrics(std::vector<double>{0.5}, std::vector<double>{0.5}, 1, 0), tuneserve::Error);
}
