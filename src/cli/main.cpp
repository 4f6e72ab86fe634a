// tuneserve: prep | train | eval | predict | serve | verify | tokenize | report | ...
// Every subcommand lives in its own cli/cmd_*.cpp; errors print as one line and exit non-zero
// (as the user's answer, not as a log record: they stay plain whatever --log-format says).
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <memory>

#include "cli/command.h"
#include "core/build_info.h"
#include "core/error.h"
#include "core/log.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/matmul.h"

namespace tuneserve::cli {
std::vector<Command>& registry() {
  static std::vector<Command> commands;
  return commands;
}

sigset_t block_stop_signals(std::initializer_list<int> also) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  for (const int sig : also) sigaddset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}
}  // namespace tuneserve::cli

int main(int argc, char** argv) {
  using namespace tuneserve::cli;
  CLI::App app{"tuneserve: fine-tune and serve BERT-family text classifiers"};
  app.set_version_flag("--version", [] {
    const tuneserve::BuildInfo& info = tuneserve::build_info();
    return fmt::format("tuneserve {}\ncommit {}\nbuild {} ({})\nkernels {}, oneDNN {}", info.version, info.commit,
                       info.build_type, info.target, tuneserve::kernel_isa_description(), tuneserve::onednn_isa());
  });
  app.require_subcommand(1);
  // Given before or after the subcommand (`tuneserve serve --log-level debug`).
  app.fallthrough();
  std::string log_level, log_format;
  app.add_option("--log-level,--log_level", log_level,
                 "Diagnostics on stderr: trace | debug | info | warn | error | critical | off (default info; "
                 "TUNESERVE_LOG_LEVEL)");
  app.add_option("--log-format,--log_format", log_format,
                 "text, or json: one JSON object per line (default text; TUNESERVE_LOG_FORMAT)");

  auto& commands = registry();
  std::sort(commands.begin(), commands.end(),
            [](const Command& a, const Command& b) { return a.name < b.name; });
  std::vector<std::pair<CLI::App*, std::function<int()>>> runners;
  for (auto& command : commands) {
    CLI::App* sub = app.add_subcommand(command.name, command.description);
    runners.emplace_back(sub, command.setup(*sub));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    tuneserve::logging::configure(log_level, log_format);
    for (auto& [sub, run] : runners) {
      if (sub->parsed()) return run();
    }
  } catch (const tuneserve::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 1;
}
