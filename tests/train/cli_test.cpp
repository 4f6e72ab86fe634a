// `tuneserve train` end to end on a slice of the Amazon reviews: the Hugging Face output directory
// and result files, the SageMaker job contract in a temporary root (hyperparameters.json with
// JSON-encoded values, channels, model dir, failure file), and Ctrl-C: SIGINT saves a checkpoint,
// exits 130, and --resume latest finishes the run (SIGTERM the same, exiting 0).
#include <gtest/gtest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"
#include "kernels/ops.h"
#include "tokenizer/tokenizer.h"
#include "train/report.h"
#include "test_util.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using tuneserve::testing::binary_path;
using tuneserve::testing::shared_path;

// The first `n` lines of a shared data file, as a file of their own.
std::string head(const std::string& relative, int n, const fs::path& to) {
  std::ifstream in(shared_path(relative));
  std::ofstream out(to);
  std::string line;
  for (int i = 0; i < n && std::getline(in, line); i++) out << line << "\n";
  return to.string();
}

int run(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

std::size_t count_lines(const fs::path& p) {
  std::ifstream in(p);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) n++;
  return n;
}

class TrainCli : public ::testing::Test {
 public:
  void SetUp() override {
    if (!fs::exists(shared_path("models/distilbert-tiny-init/model.safetensors")) ||
        !fs::exists(shared_path("data/amazon_polarity/train.jsonl")))
      GTEST_SKIP() << "reference material missing under " << shared_path("");
    dir = fs::temp_directory_path() / ("tuneserve_cli_" + std::to_string(::getpid()) + "_" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    train = head("data/amazon_polarity/train.jsonl", 64, dir / "train.jsonl");
    test = head("data/amazon_polarity/test.jsonl", 32, dir / "test.jsonl");
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string base() const {
    return binary_path() + " train --model " + shared_path("models/distilbert-tiny-init") + " --tokenizer " +
           shared_path("tokenizers/bert-base-cased") + " --text content --label label --max-length 64 --seed 0";
  }
  fs::path dir;
  std::string train, test;
};

TEST_F(TrainCli, WritesAHuggingFaceModelDirectoryAndResults) {
  const fs::path out = dir / "out";
  ASSERT_EQ(run(base() + " --train " + train + " --test " + test + " --epochs 1 --train_batch_size 16" +
                " --learning-rate 5e-4 --logging-steps 2 --save-strategy epoch --output-dir " + out.string() + " > " + (dir / "log").string() + " 2>&1"),
            0) << std::ifstream(dir / "log").rdbuf();
  const auto config = read_json(out / "config.json");
  EXPECT_EQ(config["architectures"][0], "DistilBertForSequenceClassification");
  EXPECT_EQ(config["problem_type"], "single_label_classification");
  EXPECT_TRUE(config.contains("id2label"));
  EXPECT_TRUE(config.contains("label2id"));
  tuneserve::SafeTensorsReader model((out / "model.safetensors").string());
  EXPECT_TRUE(model.contains("classifier.weight"));
  EXPECT_TRUE(fs::exists(out / "tokenizer.json"));
  EXPECT_TRUE(fs::exists(out / "vocab.txt"));
  const auto train_results = read_json(out / "train_results.json");
  EXPECT_EQ(train_results["global_step"], 4);
  EXPECT_EQ(train_results["train_samples"], 64);
  const auto eval = read_json(out / "eval_results.json");
  EXPECT_EQ(eval["eval_samples"], 32);
  EXPECT_GE(eval["eval_accuracy"].get<double>(), 0.0);
  // 2 training logs (steps 2, 4) + 1 evaluation at the epoch's end.
  EXPECT_EQ(count_lines(out / "metrics.jsonl"), 3u);
  EXPECT_TRUE(fs::exists(out / "checkpoint-4/optimizer.safetensors"));  // save_strategy epoch

  // `tuneserve eval` on the saved directory (its own tokenizer files) agrees with the trainer's
  // final evaluation, in JSON and as a table.
  ASSERT_EQ(run(binary_path() + " eval --model " + out.string() + " --data " + test +
                " --text content --label label --max-length 64 --json > " + (dir / "eval.json").string()), 0);
  const auto cli_eval = read_json(dir / "eval.json");
  for (const auto& [key, value] : eval.items())  // the same keys as eval_results.json (epoch aside)
    EXPECT_TRUE(key == "epoch" || cli_eval.contains(key)) << key << " missing from eval --json";
  EXPECT_DOUBLE_EQ(cli_eval["eval_accuracy"].get<double>(), eval["eval_accuracy"].get<double>());
  EXPECT_NEAR(cli_eval["eval_loss"].get<double>(), eval["eval_loss"].get<double>(), 1e-6);
  EXPECT_DOUBLE_EQ(cli_eval["eval_f1_macro"].get<double>(), eval["eval_f1_macro"].get<double>());
  long total = 0;
  for (const auto& row : cli_eval["confusion_matrix"]) total += row[0].get<long>() + row[1].get<long>();
  EXPECT_EQ(total, 32);
  ASSERT_EQ(run(binary_path() + " eval --model " + out.string() + " --data " + test +
                " --text content --label label > " + (dir / "eval.txt").string()), 0);
  std::ifstream table(dir / "eval.txt");
  const std::string text((std::istreambuf_iterator<char>(table)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("confusion matrix"), std::string::npos) << text;
}

TEST_F(TrainCli, SageMakerJobContract) {
  const fs::path root = dir / "opt_ml";
  fs::create_directories(root / "input/config");
  fs::create_directories(root / "input/data/train");
  fs::create_directories(root / "input/data/test");
  fs::copy_file(train, root / "input/data/train/train.jsonl");
  fs::copy_file(test, root / "input/data/test/test.jsonl");
  nlohmann::json hp = {{"model", nlohmann::json(shared_path("models/distilbert-tiny-init")).dump()},
                       {"tokenizer", nlohmann::json(shared_path("tokenizers/bert-base-cased")).dump()},
                       {"text", "\"content\""}, {"label", "\"label\""}, {"epochs", "1"},
                       {"train_batch_size", "32"}, {"max_length", "64"}, {"learning_rate", "5e-4"},
                       {"save_strategy", "\"epoch\""}, {"sagemaker_program", "\"train.py\""}};
  std::ofstream(root / "input/config/hyperparameters.json") << hp.dump();
  const std::string env = "SM_NUM_CPUS=2 SM_NUM_GPUS=0 ";
  ASSERT_EQ(run(env + binary_path() + " train --sagemaker-root " + root.string() + " > " + (dir / "log").string() + " 2>&1"), 0)
      << std::ifstream(dir / "log").rdbuf();
  EXPECT_TRUE(fs::exists(root / "model/config.json"));
  EXPECT_TRUE(fs::exists(root / "model/model.safetensors"));
  EXPECT_TRUE(fs::exists(root / "output/data/metrics.jsonl"));
  EXPECT_TRUE(fs::exists(root / "output/data/eval_results.json"));
  EXPECT_TRUE(fs::exists(root / "checkpoints/checkpoint-2/trainer_state.json"));
  EXPECT_FALSE(fs::exists(root / "output/failure"));
  EXPECT_EQ(read_json(root / "model/train_results.json")["global_step"], 2);

  // A failing job leaves the reason in output/failure and exits non-zero.
  hp["learning_rate"] = "\"fast\"";
  std::ofstream(root / "input/config/hyperparameters.json", std::ios::trunc) << hp.dump();
  EXPECT_NE(run(binary_path() + " train --sagemaker-root " + root.string() + " > /dev/null 2>&1"), 0);
  std::ifstream failure(root / "output/failure");
  std::string reason((std::istreambuf_iterator<char>(failure)), std::istreambuf_iterator<char>());
  EXPECT_NE(reason.find("learning_rate"), std::string::npos) << reason;

  // So does a step count too large to hold: an error naming the hyperparameter, not a wrapped count.
  hp["learning_rate"] = "5e-4";
  hp["epochs"] = "1e300";
  std::ofstream(root / "input/config/hyperparameters.json", std::ios::trunc) << hp.dump();
  EXPECT_NE(run(binary_path() + " train --sagemaker-root " + root.string() + " > /dev/null 2>&1"), 0);
  std::ifstream failure2(root / "output/failure");
  reason.assign((std::istreambuf_iterator<char>(failure2)), std::istreambuf_iterator<char>());
  EXPECT_NE(reason.find("epochs"), std::string::npos) << reason;
  EXPECT_NE(reason.find("too many steps"), std::string::npos) << reason;
}

// bf16 mixed precision, from the flag and from hyperparameters.json: the saved model stays fp32
// safetensors (the master weights) and lands near the fp32 run's, but not on it.
TEST_F(TrainCli, Bf16TrainsFp32MasterWeights) {
  if (!tuneserve::ops::supports(tuneserve::cpu_backend(), tuneserve::DType::BF16))
    GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const std::string common = " --train " + train + " --epochs 1 --train_batch_size 32 --learning-rate 5e-4";
  ASSERT_EQ(run(base() + common + " --output-dir " + (dir / "fp32").string() + " > /dev/null 2>&1"), 0);
  ASSERT_EQ(run(base() + common + " --bf16 --output-dir " + (dir / "bf16").string() + " > " + (dir / "log").string() +
                " 2>&1"),
            0)
      << std::ifstream(dir / "log").rdbuf();
  const fs::path root = dir / "opt_ml";
  fs::create_directories(root / "input/config");
  fs::create_directories(root / "input/data/train");
  fs::copy_file(train, root / "input/data/train/train.jsonl");
  nlohmann::json hp = {{"model", nlohmann::json(shared_path("models/distilbert-tiny-init")).dump()},
                       {"tokenizer", nlohmann::json(shared_path("tokenizers/bert-base-cased")).dump()},
                       {"text", "\"content\""}, {"label", "\"label\""}, {"epochs", "1"}, {"seed", "0"},
                       {"train_batch_size", "32"}, {"max_length", "64"}, {"learning_rate", "5e-4"}, {"bf16", "true"}};
  std::ofstream(root / "input/config/hyperparameters.json") << hp.dump();
  ASSERT_EQ(run("SM_NUM_CPUS=2 SM_NUM_GPUS=0 " + binary_path() + " train --sagemaker-root " + root.string() + " > " +
                (dir / "log").string() + " 2>&1"),
            0)
      << std::ifstream(dir / "log").rdbuf();
  const tuneserve::SafeTensorsReader fp32((dir / "fp32/model.safetensors").string()),
      bf16((dir / "bf16/model.safetensors").string()), job((root / "model/model.safetensors").string());
  double moved = 0, largest = 0;
  for (const auto& t : fp32.tensors()) {
    ASSERT_EQ(bf16.info(t.name).dtype, tuneserve::DType::F32) << t.name;
    const auto a = fp32.read_f32(t.name), b = bf16.read_f32(t.name);
    EXPECT_EQ(job.read_f32(t.name), b) << t.name << ": the hyperparameter and the flag train the same model";
    for (std::size_t i = 0; i < a.size(); ++i) {
      moved = std::max(moved, static_cast<double>(std::abs(a[i] - b[i])));
      largest = std::max(largest, static_cast<double>(std::abs(a[i])));
    }
  }
  EXPECT_GT(moved, 0.0) << "bf16 training gave the fp32 weights bit for bit";
  EXPECT_LT(moved, 1e-2 * largest) << "two Adam steps apart by more than bf16 rounding explains";
}

// In a SageMaker job output_dir is the Trainer's working folder: the final model still goes to
// SM_MODEL_DIR (the folder the platform uploads), and a key of the job's own (the reference
// notebook's token_name) is a warning, not a failed job.
TEST_F(TrainCli, SageMakerJobOutputDirIsTheWorkingFolder) {
  const fs::path root = dir / "opt_ml";
  fs::create_directories(root / "input/config");
  fs::create_directories(root / "input/data/train");
  fs::copy_file(train, root / "input/data/train/train.jsonl");
  const fs::path work = dir / "work";
  nlohmann::json hp = {{"model_name", nlohmann::json(shared_path("models/distilbert-tiny-init")).dump()},
                       {"tokenizer", nlohmann::json(shared_path("tokenizers/bert-base-cased")).dump()},
                       {"text", "\"content\""}, {"epochs", "1"}, {"train_batch_size", "32"}, {"max_length", "64"},
                       {"output_dir", nlohmann::json(work.string()).dump()}, {"token_name", "\"hf_xyz\""},
                       {"save_strategy", "\"epoch\""}};
  std::ofstream(root / "input/config/hyperparameters.json") << hp.dump();
  std::string log;
  ASSERT_EQ(tuneserve::testing::run_command(binary_path() + " train --sagemaker-root " + root.string(), log), 0) << log;
  EXPECT_TRUE(fs::exists(root / "model/config.json")) << log;
  EXPECT_TRUE(fs::exists(root / "model/model.safetensors"));
  EXPECT_TRUE(fs::exists(work / "checkpoint-2/trainer_state.json"));
  EXPECT_FALSE(fs::exists(work / "model.safetensors"));
  EXPECT_NE(log.find("'token_name'"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(root / "output/failure"));
}

// The arguments a Trainer script is run with, and its log lines: the regexes of the Hugging Face
// SageMaker examples' metric_definitions find loss, learning rate, eval metrics and epochs in our
// output, as plain lines and inside --log-format json records.
TEST_F(TrainCli, TrainerScriptArgumentsAndMetricRegexes) {
  const fs::path out = dir / "out", logs = dir / "logs";
  fs::create_directories(out / "checkpoint-999");  // an earlier run's, removed by --overwrite_output_dir
  std::ofstream(out / "checkpoint-999/trainer_state.json") << "{}";
  const std::string cmd = base() + " --train " + train + " --test " + test + " --epochs 1 --train_batch_size 16" +
                          " --logging_steps 2 --do_train --do_eval --eval_strategy no --report_to none" +
                          " --overwrite_output_dir --logging_dir " + logs.string() +
                          " --optim adamw_torch --disable_tqdm --output_dir " + out.string();
  std::string log;
  ASSERT_EQ(tuneserve::testing::run_command(cmd, log), 0) << log;
  EXPECT_FALSE(fs::exists(out / "checkpoint-999")) << log;
  EXPECT_TRUE(fs::exists(out / "eval_results.json")) << "--do_eval evaluates at the end with eval_strategy no";
  ASSERT_TRUE(fs::exists(logs / "metrics.jsonl"));
  EXPECT_EQ(count_lines(logs / "metrics.jsonl"), count_lines(out / "metrics.jsonl"));
  EXPECT_EQ(count_lines(out / "metrics.jsonl"), 3u);  // steps 2 and 4, the final evaluation
  auto found = [](const std::string& text, const std::string& name) {
    const std::regex re("'" + name + "': ([0-9]+(.|e\\-)[0-9]+),?");
    return std::regex_search(text, re);
  };
  for (const char* name : {"loss", "learning_rate", "epoch", "eval_loss", "eval_accuracy", "eval_f1", "eval_precision",
                           "eval_recall", "eval_runtime", "eval_samples_per_second", "train_runtime"})
    EXPECT_TRUE(found(log, name)) << name << " is not in the log:\n" << log;
  const auto eval = read_json(out / "eval_results.json");
  EXPECT_TRUE(eval.contains("eval_runtime") && eval.contains("eval_samples_per_second")) << eval.dump();

  // --log-format json: every stderr line is one JSON object; the dict lines are their messages.
  ASSERT_EQ(run(cmd + " --log-format json > /dev/null 2> " + (dir / "json.log").string()), 0);
  std::ifstream lines(dir / "json.log");
  int records = 0, with_loss = 0;
  for (std::string line; std::getline(lines, line);) {
    const auto record = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(record.is_discarded()) << "not JSON: " << line;
    records++;
    if (found(record.value("message", ""), "loss")) with_loss++;
  }
  EXPECT_GE(records, 4);
  EXPECT_EQ(with_loss, 2) << log;

  EXPECT_NE(tuneserve::testing::run_command(cmd + " --fp16", log), 0);
  EXPECT_NE(log.find("use bf16 (--bf16)"), std::string::npos) << log;
}

// Data prepared at the tokenizer's default length (512) trains a 256-position model: rows are cut
// to the model's positions at batch time, and the model's tokenizer_config.json says 256.
TEST_F(TrainCli, PreparedAtTheTokenizersLengthTrainsAShorterModel) {
  TUNESERVE_REQUIRE_SHARED("tokenizers/bert-base-cased/tokenizer.json");
  // 32 reviews, 8 of them longer than the model's 256 positions.
  const auto tokenizer = tuneserve::Tokenizer::from_dir(shared_path("tokenizers/bert-base-cased"));
  std::ifstream in(shared_path("data/amazon_polarity/train.jsonl"));
  std::ofstream rows(dir / "long.jsonl");
  int longer = 0, shorter = 0;
  for (std::string line; (longer < 8 || shorter < 24) && std::getline(in, line);) {
    const bool over = tokenizer.encode(nlohmann::json::parse(line)["content"].get<std::string>()).size() > 256;
    int& count = over ? longer : shorter;
    if (count >= (over ? 8 : 24)) continue;
    rows << line << "\n";
    count++;
  }
  rows.close();
  ASSERT_EQ(longer, 8);
  std::string log;
  ASSERT_EQ(tuneserve::testing::run_command(binary_path() + " prep --input " + (dir / "long.jsonl").string() +
                                                " --text content --label label --padding max_length --quiet --tokenizer " +
                                                shared_path("tokenizers/bert-base-cased") + " --output " +
                                                (dir / "prepared").string(), log), 0) << log;
  EXPECT_GT(read_json(dir / "prepared/manifest.json")["lengths"]["max"].get<int>(), 256);
  const fs::path out = dir / "out";
  ASSERT_EQ(tuneserve::testing::run_command(binary_path() + " train --model " + shared_path("models/distilbert-tiny-init") +
                                                " --train " + (dir / "prepared").string() + " --max-steps 2 --train-batch-size 16" +
                                                " --save-strategy no --output-dir " + out.string(), log), 0) << log;
  EXPECT_EQ(read_json(out / "tokenizer_config.json")["model_max_length"], 256);
}

// One label-naming rule from prep to train to the model to eval: --label-names, else the data's
// words, else LABEL_i; eval compares labels by id.
TEST_F(TrainCli, LabelNamesAgreeFromPrepToEval) {
  TUNESERVE_REQUIRE_SHARED("data/amazon_polarity/train.csv");
  const std::string csv = head("data/amazon_polarity/train.csv", 48, dir / "train.csv");
  const std::string tokenizer = shared_path("tokenizers/bert-base-cased");
  for (const std::string names : {"", "negative,positive"}) {
    const fs::path prepared = dir / ("prepared" + names);
    const fs::path out = dir / ("out" + names);
    std::string log;
    ASSERT_EQ(tuneserve::testing::run_command(
                  binary_path() + " prep --input " + csv + " --columns class,title,content --text content --label class" +
                      " --label-map 1:0,2:1" + (names.empty() ? "" : " --label-names " + names) +
                      " --test-size 16 --max-length 64 --quiet --tokenizer " + tokenizer + " --output " + prepared.string(),
                  log), 0) << log;
    const std::vector<std::string> want =
        names.empty() ? std::vector<std::string>{"LABEL_0", "LABEL_1"} : std::vector<std::string>{"negative", "positive"};
    EXPECT_EQ(read_json(prepared / "train/manifest.json")["id2label"].get<std::vector<std::string>>(), want);
    ASSERT_EQ(tuneserve::testing::run_command(binary_path() + " train --model " + shared_path("models/distilbert-tiny-init") +
                                                  " --train " + (prepared / "train").string() + " --max-steps 1" +
                                                  " --save-strategy no --output-dir " + out.string(), log), 0) << log;
    const auto config = read_json(out / "config.json");
    EXPECT_EQ(config["id2label"]["0"], want[0]);
    EXPECT_EQ(config["id2label"]["1"], want[1]);
    ASSERT_EQ(tuneserve::testing::run_command(binary_path() + " eval --json --model " + out.string() + " --data " +
                                                  (prepared / "test").string(), log), 0) << log;
    EXPECT_NE(log.find("\"eval_samples\":16"), std::string::npos) << log;
  }
}

// A prepared dataset records its tokenizer: a run with another tokenizer stops and says which one
// the data needs; a run without --tokenizer ships the dataset's tokenizer with the model.
TEST_F(TrainCli, TokenizerMustMatchThePreparedData) {
  TUNESERVE_REQUIRE_SHARED("tokenizers/bert-base-uncased/vocab.txt");
  const fs::path prepared = dir / "prepared";
  std::string log;
  ASSERT_EQ(tuneserve::testing::run_command(binary_path() + " prep --input " + train + " --text content --label label" +
                                                " --max-length 64 --quiet --tokenizer " + shared_path("tokenizers/bert-base-cased") +
                                                " --output " + prepared.string(), log), 0) << log;
  const std::string train_cmd = binary_path() + " train --model " + shared_path("models/distilbert-tiny-init") + " --train " +
                                prepared.string() + " --max-steps 1 --save-strategy no --output-dir ";
  EXPECT_EQ(tuneserve::testing::run_command(train_cmd + (dir / "wrong").string() + " --tokenizer " +
                                                shared_path("tokenizers/bert-base-uncased"), log), 1) << log;
  EXPECT_NE(log.find("--tokenizer " + shared_path("tokenizers/bert-base-cased")), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(dir / "wrong/model.safetensors"));
  ASSERT_EQ(tuneserve::testing::run_command(train_cmd + (dir / "right").string(), log), 0) << log;
  std::ifstream shipped(dir / "right/tokenizer.json"), source(shared_path("tokenizers/bert-base-cased/tokenizer.json"));
  EXPECT_TRUE(std::equal(std::istreambuf_iterator<char>(shipped), {}, std::istreambuf_iterator<char>(source), {}));
  // eval of the prepared rows with a model that tokenizes otherwise is refused too.
  EXPECT_EQ(tuneserve::testing::run_command(binary_path() + " eval --model " + (dir / "right").string() + " --tokenizer " +
                                                shared_path("tokenizers/bert-base-uncased") + " --data " + prepared.string(), log), 1)
      << log;
}

// Stops a run with `sig` once training has started; expects a checkpoint, exit `expected`, and that
// --resume latest finishes the run as if it had not stopped.
void stop_and_resume(const TrainCli& t, int sig, int expected);

TEST_F(TrainCli, CtrlCSavesACheckpointAndResumeFinishes) { stop_and_resume(*this, SIGINT, 130); }

// Issue 11: SIGTERM (SageMaker stopping a job, spot interruptions, Kubernetes) exited 143 without a
// checkpoint; it now saves one as Ctrl-C does and exits 0.
TEST_F(TrainCli, SigtermSavesACheckpointAndExitsZero) { stop_and_resume(*this, SIGTERM, 0); }

// Starts `cmd` as a process of its own (exec'd by the shell, so that a signal reaches tuneserve
// itself), its output in `log`; returns its pid once training has logged 2 steps in `metrics`.
pid_t start_training(const std::string& cmd, const fs::path& log, const fs::path& metrics) {
  pid_t pid = 0;
  const std::string shell = "exec " + cmd + " > " + log.string() + " 2>&1";
  const char* argv[] = {"/bin/sh", "-c", shell.c_str(), nullptr};
  EXPECT_EQ(posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (count_lines(metrics) < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_GE(count_lines(metrics), 2u) << "training did not start";
  return pid;
}

// Issue 11: SIGTERM aborted about 1 run in 15 with heap corruption ("corrupted size vs. prev_size")
// at AVX2: oneDNN's sgemm kernel runs with its stack pointer in a heap buffer, and the handler's frame
// went there. No thread of a training run (main, OpenMP's, the one that waits for signals) may take
// SIGINT/SIGTERM asynchronously: all block them but the one in sigwait (cli/train_console.h).
TEST_F(TrainCli, NoThreadTakesStopSignalsWhileTraining) {
  const fs::path out = dir / "out";
  const std::string rows = head("data/amazon_polarity/train.jsonl", 256, dir / "train256.jsonl");
  const pid_t pid = start_training(base() + " --train " + rows + " --epochs 4 --train-batch-size 8 --logging-steps 1" +
                                       " --save-strategy no --threads 2 --output-dir " + out.string(),
                                   dir / "log", out / "metrics.jsonl");
  ASSERT_GT(pid, 0);
  std::size_t threads = 0;
  const std::vector<std::string> open = tuneserve::testing::threads_taking_stop_signals(pid, &threads);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_GE(threads, 3u) << "main, an OpenMP worker and the signal thread";
  std::string names;
  for (const std::string& t : open) names += " [" + t + "]";
  EXPECT_TRUE(open.empty()) << open.size() << " of " << threads << " threads take SIGINT/SIGTERM:" << names;
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status) << "\n" << std::ifstream(dir / "log").rdbuf();
  EXPECT_EQ(WEXITSTATUS(status), 0) << std::ifstream(dir / "log").rdbuf();
}

void stop_and_resume(const TrainCli& t, int sig, int expected) {
  const fs::path& dir = t.dir;
  const fs::path out = dir / "out";
  const std::string train_rows = head("data/amazon_polarity/train.jsonl", 256, dir / "train256.jsonl");
  const std::string cmd = t.base() + " --train " + train_rows + " --epochs 2 --train-batch-size 8 --logging-steps 1" +
                          " --save-strategy no --output-dir " + out.string();
  const pid_t pid = start_training(cmd, dir / "log", out / "metrics.jsonl");
  ASSERT_GE(count_lines(out / "metrics.jsonl"), 2u) << "training did not start";
  ::kill(pid, sig);
  int status = 0;
  ::waitpid(pid, &status, 0);
  // The log says what ended it (an abort prints its reason there): CI once saw SIGABRT here.
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status) << "\n" << std::ifstream(dir / "log").rdbuf();
  EXPECT_EQ(WEXITSTATUS(status), expected) << std::ifstream(dir / "log").rdbuf();
  bool found = false;
  long step = 0;
  for (const auto& e : fs::directory_iterator(out)) {
    if (e.path().filename().string().starts_with("checkpoint-")) {
      found = true;
      step = std::stol(e.path().filename().string().substr(11));
    }
  }
  ASSERT_TRUE(found) << "no checkpoint after signal " << sig;
  EXPECT_LT(step, 64);
  EXPECT_FALSE(fs::exists(out / "model.safetensors"));
  ASSERT_EQ(run(cmd + " --resume latest > " + (dir / "log2").string() + " 2>&1"), 0) << std::ifstream(dir / "log2").rdbuf();
  EXPECT_EQ(read_json(out / "train_results.json")["global_step"], 64);
  EXPECT_EQ(count_lines(out / "metrics.jsonl"), 64u);  // one log per step, none twice
}

TEST_F(TrainCli, QuickstartRunsEveryStepOnOverriddenPaths) {
  const fs::path out = dir / "qs";
  ASSERT_EQ(run(binary_path() + " quickstart --model " + shared_path("models/distilbert-tiny-init") + " --tokenizer " +
                shared_path("tokenizers/bert-base-cased") + " --train " + train + " --test " + test +
                " --epochs 1 --max-length 64 --output " + out.string() + " --sentence 'Great value.' > " +
                (dir / "log").string() + " 2>&1"),
            0) << std::ifstream(dir / "log").rdbuf();
  std::ifstream log(dir / "log");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("[5/5] report"), std::string::npos) << text;
  EXPECT_NE(text.find("\"Great value.\" -> {\"label\": \""), std::string::npos) << text;
  EXPECT_TRUE(fs::exists(out / "data/train/manifest.json"));
  EXPECT_TRUE(fs::exists(out / "data/test/input_ids.bin"));
  EXPECT_TRUE(fs::exists(out / "model/model.safetensors"));
  EXPECT_EQ(read_json(out / "model/config.json")["id2label"]["1"], "positive");
  EXPECT_EQ(fs::exists(out / "model/report.html"), !tuneserve::embedded_chartjs().empty());
}

TEST_F(TrainCli, ClearErrors) {
  const std::string log = (dir / "log").string();
  EXPECT_EQ(run(base() + " --train " + (dir / "missing.jsonl").string() + " --output-dir " + (dir / "o").string() + " > " + log + " 2>&1"), 1);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("missing.jsonl"), std::string::npos) << text;
  std::string no_text = base();
  no_text.replace(no_text.find("--text content"), 14, "--text nosuchcolumn");
  EXPECT_NE(run(no_text + " --train " + train + " --output-dir " + (dir / "o").string() + " > " + log + " 2>&1"), 0);
  std::ifstream in2(log);
  text.assign((std::istreambuf_iterator<char>(in2)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("nosuchcolumn"), std::string::npos) << text;
}

}  // namespace
