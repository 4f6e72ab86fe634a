// Settings of `tuneserve serve`, from (lowest to highest precedence) defaults, a JSON config file,
// the SageMaker / TEI environment variables that mean the same thing, and command-line flags.
// One table names each setting once: flag --max-batch-tokens, file key max_batch_tokens, env.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "serve/batcher.h"
#include "serve/server.h"

namespace tuneserve::serve {

struct ServeOptions {
  std::string model;       // model directory, Hub id, s3:// URI or model.tar.gz (storage/resolve.h)
  std::string tokenizer;   // tokenizer directory or Hub id; default: the model's
  std::string revision = "main";  // Hub branch, tag or commit
  std::string model_name = "model";
  std::string task = "text-classification";
  std::string handler;     // handler plugin (.so)
  int threads = 0;         // OpenMP threads per forward pass; 0: cores / workers
  std::string device;      // cpu | cuda | cuda:N (empty: cpu); checked before the port is bound
  std::string dtype = "fp32";  // what the products compute in: fp32 | bf16 (checked before the port is bound)
  bool weight_check = true;  // Pipeline::Options::check_weights
  ServerConfig server;
  BatchConfig batch;
  bool workers_given = false;  // false: serve starts as many workers as CPUs (and memory) allow
};

struct Setting {
  std::string name;              // config-file key; the flag is --name with '-' for '_'
  std::vector<std::string> env;  // environment variables, first found wins
  std::string help;
  std::function<void(ServeOptions&, const std::string&)> set;  // throws Error on a bad value
};

const std::vector<Setting>& serve_settings();
std::string flag_of(const Setting& setting);  // "--max-batch-tokens"

// `where` names the source in errors ("config.json: max_batch_tokens", "env MAX_BATCH_TOKENS").
void apply_setting(ServeOptions& options, const Setting& setting, const std::string& value,
                   const std::string& where);
// A JSON object of setting names to values (strings, numbers or booleans).
void apply_config_file(ServeOptions& options, const std::string& path);
void apply_environment(ServeOptions& options,
                       const std::function<const char*(const char*)>& getenv);

}  // namespace tuneserve::serve
