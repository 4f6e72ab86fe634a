// Golden parity: every encoding in ../shared/goldens/tokenizer_goldens.jsonl.gz (made by Hugging
// Face `tokenizers` 0.23.2) must come out identical: ids, and type ids / offsets where recorded.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "corpus.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace tuneserve {
namespace {

using json = nlohmann::json;

std::vector<json> read_goldens(const std::string& path) {
  std::vector<json> records;
  for (const std::string& line : testing::lines_of(path))
    if (!line.empty()) records.push_back(json::parse(line));
  return records;
}

template <typename T>
std::string show(const std::vector<T>& v) {
  return json(v).dump();
}

std::string show_offsets(const Encoding& e) {
  json out = json::array();
  for (auto [b, end] : e.offsets) out.push_back({b, end});
  return out.dump();
}

// Compares every record with `load(tokenizer name)`'s encoding; returns the failure count and
// prints the first few in full.
void check_all(const std::function<Tokenizer(const std::string&)>& load, const char* form) {
  const auto records = read_goldens(testing::shared_path("goldens/tokenizer_goldens.jsonl.gz"));
  ASSERT_EQ(records.size(), 6122u);
  std::map<std::string, Tokenizer> tokenizers;
  std::size_t failures = 0, checked_offsets = 0, checked_types = 0;
  std::map<std::string, std::size_t> failures_by_source;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const json& r = records[i];
    const std::string name = r.at("tokenizer");
    auto it = tokenizers.find(name);
    if (it == tokenizers.end()) it = tokenizers.emplace(name, load(name)).first;
    const std::string text = r.at("text");
    std::optional<std::string> pair;
    if (r.contains("text_pair") && !r["text_pair"].is_null()) pair = r["text_pair"].get<std::string>();
    const Encoding e = pair ? it->second.encode(text, std::string_view(*pair)) : it->second.encode(text);

    bool ok = r.at("ids").get<std::vector<std::int32_t>>() == e.ids;
    if (r.contains("type_ids")) {
      ++checked_types;
      ok = ok && r["type_ids"].get<std::vector<std::int32_t>>() == e.type_ids;
    }
    if (r.contains("offsets")) {
      ++checked_offsets;
      std::vector<std::pair<std::int32_t, std::int32_t>> expected;
      for (const json& o : r["offsets"]) expected.emplace_back(o[0].get<std::int32_t>(), o[1].get<std::int32_t>());
      ok = ok && expected == e.offsets;
    }
    if (ok) continue;
    ++failures;
    ++failures_by_source[name + "/" + r.at("source").get<std::string>()];
    if (failures <= 5) {
      ADD_FAILURE() << form << " record " << i << " (" << name << ", " << r.at("source").get<std::string>()
                    << ")\n  text:     " << json(text).dump()
                    << (pair ? "\n  pair:     " + json(*pair).dump() : std::string())
                    << "\n  expected: " << r.at("ids").dump() << "\n  got:      " << show(e.ids)
                    << (r.contains("type_ids") ? "\n  expected types: " + r["type_ids"].dump() +
                                                     "\n  got types:      " + show(e.type_ids)
                                               : std::string())
                    << (r.contains("offsets") ? "\n  expected offsets: " + r["offsets"].dump() +
                                                    "\n  got offsets:      " + show_offsets(e)
                                              : std::string());
    }
  }
  std::string by_source;
  for (const auto& [source, count] : failures_by_source) by_source += " " + source + "=" + std::to_string(count);
  EXPECT_EQ(failures, 0u) << form << ": " << failures << " of " << records.size()
                          << " encodings differ:" << by_source;
  EXPECT_GT(checked_offsets, 0u);
  EXPECT_GT(checked_types, 0u);
}

TEST(TokenizerGolden, AllRecordsFromTokenizerJson) {
  TUNESERVE_REQUIRE_SHARED("goldens/tokenizer_goldens.jsonl.gz");
  check_all([](const std::string& name) { return Tokenizer::from_dir(testing::shared_path("tokenizers/" + name)); },
            "tokenizer.json");
}

// The older vocab.txt + tokenizer_config.json form must give the same encodings.
TEST(TokenizerGolden, AllRecordsFromVocabTxt) {
  TUNESERVE_REQUIRE_SHARED("goldens/tokenizer_goldens.jsonl.gz");
  check_all(
      [](const std::string& name) {
        return Tokenizer::from_vocab_txt(testing::shared_path("tokenizers/" + name + "/vocab.txt"));
      },
      "vocab.txt");
}

}  // namespace
}  // namespace tuneserve
