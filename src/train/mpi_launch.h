// A SageMaker training job with MPI, as the Hugging Face estimator's
// distribution={"mpi": {"enabled": True, "processes_per_host": N, "custom_mpi_options": "..."}} asks
// for it, run the way sagemaker-training-toolkit runs one: SageMaker starts `tuneserve train` once
// on every instance; the first host of SM_HOSTS (the master) starts `mpirun` over all hosts with the
// same command line, and every other host waits while mpirun's daemon (orted, reached over SSH)
// runs its ranks there.
//
// Mapping (hyperparameters.json keys the estimator writes -> what runs):
//   sagemaker_mpi_enabled                     true: this launcher; absent/false: one process per host
//   sagemaker_mpi_num_of_processes_per_host   ranks per host (default SM_NUM_GPUS, or 1 on CPUs)
//   sagemaker_mpi_num_processes               ranks in all (default: per host x hosts)
//   sagemaker_mpi_custom_mpi_options          extra mpirun options, split on spaces
//   SM_HOSTS, SM_CURRENT_HOST                 `--host algo-1:N,algo-2:N`; who is the master
//   SM_NETWORK_INTERFACE_NAME                 MPI's and NCCL's TCP interface between hosts
// Each rank then trains on cuda:<local rank> (GPUs) or SM_NUM_CPUS / N threads (CPUs); rank 0 runs
// on the master and writes /opt/ml/model.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "train/job_env.h"

namespace tuneserve::train {

struct MpiJob {
  bool enabled = false;
  int processes_per_host = 1;
  int processes = 0;                // 0: processes_per_host x hosts
  std::vector<std::string> custom_options;
  std::vector<std::string> hosts;   // one entry (this host) when SM_HOSTS is absent
  std::string current_host;
  std::string network_interface;
  bool master() const { return current_host == hosts.front(); }
};

// The MPI settings of a SageMaker job (errors name the hyperparameter or variable).
MpiJob mpi_job(const JobEnv& env);

// The master's mpirun command line running `program` (argv, absolute path first) on every rank,
// passing the variables named in `forward_env` on to the other hosts.
std::vector<std::string> mpirun_command(const MpiJob& job, const std::vector<std::string>& forward_env,
                                        const std::vector<std::string>& program);

// How a stopping job reaches its ranks. SageMaker stops a job with SIGTERM to each host's launcher.
// mpirun does not pass SIGTERM on: it sends each rank SIGCONT, waits odls_base_sigkill_timeout
// seconds (1), sends SIGTERM, waits as long again, then SIGKILL (OpenMPI 4.1's odls: measured here,
// ranks got SIGTERM 6 s after mpirun with a timeout of 6), so a timeout long enough for a checkpoint
// would delay every stop, and the end of a job whose rank crashed, by twice as long. SIGUSR1 it
// passes on to every rank at once; a rank takes it as SIGTERM (cli/train_console.h: checkpoint after
// this step, exit 0).
inline constexpr int kRankStopSignal = SIGUSR1;

// The launcher's stop signals, which `train` takes on a thread of its own (cli/train_console.h).
struct StopSignals {
  // From now on every stop signal goes to `child`, the first as `first_as` (0: as it came); with
  // `child` 0 they are kept until a child is named (cli::forward_stop_signals).
  std::function<void(pid_t child, int first_as)> forward_to;
  std::function<int()> received;  // how many came since the first forward_to
};

// Runs this host's part of the job and returns the exit status for the container: the master waits
// for the workers' SSH port, runs mpirun with this process's own command line and returns its status;
// a worker starts sshd and returns once the MPI daemon mpirun started here has ended.
// Stopping (SIGTERM or SIGINT): the master passes the first on to mpirun as kRankStopSignal, so that
// every rank saves rank 0's checkpoint after its step and exits 0, and later ones as they came
// (mpirun then ends the ranks its own way); it exits with mpirun's status. A worker keeps waiting
// for its ranks, which the master stops (were it to exit, the container and its ranks would go at
// once), for at most 100 s: SageMaker ends a container 120 s after SIGTERM.
int run_sagemaker_mpi(const MpiJob& job, const StopSignals& signals);

}  // namespace tuneserve::train
