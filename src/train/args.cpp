// Hyperparameter table: one entry per TrainArgs field, used by the command line and by
// SageMaker's hyperparameters.json alike. Values arrive as text and are checked here.
#include "train/args.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/json.h"
#include "train/schedule.h"

namespace tuneserve::train {

namespace {

std::string normalize_key(std::string key) {
  while (!key.empty() && key.front() == '-') key.erase(key.begin());
  std::replace(key.begin(), key.end(), '-', '_');
  return key;
}

double parse_double(const std::string& key, const std::string& value) {
  double out = 0;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, out);
  if (ec != std::errc() || ptr != end || value.empty() || !std::isfinite(out))
    fail("hyperparameter {}: '{}' is not a number", key, value);
  return out;
}

long parse_long(const std::string& key, const std::string& value) {
  long out = 0;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, out);
  if (ec == std::errc() && ptr == end && !value.empty()) return out;
  // "3.0" from a JSON float is an integer too.
  const double d = parse_double(key, value);
  if (d != std::floor(d)) fail("hyperparameter {}: '{}' is not an integer", key, value);
  // 2^63 is exact in a double; anything outside [-2^63, 2^63) has no long, and converting it is undefined.
  constexpr double two63 = 9223372036854775808.0;
  if (d < -two63 || d >= two63) fail("hyperparameter {}: '{}' is out of range for an integer", key, value);
  return static_cast<long>(d);
}

bool parse_bool(const std::string& key, const std::string& value) {
  std::string v = value;
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  if (v == "true" || v == "1" || v == "yes" || v.empty()) return true;
  if (v == "false" || v == "0" || v == "no") return false;
  fail("hyperparameter {}: '{}' is not a boolean (true/false)", key, value);
}

template <typename Field>
HyperparameterSpec spec(std::string name, std::vector<std::string> aliases, std::string help,
                        Field TrainArgs::*field) {
  HyperparameterSpec s;
  s.name = name;
  s.aliases = std::move(aliases);
  s.help = std::move(help);
  s.is_flag = std::is_same_v<Field, bool> || std::is_same_v<Field, std::optional<bool>>;
  s.set = [name, field](TrainArgs& args, const std::string& value) {
    if constexpr (std::is_same_v<Field, std::string>) {
      args.*field = value;
    } else if constexpr (std::is_same_v<Field, double>) {
      args.*field = parse_double(name, value);
    } else if constexpr (std::is_same_v<Field, long>) {
      args.*field = parse_long(name, value);
    } else {
      args.*field = parse_bool(name, value);
    }
  };
  return s;
}

// A Trainer argument that is not a plain field: `set` applies the checked boolean.
HyperparameterSpec flag(std::string name, std::string help, std::function<void(TrainArgs&, bool)> set) {
  HyperparameterSpec s;
  s.name = name;
  s.help = std::move(help);
  s.is_flag = true;
  s.set = [name, set = std::move(set)](TrainArgs& args, const std::string& value) { set(args, parse_bool(name, value)); };
  return s;
}

}  // namespace

const std::vector<HyperparameterSpec>& hyperparameter_specs() {
  static const std::vector<HyperparameterSpec> specs = {
      spec("model", {"model_name_or_path", "model_name"}, "model to fine-tune: directory, Hub id, s3:// or model.tar.gz", &TrainArgs::model),
      spec("tokenizer", {"tokenizer_name"}, "tokenizer directory or Hub id (default: the model's)", &TrainArgs::tokenizer),
      spec("revision", {"model_revision"}, "Hub branch, tag or commit of the model and tokenizer", &TrainArgs::revision),
      spec("train", {"train_file"}, "training data: csv/tsv/jsonl(.gz) file or a `tuneserve prep` directory", &TrainArgs::train),
      spec("test", {"test_file", "validation_file", "eval_file"}, "evaluation data, same forms as --train", &TrainArgs::test),
      spec("text", {"text_column"}, "text column, or two comma-separated for pairs", &TrainArgs::text),
      spec("label", {"label_column"}, "label column; a,b,c: one column per regression target or per label (multi-label 0/1)", &TrainArgs::label),
      spec("problem_type", {}, "single_label_classification (default), multi_label_classification or regression: "
           "what the label column(s) of raw files hold", &TrainArgs::problem_type),
      spec("label_map", {}, "raw label to id, e.g. 1:0,2:1", &TrainArgs::label_map),
      spec("max_length", {"max_seq_length"}, "truncate token sequences to this length (default: the model's positions)", &TrainArgs::max_length),
      spec("label_names", {}, "names of the label ids in order, e.g. negative,positive (saved as id2label)", &TrainArgs::label_names),
      spec("columns", {}, "column names of a header-less CSV/TSV, e.g. class,title,content", &TrainArgs::columns),
      spec("skip_bad_rows", {}, "raw files: skip malformed rows (counted and reported) instead of stopping", &TrainArgs::skip_bad_rows),
      spec("output_dir", {}, "working directory: checkpoints, and the final model unless model_dir is set "
           "(SageMaker job: default <root>/checkpoints)", &TrainArgs::output_dir),
      spec("model_dir", {}, "where the final model, metrics and results go (default: output_dir; "
           "SageMaker job: SM_MODEL_DIR, always)", &TrainArgs::model_dir),
      spec("epochs", {"num_train_epochs"}, "passes over the training data", &TrainArgs::epochs),
      spec("max_steps", {}, "total optimizer steps; > 0 overrides epochs", &TrainArgs::max_steps),
      spec("train_batch_size", {"per_device_train_batch_size", "batch_size"}, "examples per training batch", &TrainArgs::train_batch_size),
      spec("eval_batch_size", {"per_device_eval_batch_size"}, "examples per evaluation batch", &TrainArgs::eval_batch_size),
      spec("learning_rate", {"lr"}, "peak learning rate", &TrainArgs::learning_rate),
      spec("warmup_steps", {}, "linear warmup steps (wins over warmup_ratio when > 0)", &TrainArgs::warmup_steps),
      spec("warmup_ratio", {}, "warmup as a fraction of all steps (rounded up)", &TrainArgs::warmup_ratio),
      spec("weight_decay", {}, "AdamW decoupled weight decay (not on biases and LayerNorm weights)", &TrainArgs::weight_decay),
      spec("adam_beta1", {}, "AdamW beta1", &TrainArgs::adam_beta1),
      spec("adam_beta2", {}, "AdamW beta2", &TrainArgs::adam_beta2),
      spec("adam_epsilon", {}, "AdamW epsilon", &TrainArgs::adam_epsilon),
      spec("max_grad_norm", {}, "clip the global gradient norm to this (0 = off)", &TrainArgs::max_grad_norm),
      spec("gradient_accumulation_steps", {}, "batches per optimizer step", &TrainArgs::gradient_accumulation_steps),
      spec("ddp_bucket_cap_mb", {}, "mpirun jobs: MiB of gradients summed across ranks at once while backward runs",
           &TrainArgs::ddp_bucket_cap_mb),
      spec("lr_scheduler_type", {"scheduler"}, "linear | cosine | constant | constant_with_warmup", &TrainArgs::lr_scheduler_type),
      spec("seed", {}, "seed for data order, dropout and new heads", &TrainArgs::seed),
      spec("dropout", {}, "use the model's dropouts in training (false: none)", &TrainArgs::dropout),
      spec("bf16", {}, "mixed precision: bf16 matrix products forward and backward, fp32 master weights, AdamW and "
           "checkpoints (CPU: AVX512-BF16)", &TrainArgs::bf16),
      spec("eval_strategy", {"evaluation_strategy"}, "no | steps | epoch (default: epoch with a test set)", &TrainArgs::eval_strategy),
      spec("eval_steps", {}, "evaluate every N steps (strategy steps; default logging_steps)", &TrainArgs::eval_steps),
      spec("save_strategy", {}, "no | steps | epoch", &TrainArgs::save_strategy),
      spec("save_steps", {}, "checkpoint every N steps (strategy steps)", &TrainArgs::save_steps),
      spec("save_total_limit", {}, "keep only the last K checkpoints (0 = all)", &TrainArgs::save_total_limit),
      spec("logging_strategy", {}, "no | steps | epoch", &TrainArgs::logging_strategy),
      spec("logging_steps", {}, "log every N steps (strategy steps)", &TrainArgs::logging_steps),
      spec("load_best_model_at_end", {}, "keep the checkpoint with the best eval metric as the final model", &TrainArgs::load_best_model_at_end),
      spec("metric_for_best_model", {}, "eval metric for the best model (loss, accuracy, f1, ...)", &TrainArgs::metric_for_best_model),
      spec("greater_is_better", {}, "whether a larger metric is better (default: not for loss)", &TrainArgs::greater_is_better),
      spec("resume", {"resume_from_checkpoint"}, "checkpoint directory to continue from, or 'latest'", &TrainArgs::resume),
      spec("threads", {"num_threads"}, "CPU threads (0 = all cores)", &TrainArgs::threads),
      spec("device", {}, "cpu | cuda | cuda:N (default cpu; a SageMaker job with SM_NUM_GPUS > 0: cuda:0 when usable)",
           &TrainArgs::device),
      spec("progress", {}, "progress bar on a terminal", &TrainArgs::progress),
      flag("disable_tqdm", "Trainer's name for --progress false", [](TrainArgs& a, bool v) { a.progress = !v; }),
      spec("do_train", {}, "train (Trainer scripts' flag; false is refused: use `tuneserve eval`)", &TrainArgs::do_train),
      spec("do_eval", {}, "evaluate on --test at the end, even with eval_strategy no", &TrainArgs::do_eval),
      flag("fp16", "not supported (fp16 mixed precision is a GPU feature of PyTorch); --bf16 is tuneserve's",
           [](TrainArgs&, bool v) {
             if (v) fail("hyperparameter fp16: tuneserve does not train in fp16; use bf16 (--bf16) for mixed precision");
           }),
      spec("optim", {}, "adamw_torch | adamw_torch_fused (the same AdamW)", &TrainArgs::optim),
      spec("report_to", {}, "none | all: tuneserve has no integrations (wandb, tensorboard, ...); metrics are in "
           "metrics.jsonl (tuneserve report)", &TrainArgs::report_to),
      spec("overwrite_output_dir", {}, "remove an earlier run's checkpoint-* folders under output_dir before training",
           &TrainArgs::overwrite_output_dir),
      spec("logging_dir", {}, "also write metrics.jsonl here (Trainer: its TensorBoard folder)", &TrainArgs::logging_dir),
  };
  return specs;
}

namespace {

const HyperparameterSpec* find_spec(const std::string& key) {
  const std::string k = normalize_key(key);
  for (const HyperparameterSpec& s : hyperparameter_specs()) {
    if (s.name == k || std::find(s.aliases.begin(), s.aliases.end(), k) != s.aliases.end()) return &s;
  }
  return nullptr;
}

}  // namespace

void set_hyperparameter(TrainArgs& args, const std::string& key, const std::string& value) {
  const HyperparameterSpec* s = find_spec(key);
  if (s == nullptr) fail("unknown hyperparameter '{}' (see `tuneserve train --help`)", key);
  s->set(args, value);
}

std::string hyperparameter_text(const nlohmann::json& raw, const std::string& key, const std::string& source) {
  nlohmann::json value = raw;
  if (raw.is_string()) {
    // SageMaker JSON-encodes every value; a bare string that is not JSON is taken as it is.
    try {
      value = parse_json(raw.get_ref<const std::string&>(), fmt::format("{}: hyperparameter {}", source, key));
    } catch (const JsonError&) {
      value = raw;
    }
  }
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_number()) return value.dump();
  fail("{}: hyperparameter {} must be a string, number or boolean, got {}", source, text_excerpt(key),
       json_excerpt(raw));
}

void apply_hyperparameters_json(TrainArgs& args, const nlohmann::json& hyperparameters,
                                const std::string& source) {
  if (!hyperparameters.is_object()) fail("{}: hyperparameters must be a JSON object", source);
  for (const auto& [key, raw] : hyperparameters.items()) {
    if (key.starts_with("sagemaker_")) continue;
    if (find_spec(key) == nullptr) {
      spdlog::warn("{}: hyperparameter '{}' is not one of tuneserve's (see `tuneserve train --help`); ignored",
                   source, key);
      continue;
    }
    const std::string text = hyperparameter_text(raw, key, source);
    try {
      set_hyperparameter(args, key, text);
    } catch (const Error& e) {
      fail("{}: {}", source, e.what());
    }
  }
}

void finalize_args(TrainArgs& args) {
  auto check_strategy = [](const char* key, const std::string& v) {
    if (v != "no" && v != "steps" && v != "epoch") fail("hyperparameter {}: '{}' is not one of no, steps, epoch", key, v);
  };
  if (args.model.empty()) fail("hyperparameter model: required (a Hugging Face model directory)");
  if (args.train.empty()) fail("hyperparameter train: required (a data file or a prepared directory)");
  if (args.tokenizer.empty()) args.tokenizer = args.model;
  if (args.eval_strategy.empty()) args.eval_strategy = args.test.empty() ? "no" : "epoch";
  check_strategy("eval_strategy", args.eval_strategy);
  check_strategy("save_strategy", args.save_strategy);
  check_strategy("logging_strategy", args.logging_strategy);
  if (args.eval_strategy != "no" && args.test.empty())
    fail("hyperparameter eval_strategy: '{}' needs a test set (--test)", args.eval_strategy);
  if (!args.do_train)
    fail("hyperparameter do_train: false would only evaluate; run `tuneserve eval --model M --data D` for that");
  if (args.do_eval && args.test.empty()) fail("hyperparameter do_eval: needs a test set (--test)");
  if (args.optim != "adamw_torch" && args.optim != "adamw_torch_fused")
    fail("hyperparameter optim: '{}' is not available; tuneserve's optimizer is AdamW (adamw_torch, adamw_torch_fused)",
         args.optim);
  if (args.overwrite_output_dir && !args.resume.empty())
    fail("hyperparameter overwrite_output_dir: contradicts resume ({}): it removes the checkpoints resume reads",
         args.resume);
  for (std::string_view rest = args.report_to; !rest.empty();) {
    const std::size_t comma = rest.find(',');
    std::string target(rest.substr(0, comma));
    target.erase(std::remove(target.begin(), target.end(), ' '), target.end());
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (!target.empty() && target != "none")
      spdlog::warn("report_to {}: tuneserve has no such integration; the metrics are in metrics.jsonl "
                   "(`tuneserve report` draws them)", target);
  }
  if (args.eval_steps <= 0) args.eval_steps = args.logging_steps;
  parse_schedule(args.lr_scheduler_type);
  auto positive = [](const char* key, long v) {
    if (v < 1) fail("hyperparameter {}: must be >= 1, got {}", key, v);
  };
  positive("train_batch_size", args.train_batch_size);
  positive("eval_batch_size", args.eval_batch_size);
  positive("gradient_accumulation_steps", args.gradient_accumulation_steps);
  positive("ddp_bucket_cap_mb", args.ddp_bucket_cap_mb);
  positive("logging_steps", args.logging_steps);
  positive("save_steps", args.save_steps);
  if (args.max_length < 0) fail("hyperparameter max_length: must be >= 0 (0: the model's positions), got {}", args.max_length);
  if (args.max_steps <= 0 && !(args.epochs > 0)) fail("hyperparameter epochs: must be > 0, got {}", args.epochs);
  if (!(args.learning_rate >= 0)) fail("hyperparameter learning_rate: must be >= 0, got {}", args.learning_rate);
  if (args.warmup_ratio < 0 || args.warmup_ratio > 1) fail("hyperparameter warmup_ratio: must be in [0, 1], got {}", args.warmup_ratio);
  if (args.warmup_steps < 0) fail("hyperparameter warmup_steps: must be >= 0, got {}", args.warmup_steps);
  if (args.weight_decay < 0) fail("hyperparameter weight_decay: must be >= 0, got {}", args.weight_decay);
  if (args.max_grad_norm < 0) fail("hyperparameter max_grad_norm: must be >= 0, got {}", args.max_grad_norm);
  if (args.adam_beta1 < 0 || args.adam_beta1 >= 1) fail("hyperparameter adam_beta1: must be in [0, 1), got {}", args.adam_beta1);
  if (args.adam_beta2 < 0 || args.adam_beta2 >= 1) fail("hyperparameter adam_beta2: must be in [0, 1), got {}", args.adam_beta2);
  if (args.save_total_limit < 0) fail("hyperparameter save_total_limit: must be >= 0, got {}", args.save_total_limit);
  if (args.threads < 0) fail("hyperparameter threads: must be >= 0, got {}", args.threads);
  if (args.seed < 0) fail("hyperparameter seed: must be >= 0, got {}", args.seed);
  if (args.metric_for_best_model.starts_with("eval_")) args.metric_for_best_model.erase(0, 5);
  if (!args.greater_is_better) args.greater_is_better = args.metric_for_best_model != "loss";
  if (args.load_best_model_at_end) {
    if (args.eval_strategy == "no")
      fail("hyperparameter load_best_model_at_end: needs evaluation (eval_strategy steps or epoch)");
    if (args.save_strategy != args.eval_strategy)
      fail("hyperparameter load_best_model_at_end: save_strategy ({}) must equal eval_strategy ({})",
           args.save_strategy, args.eval_strategy);
    if (args.save_strategy == "steps" && args.save_steps % args.eval_steps != 0)
      fail("hyperparameter load_best_model_at_end: save_steps ({}) must be a multiple of eval_steps ({})",
           args.save_steps, args.eval_steps);
  }
}

nlohmann::json args_to_json(const TrainArgs& a) {
  nlohmann::json j = {
      {"model", a.model}, {"tokenizer", a.tokenizer}, {"revision", a.revision}, {"train", a.train}, {"test", a.test},
      {"text", a.text}, {"label", a.label}, {"label_map", a.label_map}, {"columns", a.columns}, {"label_names", a.label_names}, {"problem_type", a.problem_type}, {"max_length", a.max_length}, {"skip_bad_rows", a.skip_bad_rows},
      {"output_dir", a.output_dir}, {"model_dir", a.model_dir}, {"epochs", a.epochs}, {"max_steps", a.max_steps},
      {"train_batch_size", a.train_batch_size}, {"eval_batch_size", a.eval_batch_size},
      {"learning_rate", a.learning_rate}, {"warmup_steps", a.warmup_steps},
      {"warmup_ratio", a.warmup_ratio}, {"weight_decay", a.weight_decay},
      {"adam_beta1", a.adam_beta1}, {"adam_beta2", a.adam_beta2}, {"adam_epsilon", a.adam_epsilon},
      {"max_grad_norm", a.max_grad_norm}, {"gradient_accumulation_steps", a.gradient_accumulation_steps},
      {"ddp_bucket_cap_mb", a.ddp_bucket_cap_mb},
      {"lr_scheduler_type", a.lr_scheduler_type}, {"seed", a.seed}, {"dropout", a.dropout}, {"bf16", a.bf16},
      {"eval_strategy", a.eval_strategy}, {"eval_steps", a.eval_steps},
      {"save_strategy", a.save_strategy}, {"save_steps", a.save_steps},
      {"save_total_limit", a.save_total_limit}, {"logging_strategy", a.logging_strategy},
      {"logging_steps", a.logging_steps}, {"load_best_model_at_end", a.load_best_model_at_end},
      {"metric_for_best_model", a.metric_for_best_model}, {"resume", a.resume},
      {"threads", a.threads}, {"device", a.device}, {"do_train", a.do_train}, {"do_eval", a.do_eval},
      {"optim", a.optim}, {"report_to", a.report_to}, {"overwrite_output_dir", a.overwrite_output_dir},
      {"logging_dir", a.logging_dir}};
  j["greater_is_better"] = a.greater_is_better ? nlohmann::json(*a.greater_is_better) : nlohmann::json();
  return j;
}

}  // namespace tuneserve::train
