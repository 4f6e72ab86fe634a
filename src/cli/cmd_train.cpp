// `tuneserve train`: fine-tunes a Hugging Face classifier on raw files or a prepared dataset, with
// transformers Trainer semantics, checkpoints, --resume, Ctrl-C checkpointing and the SageMaker
// job contract (hyperparameters.json, SM_* variables, failure file). See train/args.h for flags.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cli/command.h"
#include "cli/train_console.h"
#include "kernels/device_select.h"
#include "kernels/ops.h"
#include "core/error.h"
#include "model/model.h"
#include "storage/resolve.h"
#include "train/args.h"
#include "train/data_source.h"
#include "train/job_env.h"
#include "train/trainer.h"

namespace tuneserve::cli {
namespace {

namespace fs = std::filesystem;

struct TrainCommand {
  std::vector<std::pair<std::string, std::string>> given;  // (key, value) from the command line
  std::string sagemaker_root;
  bool dry_run = false;
};

void copy_if_exists(const fs::path& from, const fs::path& to_dir) {
  if (!fs::exists(from)) return;
  fs::create_directories(to_dir);
  fs::copy_file(from, to_dir / from.filename(), fs::copy_options::overwrite_existing);
}

int run_training(const train::TrainArgs& args, const train::JobEnv& env, const Device& device,
                 const storage::OutputDir& output) {
  train::RunInputs in = load_run_inputs(args, device);
  const train::TrainingData& data = in.data;
  Model& model = in.model;
  train::TrainPaths paths{args.output_dir, env.active ? env.checkpoint_dir : args.output_dir, args.tokenizer};
  const train::TrainOutcome outcome =
      train_with_console(model, args, data.train, data.test ? &*data.test : nullptr, paths);
  if (outcome.interrupted) {
    std::fprintf(stderr, "stopped at step %ld of %ld; checkpoint %s\nresume with: tuneserve train ... --resume latest\n",
                 outcome.global_step, outcome.total_steps, outcome.last_checkpoint.c_str());
    return 130;
  }
  const auto& tr = outcome.train_results;
  std::printf("trained %ld steps (%.2f epochs) in %s: train loss %.4f, %.1f samples/s\n", outcome.global_step,
              outcome.epoch, format_duration(tr["train_runtime"].get<double>()).c_str(), tr["train_loss"].get<double>(),
              tr["train_samples_per_second"].get<double>());
  if (outcome.eval_results) {
    const auto& e = *outcome.eval_results;
    std::printf("eval: loss %.4f accuracy %.4f precision %.4f recall %.4f f1 %.4f (%ld rows)\n", e["eval_loss"].get<double>(),
                e["eval_accuracy"].get<double>(), e["eval_precision"].get<double>(), e["eval_recall"].get<double>(),
                e["eval_f1"].get<double>(), e["eval_samples"].get<long>());
  }
  std::printf("model: %s\n", args.output_dir.c_str());
  // A SageMaker job's /opt/ml/model is packed by the platform itself; elsewhere the job ends with
  // model.tar.gz as SageMaker's does (uploaded when the output is on S3).
  if (!env.active || !output.remote.empty())
    std::printf("model archive: %s\n", storage::finish_output_dir(output).c_str());
  if (env.active) {
    for (const char* name : {"metrics.jsonl", "train_results.json", "eval_results.json", "trainer_state.json"})
      copy_if_exists(fs::path(args.output_dir) / name, env.output_data_dir);
  }
  return 0;
}

// Hub ids, s3:// URIs and archives become local paths (storage/resolve.h).
void resolve_inputs(train::TrainArgs& args) {
  const storage::ModelPaths paths =
      storage::resolve_model(args.model, args.tokenizer == args.model ? "" : args.tokenizer, {args.revision});
  args.model = paths.model;
  args.tokenizer = paths.tokenizer;
  args.train = storage::resolve_data(args.train);
  if (!args.test.empty()) args.test = storage::resolve_data(args.test);
}

int run(const TrainCommand& cmd) {
  train::JobEnv env;
  try {
    env = train::detect_job_env(cmd.sagemaker_root);
    train::TrainArgs args;
    train::apply_job_env(env, args);
    for (const auto& [key, value] : cmd.given) train::set_hyperparameter(args, key, value);
    train::finalize_args(args);
    // Before any data or model is read: a bad or unusable device fails the job at once.
    const DeviceChoice device =
        select_device({args.device, "hyperparameter device", env.active ? env.num_gpus : 0});
    if (!device.note.empty()) std::fprintf(stderr, "%s\n", device.note.c_str());
    args.device = device.device.str();
    if (args.bf16) ops::require(backend_for(device.device), DType::BF16, "hyperparameter bf16");
    if (cmd.dry_run) {
      nlohmann::json out = train::args_to_json(args);
      out["sagemaker"] = env.active;
      std::printf("%s\n", out.dump(2).c_str());
      return 0;
    }
    resolve_inputs(args);
    const storage::OutputDir output = storage::prepare_output_dir(args.output_dir);
    args.output_dir = output.local;
    return run_training(args, env, device.device, output);
  } catch (const std::exception& e) {
    if (env.active || !cmd.sagemaker_root.empty()) {
      if (env.root.empty()) env.root = cmd.sagemaker_root;
      train::write_failure(env, e.what());
    }
    throw;
  }
}

std::string option_names(const train::HyperparameterSpec& spec) {
  std::string names;
  auto add = [&](const std::string& key) {
    std::string dashed = key;
    std::replace(dashed.begin(), dashed.end(), '_', '-');
    names += (names.empty() ? "--" : ",--") + dashed;
    if (dashed != key) names += ",--" + key;
  };
  add(spec.name);
  for (const auto& alias : spec.aliases) add(alias);
  return names;
}

const Registration registration{Command{
    "train", "Fine-tune a classifier (Trainer semantics; SageMaker job contract when present)",
    [](CLI::App& app) -> std::function<int()> {
      auto cmd = std::make_shared<TrainCommand>();
      for (const train::HyperparameterSpec& spec : train::hyperparameter_specs()) {
        const std::string key = spec.name;
        CLI::Option* opt = app.add_option(option_names(spec), spec.help);
        opt->each([cmd, key](const std::string& value) { cmd->given.emplace_back(key, value); });
        if (spec.is_flag) opt->expected(0, 1)->default_str("true");
      }
      app.add_option("--sagemaker-root,--sagemaker_root", cmd->sagemaker_root,
                     "SageMaker root instead of /opt/ml (also TUNESERVE_SM_ROOT)");
      app.add_flag("--dry-run,--dry_run", cmd->dry_run, "print the resolved hyperparameters as JSON and exit");
      app.footer("Every hyperparameter is also accepted with underscores (--train_batch_size) and under\n"
                 "transformers' names (--per_device_train_batch_size, --num_train_epochs, ...).");
      return [cmd] { return run(*cmd); };
    }}};

}  // namespace
}  // namespace tuneserve::cli
