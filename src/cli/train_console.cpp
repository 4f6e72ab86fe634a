// Console side of a training run: progress bar or plain lines, SIGINT/SIGTERM -> checkpoint and stop.
#include "cli/train_console.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/log.h"
#include "train/trainer_log.h"


namespace tuneserve::cli {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};

// Async-signal-safe: sets flags, writes one fixed line, and lets the same signal again end the
// process at once.
void on_stop_signal(int sig) {
  g_stop = true;
  g_signal = sig;
  static const char interrupt[] = "\ninterrupt: saving a checkpoint after this step (Ctrl-C again to abort)\n";
  static const char terminate[] = "\nSIGTERM: saving a checkpoint after this step, then exiting\n";
  const bool term = sig == SIGTERM;
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, term ? terminate : interrupt, (term ? sizeof terminate : sizeof interrupt) - 1);
  std::signal(sig, SIG_DFL);
}

void handle_stop_signals(void (*handler)(int)) {
  std::signal(SIGINT, handler);
  std::signal(SIGTERM, handler);
}


}  // namespace

std::string format_duration(double seconds) {
  const long s = static_cast<long>(seconds + 0.5);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60) : fmt::format("{:02}:{:02}", s / 60, s % 60);
}

namespace {

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
    print_trainer_line(text);
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

train::RunInputs load_run_inputs(const train::TrainArgs& args, const Device& device, bool report) {
  return train::load_run_inputs(args, device, [report](const std::string& line) {
    if (report) spdlog::info("{}", line);
  });
}

train::TrainOutcome train_with_console(Model& model, const train::TrainArgs& args, const data::TokenizedDataset& train,
                                       const data::TokenizedDataset* test, const train::TrainPaths& paths,
                                       const train::ProcessGroup* group) {
  Progress progress(args.progress && ::isatty(STDERR_FILENO));
  train::TrainHooks hooks;
  hooks.stop = &g_stop;
  hooks.group = group;
  hooks.on_log = [&](const nlohmann::json& r) { progress.line(train::trainer_log_line(r)); };
  hooks.on_step = [&](long step, long total, double loss) { progress.step(step, total, loss); };
  g_stop = false;
  g_signal = 0;
  handle_stop_signals(on_stop_signal);
  train::TrainOutcome outcome;
  try {
    outcome = train::train_model(model, args, train, test, paths, hooks);
  } catch (...) {
    handle_stop_signals(SIG_DFL);
    progress.finish();
    throw;
  }
  handle_stop_signals(SIG_DFL);
  progress.finish();
  return outcome;
}

void print_trainer_line(const std::string& line) {
  if (logging::format() == logging::Format::json) {
    spdlog::info("{}", line);
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

int interrupted_exit_code() { return g_signal == SIGTERM ? 0 : 130; }

}  // namespace tuneserve::cli
