// The lines a training run prints, in transformers Trainer's form: each log record as the Python
// dict Trainer prints (`{'loss': 0.6931, 'grad_norm': 1.02, 'learning_rate': 4.5e-05, 'epoch': 0.2}`),
// so the `metric_definitions` regexes of the Hugging Face SageMaker examples
// (`'loss': ([0-9]+(.|e\-)[0-9]+),?`) read our jobs' logs as they read Trainer's.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace tuneserve::train {

// Python's repr() of a float: shortest round trip, "1.0" not "1", "5e-05", "inf", "nan".
std::string python_float(double value);

// One record of metrics.jsonl (a training log, an evaluation) or train_results.json as Trainer
// prints it: training {'loss', 'grad_norm', 'learning_rate', 'epoch'}; evaluation {'eval_loss', the
// other eval_ metrics, 'eval_runtime', 'eval_samples_per_second', 'eval_steps_per_second', 'epoch'};
// the run's summary {'train_runtime', 'train_samples_per_second', 'train_steps_per_second',
// 'train_loss', 'epoch'}. Values are rounded as Trainer rounds them (losses to 4 places, epochs to 2).
std::string trainer_log_line(const nlohmann::json& record);

}  // namespace tuneserve::train
