// Golden parity beyond WordPiece: the ids Hugging Face's fast tokenizers (transformers 4.57.1)
// give the 83 multilingual texts of ../shared/goldens/tokenizers-beyond-wordpiece for roberta-base
// and gpt2 (byte-level BPE) and t5-small (Unigram, Precompiled, Metaspace) must all come out
// identical, from tokenizer.json and, for the BPE pair, from vocab.json + merges.txt as well.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>

#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace tuneserve {
namespace {

using json = nlohmann::json;

json read(const std::string& relative) {
  std::ifstream in(testing::shared_path(relative));
  return json::parse(in);
}

// Compares every entry of `golden` with `tokenizer`'s encoding of the same input (special tokens
// added, as transformers' tokenizer(text) does); returns how many matched.
std::size_t check(const Tokenizer& tokenizer, const std::string& golden, const std::string& form) {
  const json inputs = read("goldens/tokenizers-beyond-wordpiece/inputs.json");
  std::map<std::string, std::string> text_of;
  for (const json& input : inputs) text_of[input.at("id")] = input.at("text");
  const json entries = read("goldens/tokenizers-beyond-wordpiece/" + golden).at("entries");
  EXPECT_EQ(entries.size(), 83u);
  std::size_t matched = 0, shown = 0;
  for (const json& entry : entries) {
    const std::string& text = text_of.at(entry.at("id"));
    const auto expected = entry.at("input_ids").get<std::vector<std::int32_t>>();
    const auto got = tokenizer.encode(text).ids;
    if (got == expected) {
      ++matched;
      continue;
    }
    if (shown++ < 3)
      ADD_FAILURE() << form << " " << entry.at("id") << "\n  text:     " << json(text).dump()
                    << "\n  expected: " << json(expected).dump() << "\n  got:      " << json(got).dump();
  }
  EXPECT_EQ(matched, entries.size()) << form;
  return matched;
}

TEST(BeyondWordPieceGolden, RobertaGpt2AndT5FromTokenizerJson) {
  TUNESERVE_REQUIRE_SHARED("goldens/tokenizers-beyond-wordpiece/inputs.json");
  const Tokenizer roberta = Tokenizer::from_dir(testing::shared_path("tokenizers/roberta-base"));
  const Tokenizer gpt2 = Tokenizer::from_dir(testing::shared_path("tokenizers/gpt2"));
  const Tokenizer t5 = Tokenizer::from_dir(testing::shared_path("tokenizers/t5-small"));
  EXPECT_STREQ(roberta.kind(), "BPE");
  EXPECT_STREQ(gpt2.kind(), "BPE");
  EXPECT_STREQ(t5.kind(), "Unigram");
  check(roberta, "roberta_base_multilingual.json", "roberta-base tokenizer.json");
  check(gpt2, "gpt2_multilingual.json", "gpt2 tokenizer.json");
  check(t5, "t5_small_multilingual.json", "t5-small tokenizer.json");
}

TEST(BeyondWordPieceGolden, RobertaAndGpt2FromVocabJsonAndMerges) {
  TUNESERVE_REQUIRE_SHARED("goldens/tokenizers-beyond-wordpiece/inputs.json");
  for (const auto& [name, golden] : {std::pair{"roberta-base", "roberta_base_multilingual.json"},
                                     std::pair{"gpt2", "gpt2_multilingual.json"}}) {
    const std::string dir = testing::shared_path(std::string("tokenizers/") + name);
    const Tokenizer t = Tokenizer::from_bpe_files(dir + "/vocab.json", dir + "/merges.txt");
    check(t, golden, std::string(name) + " vocab.json + merges.txt");
  }
}

}  // namespace
}  // namespace tuneserve
