// BertNormalizer and BertPreTokenizer over code points, keeping for every normalized character
// the index of the original character it came from (how `tokenizers` aligns offsets).
//
// Legend: n original code points, m normalized code points.
#pragma once

#include <cstdint>
#include <vector>

namespace tuneserve::tok {

struct NormalizerConfig {
  bool clean_text = true;            // drop control chars, map whitespace to ' '
  bool handle_chinese_chars = true;  // surround CJK ideographs with spaces
  bool strip_accents = false;        // NFD, then drop non-spacing marks
  bool lowercase = false;
};

// Appends the normalization of cps[begin, end) to chars (m) and, for each, the original index
// (begin..end-1) to orig (m).
void bert_normalize(const NormalizerConfig& config, const char32_t* cps, std::int32_t begin,
                    std::int32_t end, std::vector<char32_t>& chars, std::vector<std::int32_t>& orig);

// BertPreTokenizer: splits chars[begin, end) on whitespace (dropped) and around each punctuation
// char (kept, alone); calls word(first, last) for each word [first, last).
template <typename Fn>
void bert_pre_tokenize(const char32_t* chars, std::size_t begin, std::size_t end, Fn&& word);

}  // namespace tuneserve::tok

#include "tokenizer/unicode.h"

namespace tuneserve::tok {

template <typename Fn>
void bert_pre_tokenize(const char32_t* chars, std::size_t begin, std::size_t end, Fn&& word) {
  std::size_t start = begin;
  for (std::size_t i = begin; i < end; ++i) {
    const std::uint8_t flags = char_flags(chars[i]);
    if (flags & kWhitespace) {
      if (start < i) word(start, i);
      start = i + 1;
    } else if (flags & kPunctuation) {
      if (start < i) word(start, i);
      word(i, i + 1);
      start = i + 1;
    }
  }
  if (start < end) word(start, end);
}

}  // namespace tuneserve::tok
