// Tests for config.json parsing and writing: the three goldens' configs, defaults, errors, round trip.
#include "checkpoint/config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "test_util.h"

namespace tuneserve {
namespace {

TEST(Config, GoldenDistilBert) {
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/config.json");
  const auto c = load_config(testing::shared_path("goldens/distilbert"));
  EXPECT_EQ(c.arch, Arch::DistilBert);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.intermediate_size, 256);
  EXPECT_EQ(c.vocab_size, 1000);
  EXPECT_EQ(c.type_vocab_size, 0);
  EXPECT_EQ(c.num_labels, 2);  // no id2label in the file: default 2
  EXPECT_EQ(c.id2label[1], "LABEL_1");
  EXPECT_FLOAT_EQ(c.layer_norm_eps, 1e-12f);
  EXPECT_FLOAT_EQ(c.classifier_dropout, 0.0f);
  ASSERT_EQ(c.architectures.size(), 1u);
  EXPECT_EQ(c.architectures[0], "DistilBertForSequenceClassification");
}

TEST(Config, GoldenBertAndRoberta) {
  TUNESERVE_REQUIRE_SHARED("goldens/bert/config.json");
  const auto b = load_config(testing::shared_path("goldens/bert/config.json"));
  EXPECT_EQ(b.arch, Arch::Bert);
  EXPECT_EQ(b.num_labels, 3);
  EXPECT_EQ(b.label2id.at("LABEL_2"), 2);
  EXPECT_EQ(b.type_vocab_size, 2);
  EXPECT_FLOAT_EQ(b.classifier_dropout, b.hidden_dropout);  // null -> hidden dropout
  const auto r = load_config(testing::shared_path("goldens/roberta"));
  EXPECT_EQ(r.arch, Arch::Roberta);
  EXPECT_EQ(r.pad_token_id, 1);
  EXPECT_EQ(r.max_position_embeddings, 66);
  EXPECT_EQ(r.type_vocab_size, 1);
}

TEST(Config, RoundTripKeepsUnknownKeys) {
  nlohmann::json j = {{"model_type", "bert"}, {"hidden_size", 32}, {"num_hidden_layers", 1},
                      {"num_attention_heads", 2}, {"intermediate_size", 64}, {"vocab_size", 50},
                      {"my_custom_key", "kept"}, {"classifier_dropout", nullptr}};
  auto c = parse_config(j, "mem");
  set_labels(c, {"neg", "pos", "neutral"});
  c.problem_type = "single_label_classification";
  c.architectures = {c.sequence_classification_class()};
  const auto path = testing::scratch_path("config_rt.json").string();
  save_config(c, path);
  const auto back = load_config(path);
  EXPECT_EQ(back.raw["my_custom_key"], "kept");
  EXPECT_TRUE(back.raw["classifier_dropout"].is_null());
  EXPECT_EQ(back.num_labels, 3);
  EXPECT_EQ(back.id2label[2], "neutral");
  EXPECT_EQ(back.label2id.at("pos"), 1);
  EXPECT_EQ(back.problem_type, "single_label_classification");
  EXPECT_EQ(back.architectures[0], "BertForSequenceClassification");
  EXPECT_EQ(back.hidden_size, 32);
  std::filesystem::remove(path);
}

// transformers writes 0.1 as 0.1; a float field written back must not become 0.10000000149011612.
TEST(Config, FloatsAreWrittenAsRead) {
  nlohmann::json j = {{"model_type", "bert"}, {"hidden_size", 32}, {"num_hidden_layers", 1},
                      {"num_attention_heads", 2}, {"intermediate_size", 64}, {"vocab_size", 50},
                      {"hidden_dropout_prob", 0.1}, {"attention_probs_dropout_prob", 0.1},
                      {"initializer_range", 0.02}, {"layer_norm_eps", 1e-12}, {"classifier_dropout", 0.3}};
  auto c = parse_config(j, "mem");
  c.attention_dropout = 0.2f;  // a changed value is written as the shortest decimal of the float
  const nlohmann::json out = config_to_json(c);
  EXPECT_EQ(out["hidden_dropout_prob"].get<double>(), 0.1);
  EXPECT_EQ(out["initializer_range"].get<double>(), 0.02);
  EXPECT_EQ(out["layer_norm_eps"].get<double>(), 1e-12);
  EXPECT_EQ(out["classifier_dropout"].get<double>(), 0.3);
  EXPECT_EQ(out["attention_probs_dropout_prob"].get<double>(), 0.2);
  const std::string text = out.dump();
  EXPECT_NE(text.find("\"hidden_dropout_prob\":0.1,"), std::string::npos) << text;
  EXPECT_EQ(text.find("0000000"), std::string::npos) << text;
}

TEST(Config, ErrorsNameFileAndField) {
  nlohmann::json j = {{"model_type", "distilbert"}, {"dim", 64}, {"n_layers", 2}, {"hidden_dim", 10},
                      {"vocab_size", 50}};
  try {
    parse_config(j, "dir/config.json");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dir/config.json"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("n_heads"), std::string::npos) << e.what();
  }
  j["n_heads"] = 5;  // 64 % 5 != 0
  EXPECT_THROW(parse_config(j, "x"), Error);
  j["n_heads"] = 4;
  j["activation"] = "relu";
  EXPECT_THROW(parse_config(j, "x"), Error);
  nlohmann::json t = {{"model_type", "gpt2"}};
  EXPECT_THROW(parse_config(t, "x"), Error);
  EXPECT_THROW(load_config("/nonexistent/dir"), Error);
}

// Issue 11: a config.json holding a 10^6-deep array crashed `predict` (stack overflow), and a
// huge num_labels allocated its label names before any weight was looked at.
TEST(Config, DeepFilesAndHugeLabelCountsAreClearErrors) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("tuneserve_deep_config_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string deep = std::string(1'000'000, '[') + std::string(1'000'000, ']');
  std::ofstream(dir / "config.json") << R"({"model_type": "distilbert", "dim": )" << deep << "}";
  const std::string message = testing::error_of([&] { load_config(dir.string()); });
  EXPECT_NE(message.find("config.json: JSON nested deeper than 64 levels"), std::string::npos) << message;
  std::ofstream(dir / "config.json") << R"({"model_type": "distilbert", "dim": [)" << std::string(5000, '1') << "]}";
  EXPECT_LT(testing::error_of([&] { load_config(dir.string()); }).size(), 600u);
  fs::remove_all(dir);
  nlohmann::json j = {{"model_type", "distilbert"}, {"dim", 64}, {"n_layers", 2}, {"n_heads", 4}, {"hidden_dim", 10},
                      {"vocab_size", 50}, {"num_labels", 1'000'000'000}};
  EXPECT_NE(testing::error_of([&] { parse_config(j, "x"); }).find("at most 100000 labels"), std::string::npos);
  j["num_labels"] = 911'111;  // a count fuzz.config took over 10 s on
  EXPECT_NE(testing::error_of([&] { parse_config(j, "x"); }).find("at most 100000 labels"), std::string::npos);
}

}  // namespace
}  // namespace tuneserve
