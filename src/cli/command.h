// Subcommand registry for the `tuneserve` binary. Each cli/cmd_*.cpp registers one subcommand
// with a static Registration, so adding a command never edits main.cpp.
#pragma once

#include <CLI/CLI.hpp>
#include <signal.h>

#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

namespace tuneserve::cli {

struct Command {
  std::string name;
  std::string description;
  // Adds the subcommand's options to `app` and returns the function that runs it (exit code).
  std::function<std::function<int()>(CLI::App& app)> setup;
};

std::vector<Command>& registry();

// Blocks SIGINT and SIGTERM (and the signals in `also`) in the calling thread, and so in every
// thread started after it, and returns that set for sigwait. Commands that run kernels (train,
// quickstart, serve) call it before any other thread exists and take these signals in one thread of
// their own, never in a handler: cli/train_console.h says why.
sigset_t block_stop_signals(std::initializer_list<int> also = {});

struct Registration {
  explicit Registration(Command command) { registry().push_back(std::move(command)); }
};

}  // namespace tuneserve::cli
