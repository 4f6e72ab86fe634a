// Console side of a training run shared by `tuneserve train` and `tuneserve quickstart`: a
// progress bar on a terminal (steps, it/s, loss, ETA), one plain line per log record otherwise,
// and Ctrl-C (SIGINT) turned into "checkpoint after this step, then stop".
#pragma once

#include <string>

#include "data/dataset.h"
#include "model/model.h"
#include "train/args.h"
#include "train/data_source.h"
#include "train/run_inputs.h"
#include "train/trainer.h"

namespace tuneserve::cli {

// train::load_run_inputs (train/run_inputs.h) with its notes printed on stderr.
train::RunInputs load_run_inputs(const train::TrainArgs& args, const Device& device);

// "mm:ss" or "h:mm:ss".
std::string format_duration(double seconds);

// train_model with the console attached; SIGINT is handled only while it runs.
train::TrainOutcome train_with_console(Model& model, const train::TrainArgs& args, const data::TokenizedDataset& train,
                                       const data::TokenizedDataset* test, const train::TrainPaths& paths);

}  // namespace tuneserve::cli
