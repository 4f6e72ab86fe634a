// The SageMaker training-job contract, when present: hyperparameters from
// <root>/input/config/hyperparameters.json, data channels and output places from SM_* variables,
// and <root>/output/failure written with the reason when the job fails.
//
// <root> is /opt/ml unless TUNESERVE_SM_ROOT (or --sagemaker-root) says otherwise, so tests can
// run a job in a temporary directory. Defaults follow SageMaker's layout under <root>:
//   SM_MODEL_DIR        <root>/model              final model (HF directory)
//   SM_CHANNEL_TRAIN    <root>/input/data/train   training data (a file or a directory holding one)
//   SM_CHANNEL_TEST     <root>/input/data/test    evaluation data
//   SM_OUTPUT_DATA_DIR  <root>/output/data        metrics, eval results, report
//   checkpoints         <root>/checkpoints        (SageMaker syncs this folder for resumption)
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/args.h"

namespace tuneserve::train {

struct JobEnv {
  bool active = false;           // a hyperparameters.json or any SM_* variable was found
  std::string root;              // <root>
  std::string hyperparameters_path;
  nlohmann::json hyperparameters = nlohmann::json::object();
  std::string model_dir, channel_train, channel_test, output_data_dir, checkpoint_dir;
  int num_gpus = 0;
  int num_cpus = 0;              // 0: not given
  // A job of several instances: SM_HOSTS (a JSON list, "algo-1" first), SM_CURRENT_HOST, and the
  // interface the instances reach each other on (SM_NETWORK_INTERFACE_NAME). One host when absent.
  std::vector<std::string> hosts;
  std::string current_host;
  std::string network_interface = "eth0";

  std::string failure_path() const { return root + "/output/failure"; }
};

// Reads the environment (and the hyperparameters file, Error naming it when malformed).
// `root_override` (--sagemaker-root) wins over TUNESERVE_SM_ROOT and /opt/ml.
JobEnv detect_job_env(const std::string& root_override = "");

// A data channel may be a file, a `tuneserve prep` directory, or a directory holding exactly one
// data file (csv/tsv/jsonl, optionally .gz); returns the path to use. Error lists what it found.
std::string resolve_data_path(const std::string& path, const std::string& what);

// Job defaults, applied before the command line (which wins): output_dir = <root>/checkpoints,
// train/test = the channels that exist, threads = SM_NUM_CPUS shared by the `local_ranks` processes
// training on this host, then hyperparameters.json; last, model_dir = SM_MODEL_DIR whatever the
// hyperparameters said, since that is the folder SageMaker uploads as the job's model (a Trainer
// script's output_dir is only its working directory).
void apply_job_env(const JobEnv& env, TrainArgs& args, int local_ranks = 1);

// Writes the reason to <root>/output/failure (creating folders); never throws.
void write_failure(const JobEnv& env, const std::string& reason);

}  // namespace tuneserve::train
