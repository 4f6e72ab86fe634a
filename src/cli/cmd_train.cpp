// `tuneserve train`: fine-tunes a Hugging Face classifier on raw files or a prepared dataset, with
// transformers Trainer semantics, checkpoints, --resume, Ctrl-C / SIGTERM checkpointing and the SageMaker
// job contract (hyperparameters.json, SM_* variables, failure file). See train/args.h for flags.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "cli/train_console.h"
#include "kernels/device_select.h"
#include "kernels/ops.h"
#include "core/error.h"
#include "model/model.h"
#include "storage/resolve.h"
#include "train/args.h"
#include "train/data_source.h"
#include "train/distributed.h"
#include "train/job_env.h"
#include "train/mpi_launch.h"
#include "train/trainer.h"
#include "train/trainer_log.h"

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
                 const storage::OutputDir& output, const train::ProcessGroup& group) {
  const bool writer = group.rank() == 0;  // in a data-parallel job the other ranks write nothing
  train::RunInputs in = load_run_inputs(args, device, writer);
  const train::TrainingData& data = in.data;
  Model& model = in.model;
  const std::string model_dir = train::final_model_dir(args);
  train::TrainPaths paths{model_dir, args.output_dir, in.tokenizer_dir};
  const train::TrainOutcome outcome =
      train_with_console(model, args, data.train, data.test ? &*data.test : nullptr, paths, &group);
  // Every rank a signal stopped exits as rank 0 does (SIGTERM: 0), or mpirun reports the job failed.
  if (!writer) return outcome.interrupted ? interrupted_exit_code() : 0;
  if (outcome.interrupted) {
    std::fprintf(stderr, "stopped at step %ld of %ld; checkpoint %s\nresume with: tuneserve train ... --resume latest\n",
                 outcome.global_step, outcome.total_steps, outcome.last_checkpoint.c_str());
    return interrupted_exit_code();
  }
  const auto& tr = outcome.train_results;
  print_trainer_line(train::trainer_log_line(tr));  // Trainer's closing {'train_runtime': ...} line
  std::printf("trained %ld steps (%.2f epochs) in %s: train loss %.4f, %.1f samples/s\n", outcome.global_step,
              outcome.epoch, format_duration(tr["train_runtime"].get<double>()).c_str(), tr["train_loss"].get<double>(),
              tr["train_samples_per_second"].get<double>());
  if (group.distributed())
    std::printf("%d ranks: %.1f%% of the time waiting for the others (gradient and loss sums)\n", group.size(),
                100.0 * tr["communication_wait_seconds"].get<double>() / tr["train_runtime"].get<double>());
  if (outcome.eval_results) {
    const auto& e = *outcome.eval_results;
    std::printf("eval: %s (%ld rows)\n", train::eval_summary(e).c_str(), e["eval_samples"].get<long>());
  }
  std::printf("model: %s\n", model_dir.c_str());
  // A SageMaker job's /opt/ml/model is packed by the platform itself; elsewhere the job ends with
  // model.tar.gz as SageMaker's does (uploaded when the output is on S3).
  if (!env.active || !output.remote.empty())
    std::printf("model archive: %s\n", storage::finish_output_dir({model_dir, output.remote}).c_str());
  if (env.active) {
    for (const char* name : {"metrics.jsonl", "train_results.json", "eval_results.json", "trainer_state.json"})
      copy_if_exists(fs::path(model_dir) / name, env.output_data_dir);
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
  take_stop_signals();  // before MPI_Init and the kernels start threads
  train::JobEnv env;
  // Started by mpirun: one rank of a data-parallel job (MPI starts here). Else a process alone.
  train::ProcessGroup& group = train::ProcessGroup::world();
  try {
    env = train::detect_job_env(cmd.sagemaker_root);
    // SageMaker's MPI contract: this host starts the ranks (the first host) or hosts them.
    if (env.active && !group.distributed() && !train::ProcessGroup::launched_by_mpi() && !cmd.dry_run) {
      const train::MpiJob job = train::mpi_job(env);
      if (job.enabled) return train::run_sagemaker_mpi(job);
    }
    train::TrainArgs args;
    train::apply_job_env(env, args, group.local_size());
    for (const auto& [key, value] : cmd.given) train::set_hyperparameter(args, key, value);
    train::finalize_args(args);
    if (group.distributed() && args.threads == 0) args.threads = train::threads_per_rank(group.local_size());
    // Before any data or model is read: a bad or unusable device fails the job at once.
    const DeviceChoice device =
        select_device({args.device, "hyperparameter device", env.active ? env.num_gpus : 0, group.local_rank()});
    if (!device.note.empty() && group.rank() == 0) spdlog::warn("{}", device.note);
    args.device = device.device.str();
    if (args.bf16) ops::require(backend_for(device.device), DType::BF16, "hyperparameter bf16");
    if (cmd.dry_run) {
      nlohmann::json out = train::args_to_json(args);
      out["sagemaker"] = env.active;
      std::printf("%s\n", out.dump(2).c_str());
      return 0;
    }
    if (storage::is_s3_uri(args.model_dir))
      fail("hyperparameter model_dir: {} is not a local folder (an s3:// output is output_dir's)", args.model_dir);
    resolve_inputs(args);
    const storage::OutputDir output =
        group.rank() == 0 ? storage::prepare_output_dir(args.output_dir) : storage::OutputDir{args.output_dir, ""};
    args.output_dir = output.local;
    const int status = run_training(args, env, device.device, output, group);
    group.finalize();
    return status;
  } catch (const std::exception& e) {
    if (env.active || !cmd.sagemaker_root.empty()) {
      if (env.root.empty()) env.root = cmd.sagemaker_root;
      train::write_failure(env, group.distributed() ? group.where() + ": " + e.what() : e.what());
    }
    // One rank failing ends them all at once, naming this rank and host (the others may be waiting
    // on it in a collective).
    if (group.distributed()) group.abort(e.what());
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
      app.footer(
          "Every hyperparameter is also accepted with underscores (--train_batch_size) and under\n"
          "transformers' names (--per_device_train_batch_size, --num_train_epochs, ...), with TrainingArguments'\n"
          "defaults, except on purpose:\n"
          "  eval_strategy   epoch when --test is given (Trainer: no), so a job with a test set reports eval metrics\n"
          "  logging         the last step is always logged (Trainer: every logging_steps only), so short runs log\n"
          "  output_dir      out (Trainer: trainer_output); a SageMaker job's model goes to SM_MODEL_DIR\n"
          "  fp16            refused: bf16 (--bf16) is the mixed precision; optim: AdamW only\n"
          "  report_to       no integrations: metrics.jsonl (also in --logging_dir), `tuneserve report` draws them\n"
          "Log lines are Trainer's: {'loss': 0.6931, 'grad_norm': 1.1, 'learning_rate': 4.5e-05, 'epoch': 0.2}.");
      return [cmd] { return run(*cmd); };
    }}};

}  // namespace
}  // namespace tuneserve::cli
