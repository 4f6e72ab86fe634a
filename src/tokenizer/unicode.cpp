// Character classes for the BERT tokenizer (see unicode.h for whose definitions they follow).
// ASCII comes from a table built once; other code points ask utf8proc.
#include "tokenizer/unicode.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>

#include "core/error.h"

namespace tuneserve::tok {
namespace {

struct Range {
  char32_t first, last;
};

// Code points assigned after Unicode 8.0 (sorted, disjoint) that utf8proc would class as
// control, punctuation or non-spacing mark: `tokenizers` sees them as unassigned.
constexpr Range kAfterUnicode8[] = {
#include "tokenizer/unicode_age.inc"
};

bool assigned_after_unicode8(char32_t c) {
  auto it = std::upper_bound(std::begin(kAfterUnicode8), std::end(kAfterUnicode8), c,
                             [](char32_t v, const Range& r) { return v < r.first; });
  return it != std::begin(kAfterUnicode8) && c <= std::prev(it)->last;
}

bool is_rust_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

bool is_chinese(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

std::uint8_t compute_flags(char32_t c) {
  std::uint8_t flags = 0;
  if (is_rust_whitespace(c)) flags |= kWhitespace;
  if (is_chinese(c)) flags |= kChinese;
  if (c < 128 && std::string_view("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~").find(static_cast<char>(c)) !=
                     std::string_view::npos)
    flags |= kPunctuation;
  if (c > 0x10FFFF) return flags;
  const auto category = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  const bool old = !assigned_after_unicode8(c);
  switch (category) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CO:
      if (old && c != '\t' && c != '\n' && c != '\r') flags |= kControl;
      break;
    case UTF8PROC_CATEGORY_MN:
      if (old) flags |= kNonSpacing;
      break;
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      if (old) flags |= kPunctuation;
      break;
    default:
      break;
  }
  switch (category) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
      flags |= kLetter;
      break;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      flags |= kNumber;
      break;
    default:
      break;
  }
  // regex \w: alphabetic, marks, decimal digits, connector punctuation, join controls.
  switch (category) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      flags |= kWord;
      break;
    default:
      if (c == 0x200C || c == 0x200D) flags |= kWord;
      break;
  }
  return flags;
}

}  // namespace

namespace {
// The same classes as compute_flags for ASCII, computed at compile time.
constexpr std::array<std::uint8_t, 128> make_ascii_flags() {
  std::array<std::uint8_t, 128> table{};
  constexpr std::string_view punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  for (unsigned c = 0; c < 128; ++c) {
    std::uint8_t flags = 0;
    if ((c >= 0x09 && c <= 0x0D) || c == 0x20) flags |= kWhitespace;
    if ((c < 0x20 || c == 0x7F) && c != '\t' && c != '\n' && c != '\r') flags |= kControl;
    if (punct.find(static_cast<char>(c)) != std::string_view::npos) flags |= kPunctuation;
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_')
      flags |= kWord;
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) flags |= kLetter;
    if (c >= '0' && c <= '9') flags |= kNumber;
    table[c] = flags;
  }
  return table;
}
constexpr std::array<std::uint8_t, 128> kAsciiTable = make_ascii_flags();
}  // namespace

const std::uint8_t* const kAsciiFlags = kAsciiTable.data();

std::uint8_t char_flags_slow(char32_t c) { return compute_flags(c); }

namespace {
// utf8proc's decomposition of c into at most `cap` chars; c itself when it has none.
int decompose(char32_t c, char32_t* out, int cap, int options) {
  utf8proc_int32_t buf[18];
  int boundclass = 0;
  const auto n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), buf, cap,
                                         static_cast<utf8proc_option_t>(options), &boundclass);
  if (n <= 0 || n > cap) {
    out[0] = c;
    return 1;
  }
  for (int i = 0; i < n; ++i) out[i] = static_cast<char32_t>(buf[i]);
  return static_cast<int>(n);
}
}  // namespace

int decompose_canonical(char32_t c, char32_t out[8]) {
  if (c < 0xC0) {
    out[0] = c;
    return 1;
  }
  return decompose(c, out, 8, UTF8PROC_DECOMPOSE);
}

int decompose_compat(char32_t c, char32_t out[18]) {
  if (c < 0xA0) {
    out[0] = c;
    return 1;
  }
  return decompose(c, out, 18, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
}

bool is_python_space(char32_t c) { return is_rust_whitespace(c) || (c >= 0x1C && c <= 0x1F); }

int combining_class(char32_t c) {
  if (c < 0x300) return 0;
  return utf8proc_get_property(static_cast<utf8proc_int32_t>(c))->combining_class;
}

int to_lower_full(char32_t c, char32_t out[3]) {
  if (c < 128) {
    out[0] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
    return 1;
  }
  if (c == 0x130) {  // the one unconditional multi-code-point lowercase in SpecialCasing.txt
    out[0] = 'i';
    out[1] = 0x307;
    return 2;
  }
  out[0] = static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
  return 1;
}

bool grapheme_break(char32_t prev, char32_t next, std::int32_t& state) {
  return utf8proc_grapheme_break_stateful(static_cast<utf8proc_int32_t>(prev), static_cast<utf8proc_int32_t>(next),
                                          &state);
}

void utf8_decode(std::string_view text, std::vector<char32_t>& out) {
  out.clear();
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char b = s[i];
    if (b < 0x80) {
      out.push_back(b);
      ++i;
      continue;
    }
    int len = 0;
    char32_t c = 0, min = 0;
    if ((b & 0xE0) == 0xC0) { len = 2; c = b & 0x1F; min = 0x80; }
    else if ((b & 0xF0) == 0xE0) { len = 3; c = b & 0x0F; min = 0x800; }
    else if ((b & 0xF8) == 0xF0) { len = 4; c = b & 0x07; min = 0x10000; }
    else fail("text is not valid UTF-8 (byte {} is 0x{:02X})", i, b);
    if (i + len > n) fail("text is not valid UTF-8 (truncated sequence at byte {})", i);
    for (int k = 1; k < len; ++k) {
      const unsigned char cb = s[i + k];
      if ((cb & 0xC0) != 0x80) fail("text is not valid UTF-8 (byte {} is 0x{:02X})", i + k, cb);
      c = (c << 6) | (cb & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
      fail("text is not valid UTF-8 (bad code point at byte {})", i);
    out.push_back(c);
    i += len;
  }
}

void utf8_append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::u32string utf8_to_u32(std::string_view text) {
  std::vector<char32_t> cps;
  utf8_decode(text, cps);
  return std::u32string(cps.begin(), cps.end());
}

}  // namespace tuneserve::tok
