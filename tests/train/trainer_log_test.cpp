// train/trainer_log.h: log lines in transformers Trainer's dict form, read with the
// `metric_definitions` regexes of the Hugging Face SageMaker examples (copied as users copy them).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <regex>
#include <string>

#include <nlohmann/json.hpp>

#include "train/trainer_log.h"

namespace {

using tuneserve::train::python_float;
using tuneserve::train::trainer_log_line;

// The value a SageMaker metric definition extracts from `line`, or "" when it does not match.
std::string metric(const std::string& line, const std::string& name) {
  // As in the examples: "'loss': ([0-9]+(.|e\-)[0-9]+),?" (ECMAScript reads "\-" as "-" here too).
  const std::regex re("'" + name + "': ([0-9]+(.|e\\-)[0-9]+),?");
  std::smatch m;
  return std::regex_search(line, m, re) ? m[1].str() : "";
}

TEST(TrainerLog, PythonFloatIsPythonsRepr) {
  // Expected strings are Python 3's repr() of the same doubles.
  EXPECT_EQ(python_float(1.0), "1.0");
  EXPECT_EQ(python_float(0.0), "0.0");
  EXPECT_EQ(python_float(5e-05), "5e-05");
  EXPECT_EQ(python_float(4.5e-05), "4.5e-05");
  EXPECT_EQ(python_float(0.0001), "0.0001");
  EXPECT_EQ(python_float(0.00025), "0.00025");
  EXPECT_EQ(python_float(1e16), "1e+16");
  EXPECT_EQ(python_float(123456789.0), "123456789.0");
  EXPECT_EQ(python_float(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(python_float(std::numeric_limits<double>::quiet_NaN()), "nan");
  EXPECT_EQ(python_float(-std::numeric_limits<double>::infinity()), "-inf");
}

TEST(TrainerLog, TrainingRecordsReadWithTheSageMakerRegexes) {
  const nlohmann::json record = {{"step", 10}, {"epoch", 0.20833333}, {"loss", 0.693147}, {"lr", 4.5e-05},
                                 {"grad_norm", 1.25}, {"samples_per_second", 31.5}};
  const std::string line = trainer_log_line(record);
  EXPECT_EQ(line, "{'loss': 0.6931, 'grad_norm': 1.25, 'learning_rate': 4.5e-05, 'epoch': 0.21}");
  EXPECT_EQ(metric(line, "loss"), "0.6931");
  EXPECT_EQ(metric(line, "epoch"), "0.21");
  // The examples' regex stops at the exponent's "e": Trainer's own 4.5e-05 reads as 4.5 in
  // SageMaker, and so does ours, the same way.
  EXPECT_EQ(metric(line, "learning_rate"), "4.5");
  EXPECT_EQ(metric(trainer_log_line({{"loss", 2.0}, {"lr", 5e-05}, {"grad_norm", 3.0}, {"epoch", 1.0}}), "epoch"), "1.0")
      << "a whole epoch prints as 1.0, which the regex needs (it wants a digit after the point)";
}

TEST(TrainerLog, EvaluationAndSummaryRecords) {
  const nlohmann::json eval = {{"step", 40},          {"epoch", 1.0},          {"eval_loss", 0.41},
                               {"eval_accuracy", 0.8125}, {"eval_f1", 0.8},     {"eval_precision", 0.75},
                               {"eval_recall", 0.857}, {"eval_samples", 32},     {"eval_runtime", 1.234567},
                               {"eval_samples_per_second", 25.92001}, {"eval_steps_per_second", 3.24},
                               {"confusion_matrix", {{10, 2}, {4, 16}}}};
  const std::string line = trainer_log_line(eval);
  EXPECT_TRUE(line.starts_with("{'eval_loss': 0.41, 'eval_accuracy': 0.8125, ")) << line;
  EXPECT_NE(line.find("'eval_runtime': 1.2346, 'eval_samples_per_second': 25.92, 'eval_steps_per_second': 3.24, "
                      "'epoch': 1.0}"),
            std::string::npos)
      << line;
  EXPECT_EQ(line.find("eval_samples'"), std::string::npos) << "counts are not in Trainer's dict: " << line;
  EXPECT_EQ(line.find("confusion"), std::string::npos) << line;
  for (const char* name : {"eval_loss", "eval_accuracy", "eval_f1", "eval_precision", "eval_recall", "eval_runtime",
                           "eval_samples_per_second", "epoch"})
    EXPECT_NE(metric(line, name), "") << name << " not found by its regex in " << line;
  EXPECT_EQ(metric(line, "eval_accuracy"), "0.8125");
  EXPECT_EQ(metric(line, "loss"), "") << "'loss' must not match inside 'eval_loss'";

  const nlohmann::json summary = {{"epoch", 3.0}, {"global_step", 12}, {"train_loss", 0.55}, {"train_runtime", 9.87654},
                                  {"train_samples", 64}, {"train_samples_per_second", 19.4412},
                                  {"train_steps_per_second", 1.2151}};
  EXPECT_EQ(trainer_log_line(summary), "{'train_runtime': 9.8765, 'train_samples_per_second': 19.441, "
                                       "'train_steps_per_second': 1.215, 'train_loss': 0.55, 'epoch': 3.0}");
}

}  // namespace
