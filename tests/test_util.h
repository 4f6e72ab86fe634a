// Shared helpers for tests: where ../shared is, and skipping with a clear message without it.
#pragma once

#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/wait.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"

namespace tuneserve::testing {

inline std::string shared_path(const std::string& relative) {
  return std::string(TUNESERVE_SHARED_DIR) + "/" + relative;
}

inline std::string binary_path() { return TUNESERVE_BINARY; }

// This test process's scratch folder, <tmp>/tuneserve_test_<pid>: the process id keeps concurrent
// ctest runs (other checkouts on the machine, ctest -j) apart. Removed when the process exits
// normally (not by a forked child that exits: only the process that made it removes it).
inline const std::filesystem::path& scratch_dir() {
  struct Scratch {
    std::filesystem::path path = std::filesystem::temp_directory_path() / ("tuneserve_test_" + std::to_string(::getpid()));
    pid_t owner = ::getpid();
    Scratch() { std::filesystem::create_directories(path); }
    ~Scratch() {
      std::error_code ignored;
      if (::getpid() == owner) std::filesystem::remove_all(path, ignored);
    }
  };
  static const Scratch scratch;
  return scratch.path;
}

// A path for scratch file or folder `name` inside scratch_dir() (nothing is created).
inline std::filesystem::path scratch_path(const std::string& name) { return scratch_dir() / name; }

// An empty folder `name` inside scratch_dir(), whatever an earlier test left there.
inline std::filesystem::path fresh_scratch_dir(const std::string& name) {
  const std::filesystem::path dir = scratch_path(name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// The message of the tuneserve::Error that f throws, or "(no error)" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Runs a shell command line; returns its exit status (-1 if it did not exit) and stdout+stderr.
inline int run_command(const std::string& cmd, std::string& out) {
  FILE* pipe = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!pipe) return -1;
  char buf[65536];
  out.clear();
  std::size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, got);
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The threads of process `pid` ("tid name") that do not block both SIGINT and SIGTERM (their
// /proc/<pid>/task/<tid>/status SigBlk mask), and how many threads it has. A thread inside sigwait
// is not counted: the kernel unblocks the awaited signals while it waits (it takes them
// synchronously, no handler runs).
inline std::vector<std::string> threads_taking_stop_signals(pid_t pid, std::size_t* threads = nullptr) {
  std::vector<std::string> open;
  std::size_t n = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream status(task.path() / "status");
    std::string line, name;
    unsigned long long blocked = 0;
    bool read = false;
    while (std::getline(status, line)) {
      if (line.starts_with("Name:")) name = line.substr(line.find_first_not_of(" \t", 5));
      if (line.starts_with("SigBlk:")) {
        blocked = std::stoull(line.substr(7), nullptr, 16);
        read = true;
      }
    }
    if (!read) continue;  // the thread ended meanwhile
    n++;
    long syscall = -1;
    std::ifstream(task.path() / "syscall") >> syscall;
    if (syscall == SYS_rt_sigtimedwait) continue;
    const unsigned long long both = (1ULL << (SIGINT - 1)) | (1ULL << (SIGTERM - 1));
    if ((blocked & both) != both) open.push_back(task.path().filename().string() + " " + name);
  }
  if (threads) *threads = n;
  return open;
}

}  // namespace tuneserve::testing

// Skips the current test, naming the missing reference file, when ../shared is not beside the checkout.
#define TUNESERVE_REQUIRE_SHARED(relative)                                                    \
  do {                                                                                        \
    const std::string tuneserve_required_ = ::tuneserve::testing::shared_path(relative);      \
    if (!std::filesystem::exists(tuneserve_required_))                                        \
      GTEST_SKIP() << "reference material missing: " << tuneserve_required_                   \
                   << " (tests read ../shared beside the checkout)";                          \
  } while (0)
