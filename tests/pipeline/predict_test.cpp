// End-to-end `tuneserve predict` and the Pipeline on the real tiny DistilBERT: the README command's
// JSON shape, scores recomputed independently from the logits (softmax in the test; logits from
// the plain-PyTorch module in bench/ when Debian's torch is present), truncation, vocabulary
// mismatch, JSONL shapes, and batched results equal to one-at-a-time results.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <omp.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "pipeline/pipeline.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace tuneserve {
namespace {

namespace fs = std::filesystem;
using testing::binary_path;
using testing::shared_path;

const char* kModel = "models/distilbert-tiny-init";
const char* kCased = "tokenizers/bert-base-cased";
const char* kText = "This is a very good product!";

struct Process {
  int status = -1;
  std::string out;
  std::string err;
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path temp_dir() {
  const fs::path dir = testing::scratch_path(::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::create_directories(dir);
  return dir;
}

// Runs a shell command line, capturing stdout, stderr and the exit status.
Process run_shell(const std::string& command) {
  const fs::path dir = temp_dir();
  const std::string out = (dir / "stdout").string(), err = (dir / "stderr").string();
  const int raw = std::system((command + " >" + quote(out) + " 2>" + quote(err)).c_str());
  Process run;
  run.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  run.out = slurp(out);
  run.err = slurp(err);
  return run;
}

Process predict(const std::vector<std::string>& args) {
  std::string command = quote(binary_path()) + " predict";
  for (const auto& a : args) {
    command += ' ';
    command += quote(a);
  }
  return run_shell(command);
}

std::vector<std::string> base_args(const char* tokenizer = kCased) {
  return {"--model", shared_path(kModel), "--tokenizer", shared_path(tokenizer)};
}

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// Raw logits by label name, from `--function-to-apply none --top-k all` (products in `dtype`).
std::map<std::string, double> raw_logits(const std::string& text, const std::string& dtype = "fp32") {
  const Process run =
      predict(with(base_args(), {"--function-to-apply", "none", "--top-k", "all", "--dtype", dtype, text}));
  EXPECT_EQ(run.status, 0) << run.err;
  std::map<std::string, double> logits;
  for (const auto& entry : nlohmann::json::parse(run.out)) logits[entry["label"]] = entry["score"];
  return logits;
}

TEST(PredictCli, ReadmeCommandPrintsThePipelineJson) {
  TUNESERVE_REQUIRE_SHARED(kModel);
  TUNESERVE_REQUIRE_SHARED(kCased);
  const Process run = predict(with(base_args(), {kText}));
  ASSERT_EQ(run.status, 0) << run.err;
  // Python's json.dumps of [{'label': 'LABEL_i', 'score': float}].
  EXPECT_TRUE(std::regex_match(run.out, std::regex(R"(\[\{"label": "LABEL_[01]", "score": 0\.[0-9]+(e-[0-9]+)?\}\]\n)")))
      << run.out;
  const auto result = nlohmann::json::parse(run.out);

  // Independent recomputation: softmax (in double, here) of the raw logits, best label wins.
  const auto logits = raw_logits(kText);
  ASSERT_EQ(logits.size(), 2u);
  const double l0 = logits.at("LABEL_0"), l1 = logits.at("LABEL_1");
  const double p1 = 1.0 / (1.0 + std::exp(l0 - l1));
  const std::string best = l1 > l0 ? "LABEL_1" : "LABEL_0";
  EXPECT_EQ(result[0]["label"], best);
  EXPECT_NEAR(result[0]["score"].get<double>(), best == "LABEL_1" ? p1 : 1 - p1, 1e-6);

  // top_k all: both labels, sorted, summing to one; sigmoid on request.
  const auto all = nlohmann::json::parse(predict(with(base_args(), {"--top-k", "all", kText})).out);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_GE(all[0]["score"].get<double>(), all[1]["score"].get<double>());
  EXPECT_NEAR(all[0]["score"].get<double>() + all[1]["score"].get<double>(), 1.0, 1e-6);
  const auto sig = nlohmann::json::parse(
      predict(with(base_args(), {"--function-to-apply", "sigmoid", "--top-k", "1", kText})).out);
  ASSERT_EQ(sig.size(), 1u);
  EXPECT_NEAR(sig[0]["score"].get<double>(), 1.0 / (1.0 + std::exp(-std::max(l0, l1))), 1e-6);
}

// The logits themselves against a second implementation: bench/torch_distilbert.py (plain PyTorch,
// itself checked against transformers' golden logits) on the same token ids.
TEST(PredictCli, LogitsMatchPlainPytorch) {
  TUNESERVE_REQUIRE_SHARED(kModel);
  TUNESERVE_REQUIRE_SHARED(kCased);
  const std::string script = std::string(TUNESERVE_SOURCE_DIR) + "/bench/torch_distilbert.py";
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "Debian python3-torch (/usr/bin/python3 with torch) is not installed";
  const Tokenizer tokenizer = Tokenizer::from_dir(shared_path(kCased));
  const Encoding encoding = tokenizer.encode(kText);
  std::string ids;
  for (const auto id : encoding.ids) {
    if (!ids.empty()) ids += ',';
    ids += std::to_string(id);
  }
  const Process torch = run_shell("/usr/bin/python3 " + quote(script) + " logits " + quote(shared_path(kModel)) +
                              " --ids " + ids);
  ASSERT_EQ(torch.status, 0) << torch.err;
  const auto expected = nlohmann::json::parse(torch.out);
  const auto logits = raw_logits(kText);
  ASSERT_EQ(expected.size(), logits.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const double b = expected[i].get<double>();
    EXPECT_NEAR(logits.at("LABEL_" + std::to_string(i)), b, 1e-5 + 1e-5 * std::fabs(b)) << "label " << i;
  }
}

// --dtype bf16: bf16 weights, fp32 accumulation: the logits move, within bf16's bound (5e-2), and
// a value that is not fp32 or bf16 is named.
TEST(PredictCli, Bf16LogitsStayWithinBoundOfFp32) {
  TUNESERVE_REQUIRE_SHARED(kModel);
  TUNESERVE_REQUIRE_SHARED(kCased);
  const Process bad = predict(with(base_args(), {"--dtype", "fp16", kText}));
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("dtype 'fp16': expected fp32 or bf16"), std::string::npos) << bad.err;
  if (!ops::supports(cpu_backend(), DType::BF16)) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const auto fp32 = raw_logits(kText), bf16 = raw_logits(kText, "bf16");
  ASSERT_EQ(fp32.size(), bf16.size());
  bool moved = false;
  for (const auto& [label, value] : fp32) {
    EXPECT_NEAR(bf16.at(label), value, 5e-2) << label;
    moved |= bf16.at(label) != value;
  }
  EXPECT_TRUE(moved) << "--dtype bf16 gave the fp32 logits bit for bit: no bf16 product ran";
}

TEST(PredictCli, LongTextIsTruncatedUnlessTruncationIsOff) {
  TUNESERVE_REQUIRE_SHARED(kModel);
  TUNESERVE_REQUIRE_SHARED(kCased);
  std::string text;
  for (int i = 0; i < 5000; ++i) text += (i % 2 ? "good " : "product ");
  const Process ok = predict(with(base_args(), {text}));
  ASSERT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(nlohmann::json::parse(ok.out).size(), 1u);

  const Process off = predict(with(base_args(), {"--no-truncation", text}));
  EXPECT_EQ(off.status, 1);
  EXPECT_NE(off.err.find("truncation is off"), std::string::npos) << off.err;
  // A max_length beyond the model's 256 positions is refused up front, not an index error.
  const Process too_long = predict(with(base_args(), {"--max-length", "1000", kText}));
  EXPECT_EQ(too_long.status, 1);
  EXPECT_NE(too_long.err.find("256 positions"), std::string::npos) << too_long.err;
}

TEST(PredictCli, ClearErrors) {
  TUNESERVE_REQUIRE_SHARED(kModel);
  TUNESERVE_REQUIRE_SHARED("tokenizers/bert-base-uncased");
  // bert-base-uncased has 30,522 ids; the model embeds 28,996: "meek" is id 28,997 there.
  const Process vocab = predict(with(base_args("tokenizers/bert-base-uncased"), {"meek parcels"}));
  EXPECT_EQ(vocab.status, 1);
  EXPECT_NE(vocab.err.find("outside the model's vocabulary of 28996"), std::string::npos) << vocab.err;

  const Process no_tokenizer = predict({"--model", shared_path(kModel), kText});
  EXPECT_EQ(no_tokenizer.status, 1);
  EXPECT_NE(no_tokenizer.err.find("no tokenizer"), std::string::npos) << no_tokenizer.err;

  const Process bad_top_k = predict(with(base_args(), {"--top-k", "two", kText}));
  EXPECT_EQ(bad_top_k.status, 1);
  EXPECT_NE(bad_top_k.err.find("top_k"), std::string::npos) << bad_top_k.err;

  const Process nothing = predict(base_args());
  EXPECT_EQ(nothing.status, 1);
}

// A checkpoint without a classification head loads with the head initialised; the notes say so on
// stderr and stdout stays pure JSON.
TEST(PredictCli, LoadNotesGoToStderr) {
  TUNESERVE_REQUIRE_SHARED("models/distilbert-mini-mlm");
  TUNESERVE_REQUIRE_SHARED(kCased);
  const Process run = predict({"--model", shared_path("models/distilbert-mini-mlm"), "--tokenizer",
                               shared_path(kCased), kText});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(nlohmann::json::parse(run.out).size(), 1u) << run.out;
  EXPECT_NE(run.err.find("classifier.weight"), std::string::npos) << run.err;
}

TEST(PredictCli, JsonlLinesKeepThePipelineShapes) {
  TUNESERVE_REQUIRE_SHARED(kModel);
  TUNESERVE_REQUIRE_SHARED(kCased);
  const fs::path dir = temp_dir();
  {
    std::ofstream in(dir / "in.jsonl");
    in << R"({"text": "Great value.", "label": 1})" << "\n"
       << R"({"text": "Is it good?", "text_pair": "Yes, very."})" << "\n\n"
       << R"({"inputs": ["Broke after a day.", "Fine."]})" << "\n"
       << R"({"inputs": "This is a very good product!"})" << "\n";
  }
  const auto out = (dir / "out.jsonl").string();
  const Process run = predict(with(base_args(), {"--input", (dir / "in.jsonl").string(), "--output", out}));
  ASSERT_EQ(run.status, 0) << run.err;
  std::ifstream lines_in(out);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(lines_in, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_TRUE(lines[0].is_object() && lines[0].contains("label"));  // pipeline({"text": ...}) -> dict
  EXPECT_TRUE(lines[1].is_object());
  ASSERT_TRUE(lines[2].is_array() && lines[2].size() == 2);         // pipeline([...]) -> one dict each
  EXPECT_TRUE(lines[2][0].is_object());
  ASSERT_TRUE(lines[3].is_array() && lines[3].size() == 1);         // pipeline("...") -> [dict]

  // Batched with the other lines (padded to the longest) == alone, to fp32 rounding.
  const auto alone = nlohmann::json::parse(predict(with(base_args(), {kText})).out);
  EXPECT_EQ(lines[3][0]["label"], alone[0]["label"]);
  EXPECT_NEAR(lines[3][0]["score"].get<double>(), alone[0]["score"].get<double>(), 1e-6);

  const Process top = predict(with(base_args(), {"--top-k", "2", "--input", (dir / "in.jsonl").string()}));
  ASSERT_EQ(top.status, 0) << top.err;
  std::istringstream top_lines(top.out);
  std::string line;
  std::getline(top_lines, line);
  EXPECT_EQ(nlohmann::json::parse(line).size(), 2u);  // a list of both labels
  std::getline(top_lines, line);
  std::getline(top_lines, line);
  const auto list = nlohmann::json::parse(line);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_TRUE(list[0].is_array());  // a list per input

  {
    std::ofstream bad(dir / "bad.jsonl");
    bad << R"({"text": "ok"})" << "\n" << "{not json\n";
  }
  const Process malformed = predict(with(base_args(), {"--input", (dir / "bad.jsonl").string()}));
  EXPECT_EQ(malformed.status, 1);
  EXPECT_NE(malformed.err.find("bad.jsonl: line 2"), std::string::npos) << malformed.err;
}

TEST(Pipeline, BatchedEqualsOneAtATimeInInputOrder) {
  TUNESERVE_REQUIRE_SHARED(kModel);
  TUNESERVE_REQUIRE_SHARED(kCased);
  Pipeline::Options options;
  options.max_batch_size = 2;  // several batches, each padded to its own longest input
  auto pipeline = Pipeline::load(shared_path(kModel), shared_path(kCased), options);
  EXPECT_EQ(pipeline->max_length(), 256);  // min(tokenizer 512, model positions 256)
  EXPECT_EQ(pipeline->num_labels(), 2);
  const std::vector<TextInput> inputs = {
      {"A long review that goes on and on about the product, its box, and the delivery.", std::nullopt},
      {"Short.", std::nullopt},
      {"Is it good?", std::string("Yes, it is good.")},
      {"Medium length text here.", std::nullopt},
      {"", std::nullopt},
  };
  CallOptions call;
  call.postprocess.top_k = TopK::all();
  call.postprocess.function = ScoreFunction::None;
  const auto batched = pipeline->predict(inputs, call);
  ASSERT_EQ(batched.size(), inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Encoding e = pipeline->tokenize(inputs[i]);
    PackedBatch one;
    one.append(e.ids, e.type_ids);
    const auto logits = pipeline->forward(one);
    ASSERT_EQ(logits.size(), 2u);
    for (const auto& ls : batched[i]) {
      const double b = logits[ls.label == "LABEL_0" ? 0 : 1];
      EXPECT_NEAR(ls.score, b, 1e-5 + 1e-5 * std::fabs(b)) << "input " << i << " " << ls.label;
    }
  }
  // Truncation to an explicit max_length, and the error without truncation.
  TokenizeOptions cut;
  cut.max_length = 8;
  EXPECT_EQ(pipeline->tokenize(inputs[0], cut).size(), 8u);
  cut.truncation = false;
  EXPECT_THROW(pipeline->tokenize(inputs[0], cut), InputTooLongError);
  EXPECT_EQ(pipeline->config().arch, Arch::DistilBert);
}

// OpenMP keeps its thread count per thread: a forward on a thread started after the load (a
// server's batch worker) must still use the pipeline's threads, not the runtime default.
TEST(Pipeline, ForwardUsesItsThreadsOnAnyThread) {
  TUNESERVE_REQUIRE_SHARED(kModel);
  TUNESERVE_REQUIRE_SHARED(kCased);
  const int saved = omp_get_max_threads();
  Pipeline::Options options;
  options.threads = saved + 1;  // not the default on any machine
  auto pipeline = Pipeline::load(shared_path(kModel), shared_path(kCased), options);
  int seen = 0;
  std::thread worker([&] {
    EXPECT_EQ(omp_get_max_threads(), saved) << "a new thread starts with the runtime default";
    PackedBatch batch;
    const Encoding e = pipeline->tokenize(TextInput{kText, std::nullopt});
    batch.append(e.ids, e.type_ids);
    EXPECT_EQ(pipeline->forward(batch).size(), 2u);
    seen = omp_get_max_threads();
  });
  worker.join();
  Model::set_num_threads(saved);  // load() set this thread's count: the other tests get theirs back
  EXPECT_EQ(seen, options.threads);
}

// load() ends the OpenMP threads its work started on the loading thread (Model::release_threads):
// a server's batch workers run their own teams, and idle ones elsewhere make libgomp stop spinning.
TEST(Pipeline, LoadLeavesNoIdleOpenMPThreads) {
  TUNESERVE_REQUIRE_SHARED(kModel);
  TUNESERVE_REQUIRE_SHARED(kCased);
  const auto tasks = [] {
    return std::distance(std::filesystem::directory_iterator("/proc/self/task"), std::filesystem::directory_iterator());
  };
  int team = 0;
#pragma omp parallel num_threads(2)
  {
#pragma omp atomic
    team++;
  }
  ASSERT_EQ(team, 2);
  const auto with_team = tasks();  // this thread's team of two: one more thread, idle now
  auto pipeline = Pipeline::load(shared_path(kModel), shared_path(kCased));
  auto after = tasks();
  for (int i = 0; i < 200 && after >= with_team; ++i) {  // the threads exit on their own, soon after
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    after = tasks();
  }
  EXPECT_LT(after, with_team) << "the loading thread's idle OpenMP thread is still there";
}

// The weights are packed at load (~0.4 s for distilbert-base in bf16), not by the first request.
TEST(Pipeline, LoadPacksTheInferenceWeights) {
  TUNESERVE_REQUIRE_SHARED(kModel);
  TUNESERVE_REQUIRE_SHARED(kCased);
  auto pipeline = Pipeline::load(shared_path(kModel), shared_path(kCased));
  EXPECT_TRUE(pipeline->inference_prepared());
}

// BERT uses token types: a text pair through the pipeline must give the model's logits for the
// tokenizer's ids AND type ids (single characters keep the ids inside the golden model's 1,000).
TEST(Pipeline, PairsCarryTokenTypesToBert) {
  TUNESERVE_REQUIRE_SHARED("goldens/bert/model.safetensors");
  TUNESERVE_REQUIRE_SHARED(kCased);
  auto pipeline = Pipeline::load(shared_path("goldens/bert"), shared_path(kCased));
  EXPECT_EQ(pipeline->num_labels(), 3);
  const TextInput pair{"a b c !", std::string("x y z ?")};
  const Encoding e = pipeline->tokenize(pair);
  ASSERT_EQ(e.ids.size(), e.type_ids.size());
  ASSERT_EQ(e.type_ids.back(), 1);
  PackedBatch one;
  one.append(e.ids, e.type_ids);
  const auto logits = pipeline->forward(one);

  const Model model = Model::load(shared_path("goldens/bert"));
  const int T = static_cast<int>(e.size());
  const auto with_types = model.forward(PackedBatch::from_padded(1, T, e.ids.data(), nullptr, e.type_ids.data()));
  const auto without_types = model.forward(PackedBatch::from_padded(1, T, e.ids.data(), nullptr, nullptr));
  ASSERT_EQ(logits.size(), 3u);
  double differs = 0;
  for (int k = 0; k < 3; ++k) {
    EXPECT_NEAR(logits[k], with_types[k], 1e-6) << k;
    differs = std::max(differs, static_cast<double>(std::fabs(with_types[k] - without_types[k])));
  }
  EXPECT_GT(differs, 1e-6) << "type ids should matter for this check to mean anything";
}

// RoBERTa numbers positions from padding_idx + 1: 66 table rows embed 64 tokens.
TEST(Pipeline, RobertaMaxLengthLeavesRoomForThePaddingOffset) {
  TUNESERVE_REQUIRE_SHARED("goldens/roberta/model.safetensors");
  TUNESERVE_REQUIRE_SHARED(kCased);
  auto pipeline = Pipeline::load(shared_path("goldens/roberta"), shared_path(kCased));
  EXPECT_EQ(pipeline->max_length(), 64);
  std::string text;
  for (int i = 0; i < 100; ++i) text += "a ";
  EXPECT_EQ(pipeline->tokenize({text, std::nullopt}).size(), 64u);
  TokenizeOptions too_long;
  too_long.max_length = 65;
  EXPECT_THROW(pipeline->tokenize({text, std::nullopt}, too_long), Error);
}

}  // namespace
}  // namespace tuneserve
