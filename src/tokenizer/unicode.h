// Character classes and mappings the BERT tokenizer needs, defined the way Hugging Face
// `tokenizers` (Rust) defines them, on top of utf8proc; plus UTF-8 decoding/encoding.
//
// Where `tokenizers` and utf8proc (Unicode 15) disagree, the tokenizers behaviour wins:
//  - its categories come from the `unicode_categories` crate, whose tables are Unicode 8.0 and
//    hold no Cn (unassigned) entries: unassigned code points are neither control nor punctuation
//    nor marks, and code points assigned after Unicode 8.0 are treated as unassigned
//    (see unicode_age.h);
//  - whitespace is Rust's char::is_whitespace (the White_Space property);
//  - lowercase is Rust's char::to_lowercase (full mapping: U+0130 -> "i\u0307").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tuneserve::tok {

// Bit flags of one code point (see char_flags).
enum CharFlag : std::uint8_t {
  kWhitespace = 1,   // Rust char::is_whitespace
  kControl = 2,      // BertNormalizer is_control: Cc/Cf/Co except \t \n \r (removed by clean_text)
  kPunctuation = 4,  // BertPreTokenizer: ASCII punctuation or Unicode P*
  kNonSpacing = 8,   // Mn (removed by strip_accents after NFD)
  kChinese = 16,     // CJK ideograph blocks (BertNormalizer handle_chinese_chars)
  kWord = 32,        // regex \w (added tokens' single_word, the Whitespace pre-tokenizer)
  kLetter = 64,      // \p{L} (ByteLevel's GPT-2 split regex), Unicode 15 categories
  kNumber = 128,     // \p{N}
};

std::uint8_t char_flags_slow(char32_t c);
extern const std::uint8_t* const kAsciiFlags;  // 128 entries

// ASCII from a table, the rest from utf8proc.
inline std::uint8_t char_flags(char32_t c) { return c < 128 ? kAsciiFlags[c] : char_flags_slow(c); }

// Canonical decomposition (NFD without reordering) of one code point; returns how many code
// points were written to out (at most 4 for Unicode 15).
int decompose_canonical(char32_t c, char32_t out[8]);
int combining_class(char32_t c);
// Compatibility decomposition (NFKD of one code point, without reordering); returns how many
// code points were written (at most 18).
int decompose_compat(char32_t c, char32_t out[18]);
// Python's str.isspace (the whitespace str.split() splits on).
bool is_python_space(char32_t c);
// Full lowercase mapping; returns how many code points were written (1 or 2).
int to_lower_full(char32_t c, char32_t out[3]);

// Extended grapheme cluster boundary (UAX #29, utf8proc's rules) between `prev` and `next`;
// `state` carries the rules' context along one string (start each string with 0).
bool grapheme_break(char32_t prev, char32_t next, std::int32_t& state);

// Decodes UTF-8; throws Error naming the byte offset of an invalid sequence.
void utf8_decode(std::string_view text, std::vector<char32_t>& out);
void utf8_append(std::string& out, char32_t c);
std::u32string utf8_to_u32(std::string_view text);

}  // namespace tuneserve::tok
