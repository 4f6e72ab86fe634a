// BertNormalizer (clean_text, handle_chinese_chars, strip_accents, lowercase) as `tokenizers`
// applies it: the four steps in that order, each char keeping its original index.
#include "tokenizer/normalizer.h"

#include "tokenizer/unicode.h"

namespace tuneserve::tok {
namespace {

// Steps 3-4 for one char that survived steps 1-2.
inline void accents_and_case(const NormalizerConfig& config, char32_t c, std::int32_t index,
                             std::vector<char32_t>& chars, std::vector<std::int32_t>& orig) {
  char32_t decomposed[8];
  const int nd = config.strip_accents ? decompose_canonical(c, decomposed) : (decomposed[0] = c, 1);
  for (int k = 0; k < nd; ++k) {
    char32_t d = decomposed[k];
    if (config.strip_accents) {
      if (char_flags(d) & kNonSpacing) continue;
      // Canonical ordering: a mark with a lower combining class moves before higher ones.
      // Only kept marks (spacing / enclosing) can still be reordered here.
      const int ccc = combining_class(d);
      if (ccc != 0) {
        std::size_t pos = chars.size();
        while (pos > 0 && combining_class(chars[pos - 1]) > ccc) --pos;
        if (pos != chars.size()) {
          if (config.lowercase) {
            char32_t low[3];
            to_lower_full(d, low);
            d = low[0];
          }
          chars.insert(chars.begin() + static_cast<std::ptrdiff_t>(pos), d);
          orig.insert(orig.begin() + static_cast<std::ptrdiff_t>(pos), index);
          continue;
        }
      }
    }
    if (config.lowercase) {
      char32_t low[3];
      const int nl = to_lower_full(d, low);
      for (int j = 0; j < nl; ++j) {
        chars.push_back(low[j]);
        orig.push_back(index);
      }
    } else {
      chars.push_back(d);
      orig.push_back(index);
    }
  }
}

}  // namespace

void bert_normalize(const NormalizerConfig& config, const char32_t* cps, std::int32_t begin,
                    std::int32_t end, std::vector<char32_t>& chars, std::vector<std::int32_t>& orig) {
  const bool simple = !config.strip_accents && !config.lowercase;
  for (std::int32_t i = begin; i < end; ++i) {
    char32_t c = cps[i];
    const std::uint8_t flags = char_flags(c);
    if (config.clean_text) {
      if (c == 0 || c == 0xFFFD || (flags & kControl)) continue;
      if (flags & kWhitespace) c = ' ';
    }
    if (c < 128) {  // ASCII: only case can change
      chars.push_back(config.lowercase && c >= 'A' && c <= 'Z' ? c + 32 : c);
      orig.push_back(i);
      continue;
    }
    if (config.handle_chinese_chars && (flags & kChinese)) {
      chars.push_back(' ');
      orig.push_back(i);
      if (simple) {
        chars.push_back(c);
        orig.push_back(i);
      } else {
        accents_and_case(config, c, i, chars, orig);
      }
      chars.push_back(' ');
      orig.push_back(i);
      continue;
    }
    if (simple) {
      chars.push_back(c);
      orig.push_back(i);
    } else {
      accents_and_case(config, c, i, chars, orig);
    }
  }
}

}  // namespace tuneserve::tok
