// RoBERTa end to end with its byte-level BPE tokenizer: ../shared/goldens/roberta passes `verify`
// (transformers' logits, hidden states, gradients and optimizer steps), then a RoBERTa of the
// golden's shape with roberta-base's vocabulary (random weights, written here) takes text:
// `predict`, `train` on Amazon reviews (the saved directory carries the tokenizer files
// unchanged), and `predict` and `serve` on the trained directory answering alike.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "background_process.h"
#include "checkpoint/config.h"
#include "core/mapped_file.h"
#include "model/model.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace tuneserve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class RobertaEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    TUNESERVE_REQUIRE_SHARED("goldens/roberta/golden.safetensors");
    TUNESERVE_REQUIRE_SHARED("tokenizers/roberta-base/tokenizer.json");
    TUNESERVE_REQUIRE_SHARED("data/amazon_polarity/train.jsonl");
    dir_ = fs::temp_directory_path() / ("tuneserve_roberta_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string run(const std::string& command) {
    std::string out;
    status_ = testing::run_command(command, out);
    return out;
  }

  // The first `n` lines of a shared data file, as a file of their own.
  std::string head(const std::string& relative, int n) {
    const fs::path to = dir_ / fs::path(relative).filename();
    std::ifstream in(testing::shared_path(relative));
    std::ofstream out(to);
    std::string line;
    for (int i = 0; i < n && std::getline(in, line); ++i) out << line << "\n";
    return to.string();
  }

  fs::path dir_;
  int status_ = -1;
};

TEST_F(RobertaEndToEnd, VerifyThenTextThroughPredictTrainAndServe) {
  const std::string golden = testing::shared_path("goldens/roberta");
  std::string out = run(testing::binary_path() + " verify --model " + golden + " --reference " + golden +
                        "/golden.safetensors --weight-decay 0.01");
  ASSERT_EQ(status_, 0) << out;
  EXPECT_NE(out.find("PASSED"), std::string::npos) << out;

  // The golden's RoBERTa with roberta-base's 50,265 ids and 512 positions, beside its tokenizer.
  const fs::path model = dir_ / "roberta-tiny";
  ModelConfig config = load_config(golden + "/config.json");
  config.vocab_size = 50265;
  config.max_position_embeddings = 514;
  Model::from_config(config, 7).save(model.string());
  const std::string tokenizer = testing::shared_path("tokenizers/roberta-base");
  for (const char* name : {"tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"})
    fs::copy_file(tokenizer + "/" + name, model / name);
  const Tokenizer bpe = Tokenizer::from_dir(model.string());
  ASSERT_STREQ(bpe.kind(), "BPE");

  const std::string text = "This blender is great, it crushes ice in seconds!";
  out = run(testing::binary_path() + " predict --model " + model.string() + " '" + text + "'");
  ASSERT_EQ(status_, 0) << out;
  EXPECT_NE(out.find("\"label\""), std::string::npos) << out;

  const fs::path trained = dir_ / "trained";
  out = run(testing::binary_path() + " train --model " + model.string() + " --train " +
            head("data/amazon_polarity/train.jsonl", 64) + " --test " + head("data/amazon_polarity/test.jsonl", 32) +
            " --text content --label label --max-length 64 --epochs 1 --train_batch_size 16 --seed 0 --output-dir " +
            trained.string());
  ASSERT_EQ(status_, 0) << out;
  EXPECT_TRUE(fs::exists(trained / "eval_results.json")) << out;
  for (const char* name : {"tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"})
    EXPECT_EQ(read_text_file((trained / name).string()), read_text_file(tokenizer + "/" + name)) << name << " changed on the way through train";

  const std::string predicted = run(testing::binary_path() + " predict --model " + trained.string() + " '" + text + "'");
  ASSERT_EQ(status_, 0) << predicted;

  testing::BackgroundProcess server(testing::binary_path() + " serve --model " + trained.string() +
                                        " --host 127.0.0.1 --port 0 --threads 1",
                                    (dir_ / "serve.log").string());
  const auto port = server.wait_for_line("listening on http://127\\.0\\.0\\.1:([0-9]+)", std::chrono::seconds(60));
  ASSERT_TRUE(port) << server.log();
  const std::string url = "http://127.0.0.1:" + *port;
  for (int i = 0; i < 600; ++i) {  // /ping answers 200 once the model is loaded
    run("curl -sf -o /dev/null " + url + "/ping");
    if (status_ == 0) break;
    ::usleep(100000);
  }
  const std::string served = run("curl -sS -X POST " + url + "/invocations -H 'Content-Type: application/json' -d '" +
                                 json{{"inputs", text}}.dump() + "'");
  ASSERT_EQ(status_, 0) << served << server.log();
  EXPECT_EQ(json::parse(served), json::parse(predicted)) << "serve: " << served << "\npredict: " << predicted;
}

}  // namespace
}  // namespace tuneserve
