// Console side of a training run shared by `tuneserve train` and `tuneserve quickstart`: a
// progress bar on a terminal (steps, it/s, loss, ETA), each log record as the dict line transformers'
// Trainer prints (train/trainer_log.h),
// and Ctrl-C (SIGINT) or SIGTERM (SageMaker stopping a job, a spot interruption, Kubernetes)
// turned into "checkpoint after this step, then stop".
#pragma once

#include <string>

#include "data/dataset.h"
#include "model/model.h"
#include "train/args.h"
#include "train/data_source.h"
#include "train/distributed.h"
#include "train/run_inputs.h"
#include "train/trainer.h"

namespace tuneserve::cli {

// train::load_run_inputs (train/run_inputs.h) with its notes printed on stderr when `report` (in a
// data-parallel job, rank 0 only).
train::RunInputs load_run_inputs(const train::TrainArgs& args, const Device& device, bool report = true);

// "mm:ss" or "h:mm:ss".
std::string format_duration(double seconds);

// train_model with the console attached (on rank 0 of a data-parallel `group`); SIGINT and SIGTERM
// are handled only while it runs.
train::TrainOutcome train_with_console(Model& model, const train::TrainArgs& args, const data::TokenizedDataset& train,
                                       const data::TokenizedDataset* test, const train::TrainPaths& paths,
                                       const train::ProcessGroup* group = nullptr);

// One line in transformers Trainer's form (train/trainer_log.h) on stderr, or as the message of a
// log record with --log-format json; either way the SageMaker examples' metric regexes match it.
void print_trainer_line(const std::string& line);

// The exit status of a run that a signal stopped (its checkpoint saved): 130 after Ctrl-C, as a
// shell reports it; 0 after SIGTERM, the orchestrator's request to stop, which was honoured.
int interrupted_exit_code();

}  // namespace tuneserve::cli
