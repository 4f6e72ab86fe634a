// Randomised cross-check against an independent implementation: npm @huggingface/transformers
// 4.3.1 (transformers.js, installed by scripts/setup.sh into third_party/npm) encodes a corpus of
// the shared datasets' texts and pairs plus generated Unicode edge cases (corpus.h: combining
// marks, emoji with modifiers and ZWJ, CJK, RTL, control and private-use chars, long repeats,
// leading and trailing spaces, special-token strings) with the same tokenizer.json files; every
// encoding must equal ours, except where that library is known to differ from Hugging Face's
// Rust `tokenizers`, which is named, counted and skipped:
//   - it drops the second text of a pair when the post-processor is ByteLevel (GPT-2);
//   - it ignores byte_fallback (encodings that use <0xAB> byte pieces);
//   - its regex \s is JavaScript's, without U+0085 (NEL) and with U+FEFF (BOM), where
//     tokenizers' Oniguruma \s and Rust's is_whitespace are the reverse (inputs holding either);
//   - its Precompiled normalizer ignores the compiled char map and applies NFKC after two regex
//     replacements instead (inputs whose normalization the two disagree on, or that hold code
//     points unassigned in utf8proc's Unicode version, which node's newer NFKC may decompose).
// CI runs a bounded corpus (~770 inputs per tokenizer); TUNESERVE_CROSSCHECK_FULL=1 runs the full
// one (~22,000) and prints the counts.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <utf8proc.h>

#include "corpus.h"
#include "test_util.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace tuneserve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::corpus;
using testing::Input;
using testing::lines_of;

struct Outcome {
  std::size_t compared = 0, matched = 0, skipped_pairs = 0, skipped_byte_fallback = 0, skipped_space = 0,
              skipped_precompiled = 0;
};

bool has_js_space_difference(const std::string& text) {
  return text.find("\u0085") != std::string::npos || text.find("\uFEFF") != std::string::npos;
}

// transformers.js's stand-in for the Precompiled normalizer (@huggingface/tokenizers 0.2.0,
// src/core/normalizer/Precompiled.ts): drop some controls, map some spaces to ' ', then NFKC
// (around each U+FF5E, which it keeps).
std::u32string js_precompiled(const std::u32string& text) {
  std::string kept;
  for (char32_t c : text) {
    if ((c >= 0x1 && c <= 0x8) || c == 0xB || (c >= 0xE && c <= 0x1F) || c == 0x7F || c == 0x8F || c == 0x9F) continue;
    const bool space = c == 0x9 || c == 0xA || c == 0xC || c == 0xD || c == 0xA0 || c == 0x1680 ||
                       (c >= 0x2000 && c <= 0x200F) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
                       c == 0x2581 || c == 0x3000 || c == 0xFEFF || c == 0xFFFD;
    tok::utf8_append(kept, space ? U' ' : c);
  }
  std::string out;
  std::size_t start = 0;
  while (true) {
    const std::size_t tilde = kept.find("\uFF5E", start);
    const std::string part = kept.substr(start, tilde == std::string::npos ? std::string::npos : tilde - start);
    utf8proc_uint8_t* nfkc = utf8proc_NFKC(reinterpret_cast<const utf8proc_uint8_t*>(part.c_str()));
    out += reinterpret_cast<const char*>(nfkc);
    std::free(nfkc);
    if (tilde == std::string::npos) break;
    out += "\uFF5E";
    start = tilde + 3;
  }
  return tok::utf8_to_u32(out);
}

std::u32string normalized(const tok::Normalizer& normalizer, const std::u32string& text) {
  std::vector<std::int32_t> orig(text.size(), 0);
  tok::Text out;
  normalizer.normalize(text.data(), orig.data(), text.size(), out);
  return std::u32string(out.chars.begin(), out.chars.end());
}

class TransformersJs : public ::testing::Test {
 protected:
  void SetUp() override {
    TUNESERVE_REQUIRE_SHARED("tokenizers/roberta-base/tokenizer.json");
    node_path_ = std::string(TUNESERVE_SOURCE_DIR) + "/third_party/npm/node_modules";
    std::string out;
    if (testing::run_command("node --version", out) != 0) GTEST_SKIP() << "node is missing (Debian nodejs)";
    if (!fs::exists(node_path_ + "/@huggingface/transformers/package.json"))
      GTEST_SKIP() << "@huggingface/transformers is not installed in " << node_path_ << " (scripts/setup.sh installs it)";
    const json package = json::parse(std::ifstream(node_path_ + "/@huggingface/transformers/package.json"));
    if (package.at("version") != "4.3.1")
      GTEST_SKIP() << "@huggingface/transformers is " << package.at("version") << ", the cross-check pins 4.3.1";
  }

  Outcome check(const std::string& name, const std::vector<Input>& inputs) {
    const std::string dir = testing::shared_path("tokenizers/" + name);
    const Tokenizer tokenizer = Tokenizer::from_dir(dir);
    const json file = json::parse(std::ifstream(dir + "/tokenizer.json"));
    const bool byte_fallback = file.at("model").value("byte_fallback", false);
    // transformers.js keeps only the first text of a pair when the post-processor is ByteLevel.
    const bool drops_pairs = file.contains("post_processor") && file["post_processor"].is_object() &&
                             file["post_processor"].value("type", "") == "ByteLevel";
    std::unique_ptr<tok::Normalizer> precompiled;
    if (file.contains("normalizer") && file["normalizer"].is_object() && file["normalizer"].value("type", "") == "Precompiled")
      precompiled = tok::parse_normalizer(file["normalizer"], name);
    auto normalizations_differ = [&](const std::string& text) {
      const std::u32string chars = tok::utf8_to_u32(text);
      // node's NFKC knows code points assigned after the Unicode version of utf8proc (and of the
      // char map); where the text has one, the stand-in's output is unknown here.
      const bool newer = std::any_of(chars.begin(), chars.end(), [](char32_t c) {
        return utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_CN;
      });
      return newer || normalized(*precompiled, chars) != js_precompiled(chars);
    };
    const fs::path tmp = fs::temp_directory_path() / ("tuneserve_js_" + std::to_string(::getpid()) + "_" + name);
    fs::create_directories(tmp);
    Outcome o;
    std::vector<const Input*> sent;
    {
      std::ofstream in(tmp / "in.jsonl");
      for (const Input& input : inputs) {
        if (input.pair && drops_pairs) {
          ++o.skipped_pairs;
          continue;
        }
        if (has_js_space_difference(input.text) || (input.pair && has_js_space_difference(*input.pair))) {
          ++o.skipped_space;
          continue;
        }
        if (precompiled && (normalizations_differ(input.text) || (input.pair && normalizations_differ(*input.pair)))) {
          ++o.skipped_precompiled;
          continue;
        }
        json line = {{"text", input.text}};
        if (input.pair) line["pair"] = *input.pair;
        in << line.dump() << "\n";
        sent.push_back(&input);
      }
    }
    std::string log;
    const int status = testing::run_command("NODE_PATH=" + node_path_ + " node " + TUNESERVE_SOURCE_DIR +
                                                "/tests/tokenizer/js/encode.mjs " + dir + " " + (tmp / "in.jsonl").string() +
                                                " " + (tmp / "out.jsonl").string(),
                                            log);
    EXPECT_EQ(status, 0) << log;
    const auto results = lines_of((tmp / "out.jsonl").string());
    fs::remove_all(tmp);
    if (status != 0) return o;
    EXPECT_EQ(results.size(), sent.size());
    std::size_t shown = 0;
    for (std::size_t i = 0; i < sent.size() && i < results.size(); ++i) {
      const Input& input = *sent[i];
      const Encoding ours = input.pair ? tokenizer.encode(input.text, std::string_view(*input.pair))
                                       : tokenizer.encode(input.text);
      if (byte_fallback && std::any_of(ours.ids.begin(), ours.ids.end(), [&](std::int32_t id) {
            const std::string& t = tokenizer.id_to_token(id);
            return t.size() == 6 && t.starts_with("<0x") && t.ends_with(">");
          })) {
        ++o.skipped_byte_fallback;
        continue;
      }
      ++o.compared;
      const auto theirs = json::parse(results[i]).get<std::vector<std::int32_t>>();
      if (theirs == ours.ids) {
        ++o.matched;
        continue;
      }
      if (shown++ < 5)
        ADD_FAILURE() << name << " (" << input.source << ")\n  text:  " << json(input.text).dump()
                      << (input.pair ? "\n  pair:  " + json(*input.pair).dump() : std::string())
                      << "\n  transformers.js: " << results[i] << "\n  tuneserve:       " << json(ours.ids).dump();
    }
    std::printf("%-13s compared %zu, matched %zu; skipped: %zu pairs (second text dropped), %zu byte_fallback, "
                "%zu NEL/BOM (JavaScript \\s), %zu Precompiled (NFKC stand-in)\n",
                name.c_str(), o.compared, o.matched, o.skipped_pairs, o.skipped_byte_fallback, o.skipped_space,
                o.skipped_precompiled);
    EXPECT_EQ(o.matched, o.compared) << name;
    return o;
  }

  std::string node_path_;
};

TEST_F(TransformersJs, RandomisedCorpusMatches) {
  const bool full = std::getenv("TUNESERVE_CROSSCHECK_FULL") != nullptr;
  const std::vector<Input> inputs = corpus(full);
  std::printf("%s corpus: %zu inputs (%zu pairs)\n", full ? "full" : "bounded", inputs.size(),
              static_cast<std::size_t>(std::count_if(inputs.begin(), inputs.end(), [](const Input& i) { return i.pair.has_value(); })));
  for (const char* name : {"roberta-base", "gpt2", "t5-small"}) {
    const Outcome o = check(name, inputs);
    EXPECT_GT(o.compared, inputs.size() / 2) << name;
  }
}

}  // namespace
}  // namespace tuneserve
