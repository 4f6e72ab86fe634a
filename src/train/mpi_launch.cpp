// SageMaker's MPI job contract (train/mpi_launch.h): settings, the master's mpirun command, and the
// processes each host runs.
#include <spdlog/spdlog.h>

#include "train/mpi_launch.h"

#include <dirent.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "train/args.h"

extern char** environ;

namespace tuneserve::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

int positive_int(const std::string& text, const std::string& what) {
  std::size_t used = 0;
  int value = 0;
  try {
    value = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || value <= 0) fail("{}: '{}' is not a positive integer", what, text);
  return value;
}

std::vector<std::string> split_words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// Exit status of a finished child as a shell reports it (128 + signal when killed).
int exit_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

pid_t spawn(const std::vector<std::string>& argv, bool search_path) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // `train` blocks its stop signals in its threads (cli/train_console.h); a child must not inherit
  // that, or mpirun and sshd could not be stopped.
  sigset_t mask;
  pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  for (const int sig : {SIGINT, SIGTERM, kRankStopSignal}) sigdelset(&mask, sig);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setsigmask(&attr, &mask);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  const int err = search_path ? posix_spawnp(&pid, args[0], nullptr, &attr, args.data(), environ)
                              : posix_spawn(&pid, args[0], nullptr, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  if (err != 0) fail("cannot start {}: {}", argv[0], std::strerror(err));
  return pid;
}

// This process's own command line, its program as an absolute path (what every rank runs).
std::vector<std::string> own_command_line() {
  std::vector<std::string> argv;
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  for (std::string arg; std::getline(in, arg, '\0');) argv.push_back(arg);
  if (argv.empty()) fail("cannot read this process's command line (/proc/self/cmdline)");
  argv[0] = fs::read_symlink("/proc/self/exe").string();
  return argv;
}

// Variables the ranks on other hosts need: the job contract, tuneserve's own, credentials and caches.
std::vector<std::string> forwarded_variables() {
  std::vector<std::string> names;
  for (char** e = environ; *e; e++) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    for (const char* prefix : {"SM_", "TUNESERVE_", "AWS_", "HF_", "OMP_"})
      if (name.starts_with(prefix)) names.push_back(name);
    if (name == "PATH" || name == "LD_LIBRARY_PATH") names.push_back(name);
  }
  return names;
}

bool can_connect(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return false;
  bool ok = false;
  for (addrinfo* a = found; a && !ok; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    ok = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0;
    ::close(fd);
  }
  freeaddrinfo(found);
  return ok;
}

// Whether a process named `name` (its /proc/<pid>/comm) runs on this host.
bool process_running(const std::string& name) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream comm(e.path() / "comm");
    std::string line;
    if (std::getline(comm, line) && line == name) return true;
  }
  return false;
}

}  // namespace

MpiJob mpi_job(const JobEnv& env) {
  MpiJob job;
  auto setting = [&](const char* key) -> std::optional<std::string> {
    if (!env.hyperparameters.contains(key)) return std::nullopt;
    return hyperparameter_text(env.hyperparameters[key], key, env.hyperparameters_path);
  };
  auto where = [&](const char* key) { return fmt::format("{}: hyperparameter {}", env.hyperparameters_path, key); };
  if (auto v = setting("sagemaker_mpi_enabled")) {
    if (*v != "true" && *v != "false") fail("{}: '{}' is not true or false", where("sagemaker_mpi_enabled"), *v);
    job.enabled = *v == "true";
  }
  job.processes_per_host = env.num_gpus > 0 ? env.num_gpus : 1;  // one rank per GPU, or per host on CPUs
  if (auto v = setting("sagemaker_mpi_num_of_processes_per_host"))
    job.processes_per_host = positive_int(*v, where("sagemaker_mpi_num_of_processes_per_host"));
  if (auto v = setting("sagemaker_mpi_num_processes")) job.processes = positive_int(*v, where("sagemaker_mpi_num_processes"));
  if (auto v = setting("sagemaker_mpi_custom_mpi_options")) job.custom_options = split_words(*v);
  job.network_interface = env.network_interface;
  job.hosts = env.hosts;
  job.current_host = env.current_host;
  if (job.hosts.empty()) {
    if (job.current_host.empty()) job.current_host = "localhost";
    job.hosts = {job.current_host};
  }
  if (job.current_host.empty()) fail("SM_HOSTS lists {} hosts but SM_CURRENT_HOST is not set", job.hosts.size());
  if (std::find(job.hosts.begin(), job.hosts.end(), job.current_host) == job.hosts.end())
    fail("SM_CURRENT_HOST {} is not one of SM_HOSTS", job.current_host);
  return job;
}

std::vector<std::string> mpirun_command(const MpiJob& job, const std::vector<std::string>& forward_env,
                                        const std::vector<std::string>& program) {
  std::vector<std::string> slots;
  for (const std::string& h : job.hosts) slots.push_back(fmt::format("{}:{}", h, job.processes_per_host));
  const std::string hosts = fmt::format("{}", fmt::join(slots, ","));
  const int processes = job.processes > 0 ? job.processes : job.processes_per_host * static_cast<int>(job.hosts.size());
  std::vector<std::string> cmd = {"mpirun", "--host", hosts, "-np", std::to_string(processes),
                                  // containers run as root; every line says which rank wrote it
                                  "--allow-run-as-root", "--tag-output",
                                  // each rank sizes its own threads (SM_NUM_CPUS / ranks per host): a rank
                                  // bound to one core, mpirun's default for 2 ranks, would idle the rest
                                  "--bind-to", "none", "--map-by", "slot",
                                  // one rank failing ends the job at once
                                  "-mca", "orte_abort_on_non_zero_status", "1", "-mca", "btl", "^openib",
                                  // how the launcher stops the ranks (kRankStopSignal), forwarded by
                                  // default but not where a site's openmpi-mca-params.conf says "none"
                                  "-mca", "ess_base_forward_signals", "SIGUSR1"};
  if (job.hosts.size() > 1) {
    for (const char* param : {"btl_tcp_if_include", "oob_tcp_if_include"})
      cmd.insert(cmd.end(), {"-mca", param, job.network_interface});
    cmd.insert(cmd.end(), {"-mca", "plm_rsh_no_tree_spawn", "1", "-x", "NCCL_SOCKET_IFNAME=" + job.network_interface});
  }
  for (const std::string& name : forward_env) cmd.insert(cmd.end(), {"-x", name});
  cmd.insert(cmd.end(), job.custom_options.begin(), job.custom_options.end());
  cmd.insert(cmd.end(), program.begin(), program.end());
  return cmd;
}

int run_sagemaker_mpi(const MpiJob& job, const StopSignals& signals) {
  static_assert(kRankStopSignal == SIGUSR1, "mpirun_command forwards SIGUSR1");
  // From here a stop signal no longer ends this process: it is kept for mpirun, or counted.
  signals.forward_to(0, 0);
  auto stopping = [&] {
    if (signals.received() == 0) return false;
    spdlog::info("mpi: stopped before the ranks started on {}", job.current_host);
    return true;
  };
  if (job.master()) {
    for (const std::string& host : job.hosts) {
      if (host == job.current_host) continue;
      spdlog::info("mpi: waiting for {} to accept SSH (port 22)", host);
      const auto deadline = Clock::now() + std::chrono::minutes(60);
      while (!can_connect(host, 22)) {
        if (stopping()) return 0;
        if (Clock::now() > deadline) fail("mpi: host {} did not accept SSH connections within an hour", host);
        std::this_thread::sleep_for(std::chrono::seconds(1));
      }
    }
    if (stopping()) return 0;
    const std::vector<std::string> cmd = mpirun_command(job, forwarded_variables(), own_command_line());
    spdlog::info("mpi: {}", fmt::join(cmd, " "));
    spdlog::default_logger()->flush();
    const pid_t pid = spawn(cmd, true);
    signals.forward_to(pid, kRankStopSignal);
    // Waits for mpirun to end without reaping it, so that no signal forwarded meanwhile can reach
    // another process given its pid.
    siginfo_t ended{};
    while (::waitid(P_PID, static_cast<id_t>(pid), &ended, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
    }
    signals.forward_to(0, 0);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    const int code = exit_status(status);
    if (code != 0) fail("mpirun ended with status {} (the failing rank and its host are named above)", code);
    return 0;
  }
  // A worker: mpirun reaches this host over SSH and starts orted, which runs the ranks here.
  const std::string sshd = "/usr/sbin/sshd";
  if (!fs::exists(sshd))
    fail("mpi: this host ({}) must accept SSH from {} for a multi-host job, but {} is missing: install "
         "openssh-server in the container and give every host the same root key pair",
         job.current_host, job.hosts.front(), sshd);
  spawn({sshd, "-D"}, false);
  spdlog::info("mpi: {} waits for the ranks {} starts here", job.current_host, job.hosts.front());
  const auto deadline = Clock::now() + std::chrono::minutes(5);
  while (!process_running("orted")) {
    if (stopping()) return 0;
    if (Clock::now() > deadline)
      fail("mpi: no MPI daemon (orted) started on {} within 5 minutes; {} did not reach it", job.current_host,
           job.hosts.front());
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  // Stopping, the master's mpirun stops the ranks here too (kRankStopSignal); signalling them from
  // here as well would be their second signal, which ends a rank at once, without its step. The wait
  // is bounded below SageMaker's 120 s (StopTrainingJob: SIGTERM, then the container is ended), so
  // that a master that never stops them leaves a failure reason rather than a killed container.
  std::optional<Clock::time_point> stop_deadline;
  while (process_running("orted")) {
    if (!stop_deadline && signals.received() > 0) {
      stop_deadline = Clock::now() + std::chrono::seconds(100);
      spdlog::info("mpi: stopping; {} waits up to 100 s for the master to stop the ranks here", job.current_host);
    }
    if (stop_deadline && Clock::now() > *stop_deadline)
      fail("mpi: the ranks on {} still run 100 s after the stop signal; {} did not stop them", job.current_host,
           job.hosts.front());
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  spdlog::info("mpi: the ranks on {} have finished", job.current_host);
  return 0;
}

}  // namespace tuneserve::train
