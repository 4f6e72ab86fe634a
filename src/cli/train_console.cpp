// Console side of a training run: progress bar or plain lines, SIGINT -> checkpoint and stop.
#include "cli/train_console.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "checkpoint/config.h"
#include "train/job_env.h"

namespace tuneserve::cli {
namespace {

std::atomic<bool> g_stop{false};

void on_sigint(int) {
  g_stop = true;
  static const char msg[] = "\ninterrupt: saving a checkpoint after this step (Ctrl-C again to abort)\n";
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg, sizeof(msg) - 1);
  std::signal(SIGINT, SIG_DFL);
}


}  // namespace

std::string format_duration(double seconds) {
  const long s = static_cast<long>(seconds + 0.5);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60) : fmt::format("{:02}:{:02}", s / 60, s % 60);
}

namespace {

// One line per log record: training progress or an evaluation.
std::string describe(const nlohmann::json& r) {
  if (r.contains("eval_loss")) {
    return fmt::format("eval  step {} epoch {:.2f}: loss {:.4f} accuracy {:.4f} precision {:.4f} recall {:.4f} f1 {:.4f}",
                       r["step"].get<long>(), r["epoch"].get<double>(), r["eval_loss"].get<double>(),
                       r["eval_accuracy"].get<double>(), r["eval_precision"].get<double>(),
                       r["eval_recall"].get<double>(), r["eval_f1"].get<double>());
  }
  return fmt::format("train step {} epoch {:.2f}: loss {:.4f} lr {:.3e} grad_norm {:.4f} samples/s {:.1f}",
                     r["step"].get<long>(), r["epoch"].get<double>(), r["loss"].get<double>(), r["lr"].get<double>(),
                     r["grad_norm"].get<double>(), r["samples_per_second"].get<double>());
}

// A bar redrawn in place on a terminal: steps, it/s, running loss, ETA.
class Progress {
 public:
  explicit Progress(bool tty) : tty_(tty), start_(Clock::now()), last_draw_(start_) {}
  void step(long step, long total, double loss) {
    if (first_step_ < 0) {
      first_step_ = step - 1;
      start_ = Clock::now();
    }
    const auto now = Clock::now();
    if (!tty_ || (now - last_draw_ < std::chrono::milliseconds(200) && step != total)) return;
    last_draw_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(step - first_step_) / elapsed : 0.0;
    const int width = 30;
    const int filled = static_cast<int>(static_cast<double>(width) * static_cast<double>(step) / static_cast<double>(total));
    std::string bar(static_cast<std::size_t>(filled), '=');
    if (filled < width) bar += '>';
    bar.resize(static_cast<std::size_t>(width), ' ');
    const std::string eta = rate > 0 ? format_duration(static_cast<double>(total - step) / rate) : "--:--";
    std::fprintf(stderr, "\r\033[K%ld/%ld [%s] %.2f it/s loss %.4f ETA %s", step, total, bar.c_str(), rate, loss, eta.c_str());
    drawn_ = true;
  }
  void line(const std::string& text) {
    if (drawn_) std::fprintf(stderr, "\r\033[K");
    std::fprintf(stderr, "%s\n", text.c_str());
    drawn_ = false;
  }
  void finish() {
    if (drawn_) std::fprintf(stderr, "\n");
    drawn_ = false;
  }

 private:
  using Clock = std::chrono::steady_clock;
  bool tty_;
  bool drawn_ = false;
  long first_step_ = -1;
  Clock::time_point start_, last_draw_;
};

}  // namespace

RunInputs load_run_inputs(const train::TrainArgs& args, const Device& device) {
  if (args.threads > 0) Model::set_num_threads(static_cast<int>(args.threads));
  const ModelConfig config = load_config(args.model);
  train::DataSpec spec;
  spec.text = args.text;
  spec.label = args.label;
  spec.label_map = args.label_map;
  spec.columns = args.columns;
  spec.label_names = args.label_names;
  spec.tokenizer = args.tokenizer;
  spec.skip_bad_rows = args.skip_bad_rows;
  spec.max_length = std::min(args.max_length, train::model_max_tokens(config));
  if (spec.max_length < args.max_length)
    std::fprintf(stderr, "max_length %ld is more than %s accepts; truncating at %ld\n", args.max_length,
                 args.model.c_str(), spec.max_length);
  spec.threads = args.threads > 0 ? static_cast<int>(args.threads) : 2;
  const std::string train_path = train::resolve_data_path(args.train, "train");
  const std::string test_path = args.test.empty() ? "" : train::resolve_data_path(args.test, "test");
  train::TrainingData data = train::load_training_data(train_path, test_path, spec);
  std::fprintf(stderr, "data: %zu training rows%s\n", data.train.size(),
               data.test ? fmt::format(", {} test rows", data.test->size()).c_str() : "");

  // A head with another number of labels than the data's is created anew (as transformers does
  // with num_labels); otherwise the checkpoint's head is kept.
  LoadOptions load_options;
  load_options.init_seed = static_cast<std::uint64_t>(args.seed);
  load_options.device = device;
  load_options.dtype = args.bf16 ? DType::BF16 : DType::F32;  // mixed precision: fp32 master weights
  if (static_cast<int>(data.train.num_labels()) != config.num_labels) load_options.labels = data.train.manifest().id2label;
  LoadReport report;
  Model model = Model::load(args.model, &report, load_options);
  if (!report.initialized.empty())
    std::fprintf(stderr, "newly initialised (not in the checkpoint): %s\n", fmt::format("{}", fmt::join(report.initialized, ", ")).c_str());
  if (!report.ignored.empty())
    std::fprintf(stderr, "not used from the checkpoint: %zu tensors (%s, ...)\n", report.ignored.size(), report.ignored[0].c_str());

  return RunInputs{std::move(data), std::move(model)};
}

train::TrainOutcome train_with_console(Model& model, const train::TrainArgs& args, const data::TokenizedDataset& train,
                                       const data::TokenizedDataset* test, const train::TrainPaths& paths) {
  Progress progress(args.progress && ::isatty(STDERR_FILENO));
  train::TrainHooks hooks;
  hooks.stop = &g_stop;
  hooks.on_log = [&](const nlohmann::json& r) { progress.line(describe(r)); };
  hooks.on_step = [&](long step, long total, double loss) { progress.step(step, total, loss); };
  g_stop = false;
  std::signal(SIGINT, on_sigint);
  train::TrainOutcome outcome;
  try {
    outcome = train::train_model(model, args, train, test, paths, hooks);
  } catch (...) {
    std::signal(SIGINT, SIG_DFL);
    progress.finish();
    throw;
  }
  std::signal(SIGINT, SIG_DFL);
  progress.finish();
  return outcome;
}

}  // namespace tuneserve::cli
