// Data-parallel training end to end, as users launch it: `mpirun --allow-run-as-root --oversubscribe
// -np 2 tuneserve train ...` against `tuneserve train` alone with the whole global batch.
// - 2 ranks x 8 rows give every parameter of 1 process x 16 rows after 5 optimizer steps within 1e-5
//   relative per tensor (||a - b|| / ||b|| and max|a - b| / max|b|), per element within
//   1e-6 + 1e-5 |b| (why not 1e-5 relative per element: WeightGap in mpi_jobs.h; every figure is
//   printed), and the same loss curve (goldens' models, dropout on, a short last batch).
// - The same final accuracy on a short Amazon run.
// - Resume on another number of ranks continues the same trajectory.
// - A killed rank ends the whole job within seconds, naming the rank and its host.
// - SIGTERM to the ranks stops them at one step with one checkpoint; no thread takes it asynchronously.
// - Ranks that disagree (data, model, hyperparameters) are refused at start-up, saying what differs.
// - A SageMaker job with sagemaker_mpi_enabled starts mpirun itself, and SIGTERM to it (SageMaker
//   stopping the job) stops the ranks with a checkpoint, leaving none running.
// Every test skips, saying why, where mpirun is absent.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "mpi_jobs.h"

namespace tuneserve::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string hostname() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

// A recipe on a golden's tiny model: AdamW with decay, warmup, clipping, dropout on, a loss log
// every step, no checkpoints.
std::string golden_recipe(const std::string& model, const std::string& data, const fs::path& out) {
  return "--model " + model + " --train " + data + " --epochs 1 --learning-rate 1e-3 --weight-decay 0.01 " +
         "--warmup-steps 1 --max-grad-norm 1.0 --logging-steps 1 --save-strategy no --seed 3 --threads 1 " +
         "--output-dir " + out.string();
}

class Exactness : public ::testing::TestWithParam<const char*> {};

// 75 rows: four full global batches of 16 and one of 11 (ranks take 5 and 6 rows).
TEST_P(Exactness, TwoRanksOfEightMatchOneProcessOfSixteen) {
  TUNESERVE_REQUIRE_MPIRUN();
  const std::string arch = GetParam();
  TUNESERVE_REQUIRE_SHARED("goldens/" + arch + "/config.json");
  const std::string model = shared_path("goldens/" + arch);
  const fs::path dir = fresh_scratch_dir("exact_" + arch);
  const std::string data = write_rows(dir / "data", 75, 1000, 60, model_labels(model), 11);
  std::string log;
  ASSERT_EQ(train(1, golden_recipe(model, data, dir / "one") + " --train-batch-size 16", log), 0) << log;
  ASSERT_EQ(train(2, golden_recipe(model, data, dir / "two") + " --train-batch-size 8", log), 0) << log;

  expect_weights_match(weight_gap(dir / "two", dir / "one"), arch + ": 2 x 8 vs 1 x 16 after 5 steps");

  const auto one = read_jsonl(dir / "one" / "metrics.jsonl"), two = read_jsonl(dir / "two" / "metrics.jsonl");
  ASSERT_EQ(one.size(), 5u);
  ASSERT_EQ(two.size(), one.size());
  double loss_gap = 0;
  for (std::size_t s = 0; s < one.size(); s++) {
    const double a = two[s]["loss"].get<double>(), b = one[s]["loss"].get<double>();
    loss_gap = std::max(loss_gap, std::abs(a - b) / std::abs(b));
    EXPECT_NEAR(a, b, 1e-5 * std::abs(b)) << "step " << s + 1;
    EXPECT_NEAR(two[s]["grad_norm"].get<double>(), one[s]["grad_norm"].get<double>(),
                1e-5 * one[s]["grad_norm"].get<double>()) << "step " << s + 1;
  }
  std::printf("[ %s ] step losses: max relative difference %.3g\n", arch.c_str(), loss_gap);
  std::ifstream results(dir / "two" / "train_results.json");
  EXPECT_EQ(nlohmann::json::parse(results)["world_size"], 2);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Goldens, Exactness, ::testing::Values("distilbert", "bert", "roberta"));

// Accumulation of 2 micro-batches, and a last global batch of one row: rank 1 has nothing to compute
// there but still joins the gradient sum and keeps its dropout stream in step.
TEST(Exactness, AccumulationAndARankWithoutRows) {
  TUNESERVE_REQUIRE_MPIRUN();
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/config.json");
  const std::string model = shared_path("goldens/distilbert");
  const fs::path dir = fresh_scratch_dir("exact_accum");
  const std::string data = write_rows(dir / "data", 65, 1000, 60, model_labels(model), 5);
  std::string log;
  const std::string recipe = golden_recipe(model, data, dir / "one") + " --gradient-accumulation-steps 2";
  ASSERT_EQ(train(1, recipe + " --train-batch-size 8", log), 0) << log;
  ASSERT_EQ(train(2, golden_recipe(model, data, dir / "two") + " --gradient-accumulation-steps 2 --train-batch-size 4", log), 0)
      << log;
  expect_weights_match(weight_gap(dir / "two", dir / "one"), "accumulation: 2 x 4 x 2 vs 1 x 8 x 2");
  fs::remove_all(dir);
}

// The Amazon recipe (distilbert-tiny-init, lr 5e-4, dropout) for 40 steps of 16 reviews, evaluated on
// the whole test set: two ranks reach the same accuracy as one process.
TEST(Exactness, SameAccuracyOnAShortAmazonRun) {
  TUNESERVE_REQUIRE_MPIRUN();
  TUNESERVE_REQUIRE_SHARED("data/amazon_polarity/train.jsonl");
  TUNESERVE_REQUIRE_SHARED("models/distilbert-tiny-init/config.json");
  const fs::path dir = fresh_scratch_dir("amazon");
  const std::string recipe = "--model " + shared_path("models/distilbert-tiny-init") + " --tokenizer " +
                             shared_path("tokenizers/bert-base-cased") + " --train " +
                             shared_path("data/amazon_polarity/train.jsonl") + " --test " +
                             shared_path("data/amazon_polarity/test.jsonl") +
                             " --text content --label label --max-length 256 --learning-rate 5e-4 --warmup-ratio 0.06" +
                             " --weight-decay 0.01 --max-steps 40 --eval-strategy epoch --save-strategy no --seed 0" +
                             " --eval-batch-size 64 --threads 1 --output-dir ";
  std::string log;
  ASSERT_EQ(train(1, recipe + (dir / "one").string() + " --train-batch-size 16", log), 0) << log;
  ASSERT_EQ(train(2, recipe + (dir / "two").string() + " --train-batch-size 8", log), 0) << log;
  std::ifstream a(dir / "one" / "eval_results.json"), b(dir / "two" / "eval_results.json");
  const nlohmann::json one = nlohmann::json::parse(a), two = nlohmann::json::parse(b);
  std::printf("[ amazon ] 40 steps of 16: accuracy %.4f (1 process) and %.4f (2 ranks) on %ld reviews; "
              "eval loss %.6f and %.6f\n",
              one["eval_accuracy"].get<double>(), two["eval_accuracy"].get<double>(), one["eval_samples"].get<long>(),
              one["eval_loss"].get<double>(), two["eval_loss"].get<double>());
  EXPECT_EQ(two["eval_samples"], one["eval_samples"]);  // the whole test set, not one rank's share
  EXPECT_EQ(two["eval_accuracy"].get<double>(), one["eval_accuracy"].get<double>());
  EXPECT_NEAR(two["eval_loss"].get<double>(), one["eval_loss"].get<double>(), 1e-4);
  fs::remove_all(dir);
}

// A checkpoint of 2 ranks x 8 resumed by 1 process x 16, and one of 1 x 16 resumed by 2 x 8, end
// where the uninterrupted run ends.
TEST(Resume, OnAnotherNumberOfRanks) {
  TUNESERVE_REQUIRE_MPIRUN();
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/config.json");
  const std::string model = shared_path("goldens/distilbert");
  const fs::path dir = fresh_scratch_dir("resume");
  const std::string data = write_rows(dir / "data", 96, 1000, 60, model_labels(model), 9);
  auto recipe = [&](const fs::path& out, int ranks) {
    return "--model " + model + " --train " + data + " --max-steps 6 --learning-rate 1e-3 --warmup-steps 1 --seed 4" +
           " --save-strategy steps --save-steps 3 --logging-steps 1 --threads 1 --train-batch-size " +
           std::to_string(16 / ranks) + " --output-dir " + out.string();
  };
  std::string log;
  ASSERT_EQ(train(2, recipe(dir / "two", 2), log), 0) << log;
  ASSERT_EQ(train(1, recipe(dir / "one", 1), log), 0) << log;
  // Each run's checkpoint-3 continued by the other number of ranks.
  for (const auto& [from, ranks] : {std::pair{"two", 1}, std::pair{"one", 2}}) {
    const fs::path resumed = dir / (std::string(from) + "_resumed");
    fs::create_directories(resumed);
    fs::copy(dir / from / "checkpoint-3", resumed / "checkpoint-3", fs::copy_options::recursive);
    ASSERT_EQ(train(ranks, recipe(resumed, ranks) + " --resume latest", log), 0) << log;
    expect_weights_match(weight_gap(resumed, dir / from), "resume: checkpoint-3 of " + std::string(from) + " on " +
                                                             std::to_string(ranks) + " rank(s) vs the uninterrupted run");
    const auto logs = read_jsonl(resumed / "metrics.jsonl");
    ASSERT_EQ(logs.size(), 6u);
    EXPECT_EQ(logs.back()["step"], 6);
  }
  // A global batch other than the checkpoint's is refused.
  const fs::path other = dir / "other";
  fs::create_directories(other);
  fs::copy(dir / "two" / "checkpoint-3", other / "checkpoint-3", fs::copy_options::recursive);
  const std::string args = "--model " + model + " --train " + data +
                           " --max-steps 6 --learning-rate 1e-3 --warmup-steps 1 --seed 4 --threads 1 --train-batch-size 16" +
                           " --resume latest --output-dir " + other.string();
  EXPECT_NE(train(2, args, log), 0);
  EXPECT_NE(log.find("global batch"), std::string::npos) << log;
  fs::remove_all(dir);
}

// Runs `command` in its own process group with output to `log_path`; the pid of the command.
pid_t start(const std::string& command, const fs::path& log_path) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    const std::string line = "exec " + command + " >" + log_path.string() + " 2>&1";
    ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// The state letter of process `pid` (R, S, Z, ...) and its parent's pid; state 0 when it is gone.
std::pair<char, pid_t> process_state(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  if (close == std::string::npos) return {0, 0};
  std::istringstream fields(line.substr(close + 2));
  char state = 0;
  pid_t ppid = 0;
  fields >> state >> ppid;
  return {state, ppid};
}

// The processes whose parent is `parent`.
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    if (process_state(pid).second == parent) out.push_back(pid);
  }
  return out;
}

// The child of `parent` whose environment says OMPI_COMM_WORLD_RANK=`rank`, or -1.
pid_t rank_pid(pid_t parent, int rank) {
  const std::string wanted = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (const pid_t pid : children_of(parent)) {
    std::ifstream env("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
    for (std::string var; std::getline(env, var, '\0');)
      if (var == wanted) return pid;
  }
  return -1;
}

// Starts `command` (output to dir/log) and returns its pid once rank 0 has logged a step in the
// training's output folder `out` (both ranks are then in the training loop), or -1.
pid_t start_training(const std::string& command, const fs::path& dir, const fs::path& out) {
  const pid_t job = start(command, dir / "log");
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (job > 0 && line_count(out / "metrics.jsonl") < 2 && process_state(job).first != 'Z' && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return job;
}

// The settings of training without end on the distilbert golden, logging every step.
constexpr const char* endless = "--max-steps 1000000 --train-batch-size 4 --logging-steps 1 --save-strategy no --threads 1";

// Two ranks training without end on `mpirun -np 2`; returns mpirun's pid (start_training).
pid_t start_endless_training(const fs::path& dir) {
  const std::string data = write_rows(dir / "data", 64, 1000, 60, 2, 2);
  const std::string cmd = mpirun() + " -np 2 " + binary_path() + " train --progress false --model " +
                          shared_path("goldens/distilbert") + " --train " + data + " " + endless + " --output-dir " +
                          (dir / "out").string();
  return start_training(cmd, dir, dir / "out");
}

// Waits up to a minute for the job to end; returns its pid if it did, else kills its process group
// and returns 0.
pid_t wait_for_job(pid_t job, int* status) {
  const auto since = Clock::now();
  pid_t done = 0;
  while ((done = ::waitpid(job, status, WNOHANG)) == 0 && Clock::now() - since < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (done == 0) {
    ::kill(-job, SIGKILL);
    ::waitpid(job, status, 0);
  }
  return done;
}

std::string read_log(const fs::path& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(Faults, AKilledRankEndsTheJobWithinSecondsNamingRankAndHost) {
  TUNESERVE_REQUIRE_MPIRUN();
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/config.json");
  const fs::path dir = fresh_scratch_dir("killed");
  const pid_t job = start_endless_training(dir);
  ASSERT_GT(job, 0);
  // Once both ranks train (rank 0 has logged a step), rank 1 dies as an OOM kill would end it.
  const pid_t victim = rank_pid(job, 1);
  ASSERT_GT(victim, 0) << "rank 1 not found among mpirun's children";
  const auto killed = Clock::now();
  ::kill(victim, SIGKILL);
  int status = 0;
  const pid_t done = wait_for_job(job, &status);
  const double seconds = std::chrono::duration<double>(Clock::now() - killed).count();
  const std::string log = read_log(dir / "log");
  std::printf("[ killed rank ] the job ended %.2f s after rank 1 was killed\n", seconds);
  ASSERT_EQ(done, job) << "the job was still running a minute after rank 1 died:\n" << log;
  EXPECT_LT(seconds, 10.0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << log;
  EXPECT_NE(log.find("rank 1"), std::string::npos) << log;
  EXPECT_NE(log.find(hostname()), std::string::npos) << log;
  fs::remove_all(dir);
}

// `out` holds one checkpoint, complete (its trainer_state.json names its own step).
void expect_one_complete_checkpoint(const fs::path& out, const std::string& log) {
  std::vector<fs::path> checkpoints;
  for (const auto& e : fs::directory_iterator(out))
    if (e.path().filename().string().starts_with("checkpoint-")) checkpoints.push_back(e.path());
  ASSERT_EQ(checkpoints.size(), 1u) << log;
  std::ifstream state(checkpoints[0] / "trainer_state.json");
  ASSERT_TRUE(state) << "incomplete checkpoint " << checkpoints[0] << "\n" << log;
  EXPECT_EQ("checkpoint-" + std::to_string(nlohmann::json::parse(state)["state"]["global_step"].get<long>()),
            checkpoints[0].filename().string());
}

// Issue 11: SIGTERM to every rank (an orchestrator stopping the job's processes) stops them at one
// step: rank 0 writes one complete checkpoint and the job exits 0. No thread of a rank, MPI's and the
// gradient thread included, may take the signal asynchronously (cli/train_console.h: oneDNN's AVX2
// sgemm runs with its stack pointer in the heap, where a handler's frame would go).
TEST(Signals, SigtermStopsEveryRankAtOneStepWithACheckpoint) {
  TUNESERVE_REQUIRE_MPIRUN();
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/config.json");
  const fs::path dir = fresh_scratch_dir("sigterm");
  const pid_t job = start_endless_training(dir);
  ASSERT_GT(job, 0);
  std::vector<pid_t> ranks;
  for (int r = 0; r < 2; r++) {
    ranks.push_back(rank_pid(job, r));
    EXPECT_GT(ranks.back(), 0) << "rank " << r << " not found among mpirun's children";
  }
  for (std::size_t r = 0; r < ranks.size(); r++) {
    std::size_t threads = 0;
    std::string names;
    for (const std::string& t : threads_taking_stop_signals(ranks[r], &threads)) names += " [" + t + "]";
    EXPECT_TRUE(names.empty()) << "rank " << r << ": of " << threads << " threads, these take SIGINT/SIGTERM:" << names;
  }
  for (const pid_t pid : ranks)
    if (pid > 0) ::kill(pid, SIGTERM);
  int status = 0;
  const pid_t done = wait_for_job(job, &status);
  const std::string log = read_log(dir / "log");
  ASSERT_EQ(done, job) << "the job was still running a minute after SIGTERM:\n" << log;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << log;
  expect_one_complete_checkpoint(dir / "out", log);
  fs::remove_all(dir);
}

// Two ranks given different settings (MPMD launch: one command line per rank).
std::string mismatched(const std::string& rank0, const std::string& rank1, int* status) {
  const std::string train = binary_path() + " train --progress false --threads 1 --max-steps 2 --save-strategy no ";
  std::string log;
  *status = run_command(mpirun() + " -np 1 " + train + rank0 + " : -np 1 " + train + rank1, log);
  return log;
}

TEST(Faults, RanksThatDisagreeAreRefusedSayingWhat) {
  TUNESERVE_REQUIRE_MPIRUN();
  TUNESERVE_REQUIRE_SHARED("goldens/roberta/config.json");
  const fs::path dir = fresh_scratch_dir("mismatch");
  const std::string model = shared_path("goldens/distilbert");
  const std::string a = write_rows(dir / "a", 40, 1000, 30, 2, 1), b = write_rows(dir / "b", 40, 1000, 30, 2, 2);
  const std::string base = "--model " + model + " --output-dir " + (dir / "out").string() + " --train ";
  int status = 0;

  std::string log = mismatched(base + a + " --learning-rate 1e-3", base + a + " --learning-rate 2e-3", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(log.find("hyperparameters.learning_rate"), std::string::npos) << log;
  EXPECT_NE(log.find("rank 1 of 2 on " + hostname()), std::string::npos) << log;

  log = mismatched(base + a, base + b, &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(log.find("train_data.sha256"), std::string::npos) << log;
  EXPECT_EQ(log.find("hyperparameters."), std::string::npos) << log;

  // Another model (RoBERTa's golden, also 2 labels) on rank 1.
  log = mismatched(base + a, "--model " + shared_path("goldens/roberta") + " --output-dir " + (dir / "out").string() +
                                 " --train " + a, &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(log.find("model.weights_sha256"), std::string::npos) << log;

  // A rank that fails on its own (its data is missing) ends the job, naming itself.
  log = mismatched(base + a, base + (dir / "missing").string(), &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(log.find("rank 1 of 2 on " + hostname()), std::string::npos) << log;
  EXPECT_NE(log.find("does not exist"), std::string::npos) << log;
  fs::remove_all(dir);
}

// A SageMaker job on this host alone under `root`: rows in the train channel, hyperparameters.json
// with the golden distilbert, `hyperparameters` and MPI with 2 processes per host. Returns the
// command that starts it as SageMaker does (`tuneserve train`, no mpirun in sight; `args` added).
std::string sagemaker_mpi_job(const fs::path& root, nlohmann::json hyperparameters, const std::string& args = "") {
  write_rows(root / "input" / "data" / "train", 48, 1000, 40, 2, 6);
  fs::create_directories(root / "input" / "config");
  hyperparameters.update({{"model", nlohmann::json(shared_path("goldens/distilbert")).dump()},  // JSON-encoded, as SageMaker writes it
                          {"sagemaker_mpi_enabled", "true"}, {"sagemaker_mpi_num_of_processes_per_host", "2"},
                          {"sagemaker_mpi_custom_mpi_options", "\"--oversubscribe\""}});
  std::ofstream(root / "input" / "config" / "hyperparameters.json") << hyperparameters.dump();
  const std::string host = hostname();
  return "env SM_HOSTS='[\"" + host + "\"]' SM_CURRENT_HOST=" + host + " SM_NUM_CPUS=2 TUNESERVE_SM_ROOT=" + root.string() +
         " " + binary_path() + " train --progress false " + args;
}

// SageMaker's MPI contract on one host: hyperparameters.json asks for MPI with 2 processes per host;
// `tuneserve train` starts the ranks itself, and rank 0 writes the model.
TEST(SageMaker, MpiEnabledJobStartsItsRanks) {
  TUNESERVE_REQUIRE_MPIRUN();
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/config.json");
  const fs::path root = fresh_scratch_dir("sagemaker");
  const std::string job =
      sagemaker_mpi_job(root, {{"max_steps", "3"}, {"train_batch_size", "4"}, {"save_strategy", "\"no\""}});
  std::string log;
  ASSERT_EQ(run_command(job, log), 0) << log;
  EXPECT_NE(log.find("mpi: mpirun --host " + hostname() + ":2 -np 2"), std::string::npos) << log;
  std::ifstream results(root / "model" / "train_results.json");
  ASSERT_TRUE(results) << log;
  EXPECT_EQ(nlohmann::json::parse(results)["world_size"], 2);
  EXPECT_TRUE(fs::exists(root / "model" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(root / "output" / "failure"));
  fs::remove_all(root);
}

// Whether process `pid` runs (neither gone nor a zombie).
bool running(pid_t pid) {
  const char state = pid > 0 ? process_state(pid).first : 0;
  return state != 0 && state != 'Z';
}

// SIGKILLs the processes a test started that still run when it ends, however it ends.
struct KillLeftovers {
  std::vector<pid_t> pids;
  ~KillLeftovers() {
    for (const pid_t pid : pids)
      if (running(pid)) ::kill(pid, SIGKILL);
  }
};

// SageMaker stopping an MPI job sends SIGTERM to the container's main process, the launcher only:
// it passes the signal on to mpirun, which passes it on to every rank and gives them time to save
// rank 0's checkpoint; the launcher then exits 0 with no rank left running.
TEST(SageMaker, SigtermToTheLauncherStopsTheRanksWithACheckpoint) {
  TUNESERVE_REQUIRE_MPIRUN();
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/config.json");
  const fs::path root = fresh_scratch_dir("sagemaker_sigterm");
  // A SageMaker job logs into its model folder and checkpoints into /opt/ml/checkpoints.
  const pid_t launcher = start_training(sagemaker_mpi_job(root, {}, endless), root, root / "model");
  ASSERT_GT(launcher, 0);
  KillLeftovers leftovers{{launcher}};
  const std::vector<pid_t> mpirun = children_of(launcher);
  for (const pid_t pid : mpirun) leftovers.pids.push_back(pid);
  std::vector<pid_t> ranks;
  for (int r = 0; r < 2 && mpirun.size() == 1; r++) ranks.push_back(rank_pid(mpirun[0], r));
  for (const pid_t pid : ranks) leftovers.pids.push_back(pid);
  ASSERT_GE(line_count(root / "model" / "metrics.jsonl"), 2u) << "the ranks did not start training:\n" << read_log(root / "log");
  ASSERT_EQ(mpirun.size(), 1u) << "the launcher should have one child, mpirun";
  ASSERT_TRUE(ranks[0] > 0 && ranks[1] > 0) << "ranks 0 and 1 not found among mpirun's children";

  const auto sent = Clock::now();
  ::kill(launcher, SIGTERM);
  int status = 0;
  const pid_t done = wait_for_job(launcher, &status);
  const double seconds = std::chrono::duration<double>(Clock::now() - sent).count();
  // mpirun or a rank that outlived the launcher would be reparented and go on training.
  std::string left;
  for (const pid_t pid : {mpirun[0], ranks[0], ranks[1]})
    if (running(pid)) left += " " + std::to_string(pid);
  const std::string log = read_log(root / "log");
  std::printf("[ sagemaker sigterm ] the launcher exited %.2f s after SIGTERM\n", seconds);
  ASSERT_EQ(done, launcher) << "the launcher was still running a minute after SIGTERM:\n" << log;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << (WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                              : "exit status " + std::to_string(WEXITSTATUS(status)))
      << "\n" << log;
  EXPECT_LT(seconds, 15.0) << log;
  EXPECT_TRUE(left.empty()) << "still running after the launcher exited (mpirun " << mpirun[0] << ", ranks " << ranks[0]
                            << " " << ranks[1] << "):" << left << "\n" << log;
  expect_one_complete_checkpoint(root / "checkpoints", log);
  fs::remove_all(root);
}

}  // namespace
}  // namespace tuneserve::testing
