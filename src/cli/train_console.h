// Console side of a training run shared by `tuneserve train` and `tuneserve quickstart`: a
// progress bar on a terminal (steps, it/s, loss, ETA), each log record as the dict line transformers'
// Trainer prints (train/trainer_log.h),
// and Ctrl-C (SIGINT) or SIGTERM (SageMaker stopping a job, a spot interruption, Kubernetes)
// turned into "checkpoint after this step, then stop".
#pragma once

#include <sys/types.h>

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

// SIGINT, SIGTERM and SIGUSR1 (train::kRankStopSignal) for a command that trains: blocked in the
// calling thread, and so in every thread started after it (OpenMP's, oneDNN's, MPI's, the gradient
// thread), and received by one thread of their own (sigwait). Call it first in the command, before
// any other thread exists.
// Why not a handler: a handler runs on whichever thread the signal interrupts, its frame pushed below
// that thread's stack pointer, and oneDNN's AVX2 sgemm kernel (Debian's oneDNN 2.6; fixed upstream in
// oneDNN 3.11, issue 4845) points the stack pointer into a heap workspace while it runs: a signal
// arriving then wrote its frame over malloc's chunk headers (issue 11: about 1 in 15 SIGTERM stops
// at AVX2 aborted with "corrupted size vs. prev_size"). Outside train_with_console a signal ends the
// process at once, as without handling.
void take_stop_signals();

// For a process that only waits on a child which stops the job its own way (the SageMaker MPI
// launcher and its mpirun): from now on no stop signal ends this process; every one, a second
// included (the child's own second-signal rules apply), is sent on to `child`, the first as
// `first_as` when not 0. With `child` 0 they are kept, and sent to the child a later call names;
// call it with 0 again before reaping the child, so that no signal reaches a process that reuses
// its pid. Requires take_stop_signals.
void forward_stop_signals(pid_t child, int first_as = 0);

// How many SIGINT/SIGTERM arrived since the first forward_stop_signals.
int stop_signals_received();

// train_model with the console attached (on rank 0 of a data-parallel `group`): the first SIGINT,
// SIGTERM or SIGUSR1 while it runs stops after the current step with a checkpoint, a second one ends
// the process at once. Requires take_stop_signals.
train::TrainOutcome train_with_console(Model& model, const train::TrainArgs& args, const data::TokenizedDataset& train,
                                       const data::TokenizedDataset* test, const train::TrainPaths& paths,
                                       const train::ProcessGroup* group = nullptr);

// One line in transformers Trainer's form (train/trainer_log.h) on stderr, or as the message of a
// log record with --log-format json; either way the SageMaker examples' metric regexes match it.
void print_trainer_line(const std::string& line);

// The exit status of a run that a signal stopped (its checkpoint saved): 130 after Ctrl-C, as a
// shell reports it; 0 after SIGTERM or SIGUSR1, an orchestrator's request to stop, which was honoured.
int interrupted_exit_code();

}  // namespace tuneserve::cli
