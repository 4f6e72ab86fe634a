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

// Runs this host's part of the job and returns the exit status for the container: the master waits
// for the workers' SSH port, runs mpirun with this process's own command line and returns its status;
// a worker starts sshd and returns once the MPI daemon mpirun started here has ended.
int run_sagemaker_mpi(const MpiJob& job);

}  // namespace tuneserve::train
