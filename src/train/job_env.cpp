// SageMaker job contract: environment variables, hyperparameters.json, channels, failure file.
#include "train/job_env.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/error.h"
#include "core/json.h"

namespace tuneserve::train {

namespace fs = std::filesystem;

namespace {

std::string env_or(const char* name, const std::string& fallback, bool* found) {
  const char* v = std::getenv(name);
  if (v != nullptr && *v != '\0') {
    *found = true;
    return v;
  }
  return fallback;
}

int env_int(const char* name, bool* found) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return 0;
  *found = true;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || n < 0) fail("environment {}: '{}' is not a non-negative integer", name, v);
  return static_cast<int>(n);
}

bool is_data_file(const fs::path& p) {
  std::string name = p.filename().string();
  if (name.ends_with(".gz")) name.resize(name.size() - 3);
  return name.ends_with(".csv") || name.ends_with(".tsv") || name.ends_with(".jsonl") ||
         name.ends_with(".json");
}

}  // namespace

JobEnv detect_job_env(const std::string& root_override) {
  JobEnv env;
  bool found = false;
  env.root = root_override.empty() ? env_or("TUNESERVE_SM_ROOT", "/opt/ml", &found) : root_override;
  found = found || !root_override.empty();
  env.hyperparameters_path = env.root + "/input/config/hyperparameters.json";
  // Naming a root (flag or TUNESERVE_SM_ROOT) asks for the job contract even without SM_* variables.
  bool any = found;
  if (fs::exists(env.hyperparameters_path)) {
    any = true;
    env.hyperparameters = read_json_file(env.hyperparameters_path);
    if (!env.hyperparameters.is_object()) fail("{}: not a JSON object", env.hyperparameters_path);
  }
  env.model_dir = env_or("SM_MODEL_DIR", env.root + "/model", &any);
  env.channel_train = env_or("SM_CHANNEL_TRAIN", env.root + "/input/data/train", &any);
  env.channel_test = env_or("SM_CHANNEL_TEST", env.root + "/input/data/test", &any);
  env.output_data_dir = env_or("SM_OUTPUT_DATA_DIR", env.root + "/output/data", &any);
  env.checkpoint_dir = env.root + "/checkpoints";
  env.num_gpus = env_int("SM_NUM_GPUS", &any);
  env.num_cpus = env_int("SM_NUM_CPUS", &any);
  if (const char* hosts = std::getenv("SM_HOSTS"); hosts && *hosts) {
    any = true;
    nlohmann::json list;
    try {
      list = parse_json(hosts, "environment SM_HOSTS");
    } catch (const JsonError&) {
      list = nullptr;
    }
    if (!list.is_array() || list.empty())
      fail("environment SM_HOSTS: '{}' is not a JSON list of host names", hosts);
    for (const auto& h : list) {
      if (!h.is_string() || h.get<std::string>().empty())
        fail("environment SM_HOSTS: '{}' holds {}, not a host name", hosts, h.dump());
      env.hosts.push_back(h.get<std::string>());
    }
  }
  env.current_host = env_or("SM_CURRENT_HOST", "", &any);
  env.network_interface = env_or("SM_NETWORK_INTERFACE_NAME", "eth0", &any);
  env.active = any;
  return env;
}

std::string resolve_data_path(const std::string& path, const std::string& what) {
  if (!fs::exists(path)) fail("{}: {} does not exist", what, path);
  if (!fs::is_directory(path)) return path;
  if (fs::exists(fs::path(path) / "manifest.json")) return path;  // a prepared dataset
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(path)) {
    if (entry.is_regular_file() && is_data_file(entry.path())) files.push_back(entry.path().string());
  }
  if (files.size() == 1) return files[0];
  if (files.empty())
    fail("{}: {} holds no data file (.csv, .tsv, .jsonl, optionally .gz) and no prepared dataset (manifest.json)",
         what, path);
  std::string list;
  for (const auto& f : files) list += (list.empty() ? "" : ", ") + f;
  fail("{}: {} holds several data files ({}); name one", what, path, list);
}

void apply_job_env(const JobEnv& env, TrainArgs& args, int local_ranks) {
  if (!env.active) return;
  args.output_dir = env.checkpoint_dir;
  if (fs::exists(env.channel_train)) args.train = env.channel_train;
  if (fs::exists(env.channel_test)) args.test = env.channel_test;
  if (env.num_cpus > 0) args.threads = std::max(1, env.num_cpus / std::max(1, local_ranks));
  apply_hyperparameters_json(args, env.hyperparameters, env.hyperparameters_path);
  args.model_dir = env.model_dir;
}

void write_failure(const JobEnv& env, const std::string& reason) {
  std::error_code ec;
  fs::create_directories(fs::path(env.failure_path()).parent_path(), ec);
  std::ofstream out(env.failure_path(), std::ios::trunc);
  out << reason << "\n";
}

}  // namespace tuneserve::train
