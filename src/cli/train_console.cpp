// Console side of a training run: progress bar or plain lines, SIGINT/SIGTERM -> checkpoint and stop
// (or, in a launcher, -> its child).
#include "cli/train_console.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "core/log.h"
#include "train/mpi_launch.h"
#include "train/trainer_log.h"


namespace tuneserve::cli {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};
std::atomic<bool> g_watching{false};
// Set while train_with_console runs and no stop was asked yet: the next signal is a stop request.
std::atomic<bool> g_armed{false};

// forward_stop_signals: whether it was called, the child that gets the signals (0: none yet), what
// the first is sent as, the signals received before the child was named, and how many came in all.
struct Forwarding {
  std::mutex mutex;
  bool on = false;
  pid_t child = 0;
  int first_as = 0;
  std::vector<int> held;
  int received = 0;
};
Forwarding g_forwarding;

const char* signal_name(int sig) { return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGUSR1"; }

// The signal the child gets for the `nth` (from 1) signal received, `sig`.
int sent_as(int nth, int sig) { return nth == 1 && g_forwarding.first_as != 0 ? g_forwarding.first_as : sig; }

// Sends `sig` on to the child, or keeps it until there is one; false when not forwarding.
bool forward(int sig) {
  std::lock_guard lock(g_forwarding.mutex);
  if (!g_forwarding.on) return false;
  const int nth = ++g_forwarding.received;
  std::string message;
  if (g_forwarding.child > 0) {
    ::kill(g_forwarding.child, sent_as(nth, sig));
    message = fmt::format("\n{}: passed on to process {} as {}, which stops the job\n", signal_name(sig),
                          g_forwarding.child, signal_name(sent_as(nth, sig)));
  } else {
    g_forwarding.held.push_back(sig);
    message = fmt::format("\n{}: waiting for the job's processes to stop\n", signal_name(sig));
  }
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, message.data(), message.size());
  return true;
}

// The one thread that receives SIGINT/SIGTERM/SIGUSR1. Under forward_stop_signals each goes to the
// child. Else the first while training asks for a checkpoint after this step; another one, or one
// outside training, has the default effect: the process ends at once (killed by that signal, as with
// no handling at all).
[[noreturn]] void watch_stop_signals(sigset_t set) {
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (forward(sig)) continue;
    if (g_armed.exchange(false)) {
      g_signal = sig;
      g_stop = true;
      const char* message = sig == SIGTERM   ? "\nSIGTERM: saving a checkpoint after this step, then exiting\n"
                            : sig == SIGUSR1 ? "\nSIGUSR1 (the job is stopping): saving a checkpoint after this step, then exiting\n"
                                             : "\ninterrupt: saving a checkpoint after this step (Ctrl-C again to abort)\n";
      [[maybe_unused]] auto n = ::write(STDERR_FILENO, message, std::strlen(message));
      continue;
    }
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    std::signal(sig, SIG_DFL);
    pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
    ::raise(sig);
  }
}

}  // namespace

void take_stop_signals() {
  if (g_watching.exchange(true)) return;
  std::thread(watch_stop_signals, block_stop_signals({train::kRankStopSignal})).detach();
}

void forward_stop_signals(pid_t child, int first_as) {
  if (!g_watching) throw std::logic_error("forward_stop_signals before take_stop_signals");
  std::lock_guard lock(g_forwarding.mutex);
  g_forwarding.on = true;
  g_forwarding.child = child;
  g_forwarding.first_as = first_as;
  if (child <= 0) return;
  for (std::size_t i = 0; i < g_forwarding.held.size(); i++)
    ::kill(child, sent_as(static_cast<int>(i) + 1, g_forwarding.held[i]));
  g_forwarding.held.clear();
}

int stop_signals_received() {
  std::lock_guard lock(g_forwarding.mutex);
  return g_forwarding.received;
}

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
  // Kernels must never run on a thread that can receive these signals (take_stop_signals).
  if (!g_watching) throw std::logic_error("train_with_console before take_stop_signals");
  g_stop = false;
  g_signal = 0;
  g_armed = true;
  train::TrainOutcome outcome;
  try {
    outcome = train::train_model(model, args, train, test, paths, hooks);
  } catch (...) {
    g_armed = false;
    progress.finish();
    throw;
  }
  g_armed = false;
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

int interrupted_exit_code() { return g_signal == SIGINT ? 130 : 0; }

}  // namespace tuneserve::cli
