// Subcommand registry for the `tuneserve` binary. Each cli/cmd_*.cpp registers one subcommand
// with a static Registration, so adding a command never edits main.cpp.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
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

struct Registration {
  explicit Registration(Command command) { registry().push_back(std::move(command)); }
};

}  // namespace tuneserve::cli
