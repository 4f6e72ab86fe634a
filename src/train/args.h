// The training job's hyperparameters (transformers TrainingArguments names and defaults where
// they exist) and the one table that both the command line and a SageMaker
// hyperparameters.json set them through, so a flag and a JSON key can never disagree.
//
// Every hyperparameter is spelled `--train-batch-size` and `--train_batch_size` on the command
// line and `train_batch_size` in JSON; transformers' longer names are accepted as aliases
// (`per_device_train_batch_size`, `num_train_epochs`, `evaluation_strategy`, ...).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tuneserve::train {

struct TrainArgs {
  // What to train on and with.
  // model, tokenizer, train, test and output_dir also take Hub ids and s3:// URIs (storage/resolve.h).
  std::string model;          // HF model directory (config.json + model.safetensors) or Hub id
  std::string tokenizer;      // tokenizer directory or Hub id; default: the model's
  std::string revision = "main";  // Hub branch, tag or commit of model and tokenizer
  std::string train;          // raw data file (csv/tsv/jsonl[.gz]) or a `tuneserve prep` directory
  std::string test;           // the same, for evaluation (optional)
  std::string text = "text";  // text column, or "a,b" for pairs
  std::string label = "label";
  std::string label_map;      // "1:0,2:1" raw label -> id
  std::string label_names;    // "negative,positive": id2label for the data's label ids
  // Raw files: what the label column(s) hold (data::kSingleLabel, kMultiLabel, kRegression; empty:
  // single-label); prepared directories say it themselves (a different value here is an error).
  std::string problem_type;
  std::string columns;        // names of a header-less CSV/TSV's columns, "class,title,content"
  long max_length = 0;        // truncation (raw files when prepared, prepared rows at batch time); 0: the model's positions
  bool skip_bad_rows = false; // raw files: count and skip malformed rows instead of stopping
  // Trainer's working directory: checkpoints, and the final model unless model_dir names another
  // place. A SageMaker job's default is <root>/checkpoints, and its final model always goes to
  // SM_MODEL_DIR (what the platform uploads), whatever output_dir says.
  std::string output_dir = "out";
  std::string model_dir;      // final model, metrics and results (default: output_dir; final_model_dir())
  // Optimisation.
  double epochs = 3;
  long max_steps = -1;        // > 0 overrides epochs
  long train_batch_size = 8;
  long eval_batch_size = 8;
  double learning_rate = 5e-5;
  long warmup_steps = 0;
  double warmup_ratio = 0.0;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;  // 0 = no clipping
  long gradient_accumulation_steps = 1;
  long ddp_bucket_cap_mb = 25;     // data-parallel jobs: gradient bucket size in MiB (PyTorch DDP's default)
  std::string lr_scheduler_type = "linear";
  long seed = 42;
  bool dropout = true;         // false: train without dropout (parity checks)
  bool bf16 = false;           // mixed precision: bf16 products, fp32 master weights and AdamW
  // Evaluation, checkpoints, logging: strategies "no" | "steps" | "epoch".
  std::string eval_strategy;   // default: "epoch" when a test set is given, else "no"
  long eval_steps = 0;         // 0: logging_steps
  std::string save_strategy = "steps";
  long save_steps = 500;
  long save_total_limit = 0;   // keep the last K checkpoints (0 = all)
  std::string logging_strategy = "steps";
  long logging_steps = 500;
  bool load_best_model_at_end = false;
  std::string metric_for_best_model = "loss";  // eval metric name, with or without "eval_"
  std::optional<bool> greater_is_better;       // default: false for loss, true otherwise
  // Arguments of Trainer scripts (transformers' example scripts, SageMaker notebooks).
  bool do_train = true;        // false is refused: `tuneserve eval` evaluates without training
  bool do_eval = false;        // evaluate on the test set at the end even with eval_strategy no
  std::string optim = "adamw_torch";  // adamw_torch | adamw_torch_fused: both are this AdamW
  std::string report_to = "none";     // no integrations: anything but none/all is a warning
  bool overwrite_output_dir = false;  // remove an earlier run's checkpoint-* under output_dir first
  std::string logging_dir;     // metrics.jsonl is written there too (Trainer: its TensorBoard logs)
  // Job control.
  std::string resume;          // checkpoint dir, or "latest" (newest under output_dir)
  long threads = 0;            // 0: all cores (or SM_NUM_CPUS)
  std::string device;          // cpu | cuda | cuda:N; empty: not given (kernels/device_select.h decides)
  bool progress = true;        // bar on a terminal (disable_tqdm sets it false)
};

// Where the final model goes: model_dir, else output_dir.
inline std::string final_model_dir(const TrainArgs& a) { return a.model_dir.empty() ? a.output_dir : a.model_dir; }

// One settable hyperparameter: its JSON name (underscores), aliases, help, and how a textual value
// is applied. `is_flag`: a boolean that may appear without a value on the command line.
struct HyperparameterSpec {
  std::string name;
  std::vector<std::string> aliases;
  std::string help;
  bool is_flag = false;
  std::function<void(TrainArgs&, const std::string&)> set;  // throws Error naming the key
};

const std::vector<HyperparameterSpec>& hyperparameter_specs();

// Sets `key` (either spelling, or an alias) from its textual value; Error for an unknown key or
// a value of the wrong type ("learning_rate: '1e-3x' is not a number").
void set_hyperparameter(TrainArgs& args, const std::string& key, const std::string& value);

// The text of one hyperparameters.json value: SageMaker JSON-encodes each ("\"x\"", "3", "true");
// plain JSON strings, numbers and booleans are taken as they are. Error naming `key` and `source`
// for anything else.
std::string hyperparameter_text(const nlohmann::json& raw, const std::string& key, const std::string& source);

// A SageMaker hyperparameters.json object: each value is usually a JSON-encoded string
// ("\"distilbert\"", "3", "true"); plain JSON values are taken as they are. Keys starting with
// "sagemaker_" are the platform's own and ignored; keys no hyperparameter or alias knows (a job's
// own, like a notebook's token_name) are ignored with a warning, so a job written for another
// training script does not fail. `source` names the file in errors.
void apply_hyperparameters_json(TrainArgs& args, const nlohmann::json& hyperparameters,
                                const std::string& source);

// Checks values and combinations (strategies, positive sizes, best-model needs eval) and fills
// derived defaults (eval_strategy, eval_steps, tokenizer); Error names the hyperparameter.
void finalize_args(TrainArgs& args);

nlohmann::json args_to_json(const TrainArgs& args);

}  // namespace tuneserve::train
