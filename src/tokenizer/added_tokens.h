// Added tokens (tokenizer.json's "added_tokens", special tokens of the slow files): found in the
// text before the model runs, leftmost-longest and non-overlapping, then single_word / lstrip /
// rstrip applied, as Hugging Face `tokenizers`' AddedVocabulary does.
//
// Legend: n code points of the text searched.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace tuneserve::tok {

struct AddedToken {
  std::string content;
  std::u32string pattern;  // what is matched: content, normalized when `normalized`
  std::int32_t id = -1;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

// One piece of a split text: an added token (id >= 0) or plain text (id -1), [begin, end) chars.
struct Split {
  std::int32_t begin, end, id;
};

class AddedMatcher {
 public:
  // `token` must outlive the matcher.
  void add(const AddedToken& token);
  void finish();  // after the last add
  bool empty() const { return by_first_.empty(); }
  // Splits chars[begin, end) into `out`; plain pieces keep id -1.
  void split(const char32_t* chars, std::int32_t begin, std::int32_t end, std::vector<Split>& out) const;

 private:
  std::unordered_map<char32_t, std::vector<const AddedToken*>> by_first_;  // longest first
  bool ascii_first_[128] = {};
};

}  // namespace tuneserve::tok
