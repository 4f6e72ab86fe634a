// Console side of a training run shared by `tuneserve train` and `tuneserve quickstart`: a
// progress bar on a terminal (steps, it/s, loss, ETA), one plain line per log record otherwise,
// and Ctrl-C (SIGINT) turned into "checkpoint after this step, then stop".
#pragma once

#include <string>

#include "data/dataset.h"
#include "model/model.h"
#include "train/args.h"
#include "train/data_source.h"
#include "train/trainer.h"

namespace tuneserve::cli {

struct RunInputs {
  train::TrainingData data;
  Model model;
  std::string tokenizer_dir;  // what the model ships with (train::training_tokenizer)
};
// Threads, the data (raw files prepared in memory at min(max_length, the model's limit), or
// prepared directories cut there at batch time), the tokenizer checked against the data, and the
// model on `device` (a new head when the data has another number of labels), with what was done
// printed on stderr.
RunInputs load_run_inputs(const train::TrainArgs& args, const Device& device);

// "mm:ss" or "h:mm:ss".
std::string format_duration(double seconds);

// train_model with the console attached; SIGINT is handled only while it runs.
train::TrainOutcome train_with_console(Model& model, const train::TrainArgs& args, const data::TokenizedDataset& train,
                                       const data::TokenizedDataset* test, const train::TrainPaths& paths);

}  // namespace tuneserve::cli
