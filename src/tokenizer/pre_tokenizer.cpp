// Pre-tokenizers (see pre_tokenizer.h). Hand-written for speed and exactness: the GPT-2 split
// regex of ByteLevel is matched by a small state machine over char classes instead of a regex
// engine (it runs on every char of every text), following Oniguruma's leftmost-first
// alternation and backtracking for `\s+(?!\S)` exactly.
#include "tokenizer/pre_tokenizer.h"

#include <nlohmann/json.hpp>

#include <array>
#include <vector>

#include "core/error.h"
#include "tokenizer/config_files.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/scratch.h"
#include "tokenizer/unicode.h"

namespace tuneserve::tok {
namespace {

using json = nlohmann::json;

// BertPreTokenizer: whitespace splits (and is dropped), each punctuation char is a word alone.
class BertPreTokenizer final : public PreTokenizer {
 public:
  void split(const char32_t* chars, const std::int32_t* orig, std::size_t n, WordFn word) const override {
    std::size_t start = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint8_t flags = char_flags(chars[i]);
      if (flags & kWhitespace) {
        if (start < i) word(chars + start, orig + start, i - start);
        start = i + 1;
      } else if (flags & kPunctuation) {
        if (start < i) word(chars + start, orig + start, i - start);
        word(chars + i, orig + i, 1);
        start = i + 1;
      }
    }
    if (start < n) word(chars + start, orig + start, n - start);
  }
};

// WhitespaceSplit: runs of non-whitespace (Rust char::is_whitespace).
class WhitespaceSplit final : public PreTokenizer {
 public:
  void split(const char32_t* chars, const std::int32_t* orig, std::size_t n, WordFn word) const override {
    std::size_t i = 0;
    while (i < n) {
      while (i < n && (char_flags(chars[i]) & kWhitespace)) ++i;
      const std::size_t start = i;
      while (i < n && !(char_flags(chars[i]) & kWhitespace)) ++i;
      if (start < i) word(chars + start, orig + start, i - start);
    }
  }
};

// Whitespace: the regex \w+|[^\w\s]+ (whitespace dropped).
class WhitespacePreTokenizer final : public PreTokenizer {
 public:
  void split(const char32_t* chars, const std::int32_t* orig, std::size_t n, WordFn word) const override {
    std::size_t i = 0;
    while (i < n) {
      const std::uint8_t f = char_flags(chars[i]);
      if (f & kWhitespace) {
        ++i;
        continue;
      }
      const bool w = f & kWord;
      const std::size_t start = i;
      while (i < n) {
        const std::uint8_t g = char_flags(chars[i]);
        if ((g & kWhitespace) || static_cast<bool>(g & kWord) != w) break;
        ++i;
      }
      word(chars + start, orig + start, i - start);
    }
  }
};

constexpr std::array<char32_t, 256> make_byte_chars() {
  std::array<char32_t, 256> table{};
  char32_t next = 256;
  for (unsigned b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    table[b] = printable ? b : next++;
  }
  return table;
}
constexpr std::array<char32_t, 256> kByteChars = make_byte_chars();

// GPT-2's split: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Returns the end of the match that starts at i (every char starts one: the classes cover all).
std::size_t gpt2_match(const char32_t* s, std::size_t i, std::size_t n) {
  const char32_t c = s[i];
  if (c == '\'' && i + 1 < n) {
    const char32_t d = s[i + 1];
    if (d == 's' || d == 't' || d == 'm' || d == 'd') return i + 2;
    if (i + 2 < n) {
      const char32_t e = s[i + 2];
      if ((d == 'r' && e == 'e') || (d == 'v' && e == 'e') || (d == 'l' && e == 'l')) return i + 3;
    }
  }
  auto cls = [](char32_t ch) -> int {  // 0 whitespace, 1 letter, 2 number, 3 other
    const std::uint8_t f = char_flags(ch);
    if (f & kWhitespace) return 0;
    if (f & kLetter) return 1;
    if (f & kNumber) return 2;
    return 3;
  };
  // ` ?X+` for X in letter, number, other: the optional space is tried first.
  std::size_t j = i;
  int k = cls(c);
  if (c == ' ' && i + 1 < n && cls(s[i + 1]) != 0) {
    j = i + 1;
    k = cls(s[j]);
  }
  if (k != 0) {
    while (j < n && cls(s[j]) == k) ++j;
    return j;
  }
  // Whitespace: \s+(?!\S) keeps the last space for the next word when a non-space follows.
  std::size_t e = i;
  while (e < n && cls(s[e]) == 0) ++e;
  if (e < n && e - i >= 2) return e - 1;
  return e;
}

// ByteLevel: optional prefix space, the GPT-2 split, then every UTF-8 byte as one char
// (all bytes of a char aligned to that char).
class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}

  void split(const char32_t* chars, const std::int32_t* orig, std::size_t n, WordFn word) const override {
    if (n == 0) return;
    const char32_t* s = chars;
    const std::int32_t* o = orig;
    Scratch<Text> prefixed;
    if (add_prefix_space_ && chars[0] != ' ') {
      prefixed->push(' ', orig[0]);
      for (std::size_t i = 0; i < n; ++i) prefixed->push(chars[i], orig[i]);
      s = prefixed->chars.data();
      o = prefixed->orig.data();
      n += 1;
    }
    Scratch<Text> mapped;
    std::string utf8;
    std::size_t i = 0;
    while (i < n) {
      const std::size_t end = use_regex_ ? gpt2_match(s, i, n) : n;
      mapped->clear();
      for (std::size_t k = i; k < end; ++k) {
        const char32_t c = s[k];
        if (c < 0x80) {
          mapped->push(kByteChars[c], o[k]);
        } else {
          utf8.clear();  // at most 4 bytes: no allocation
          utf8_append(utf8, c);
          for (char b : utf8) mapped->push(kByteChars[static_cast<unsigned char>(b)], o[k]);
        }
      }
      word(mapped->chars.data(), mapped->orig.data(), mapped->size());
      i = end;
    }
  }

 private:
  bool add_prefix_space_, use_regex_;
};

enum class PrependScheme { Always, First, Never };

// Metaspace: spaces become the replacement char, which is prepended (per the scheme) unless the
// word starts with it; then the word splits before every replacement char.
class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split)
      : replacement_(replacement), scheme_(scheme), split_(split) {}

  void split(const char32_t* chars, const std::int32_t* orig, std::size_t n, WordFn word) const override {
    if (n == 0) return;
    Scratch<Text> text;
    const char32_t first = chars[0] == ' ' ? replacement_ : chars[0];
    // tokenizers' First: only the piece that starts the original text.
    const bool prepend = first != replacement_ &&
                         (scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && orig[0] == 0));
    if (prepend) text->push(replacement_, orig[0]);
    for (std::size_t i = 0; i < n; ++i) text->push(chars[i] == ' ' ? replacement_ : chars[i], orig[i]);
    const char32_t* s = text->chars.data();
    const std::int32_t* o = text->orig.data();
    const std::size_t m = text->size();
    if (!split_) {
      word(s, o, m);
      return;
    }
    std::size_t start = 0;
    for (std::size_t i = 1; i < m; ++i) {
      if (s[i] != replacement_) continue;
      word(s + start, o + start, i - start);
      start = i;
    }
    word(s + start, o + start, m - start);
  }

 private:
  char32_t replacement_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void split(const char32_t* chars, const std::int32_t* orig, std::size_t n, WordFn word) const override {
    run(0, chars, orig, n, word);
  }

 private:
  void run(std::size_t step, const char32_t* chars, const std::int32_t* orig, std::size_t n, WordFn word) const {
    if (step == steps_.size()) {
      word(chars, orig, n);
      return;
    }
    steps_[step]->split(chars, orig, n, [&](const char32_t* c, const std::int32_t* o, std::size_t m) {
      run(step + 1, c, o, m, word);
    });
  }
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

std::unique_ptr<PreTokenizer> parse_metaspace(const json& j, const std::string& where) {
  char32_t replacement = 0x2581;
  if (j.contains("replacement")) {
    if (!j["replacement"].is_string()) fail("{}: \"replacement\" must be a one-char string", where);
    const std::u32string r = utf8_to_u32(j["replacement"].get<std::string>());
    if (r.size() != 1) fail("{}: \"replacement\" must be one char, got {}", where, r.size());
    replacement = r[0];
  }
  PrependScheme scheme = PrependScheme::Always;
  if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
    const std::string s = j["prepend_scheme"].is_string() ? j["prepend_scheme"].get<std::string>() : "";
    if (s == "always") scheme = PrependScheme::Always;
    else if (s == "first") scheme = PrependScheme::First;
    else if (s == "never") scheme = PrependScheme::Never;
    else fail("{}: prepend_scheme must be \"always\", \"first\" or \"never\"", where);
  } else {
    // Files written before prepend_scheme existed say add_prefix_space.
    scheme = get_bool(j, "add_prefix_space", true, where) ? PrependScheme::Always : PrependScheme::Never;
  }
  return std::make_unique<MetaspacePreTokenizer>(replacement, scheme, get_bool(j, "split", true, where));
}

}  // namespace

char32_t byte_level_char(unsigned char byte) { return kByteChars[byte]; }

std::unique_ptr<PreTokenizer> make_bert_pre_tokenizer() { return std::make_unique<BertPreTokenizer>(); }

std::unique_ptr<PreTokenizer> make_byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex) {
  return std::make_unique<ByteLevelPreTokenizer>(add_prefix_space, use_regex);
}

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const json& j, const std::string& where) {
  if (!j.is_object()) fail("{}: expected an object", where);
  const std::string type = j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "";
  if (type == "BertPreTokenizer") return make_bert_pre_tokenizer();
  if (type == "ByteLevel")
    return make_byte_level_pre_tokenizer(get_bool(j, "add_prefix_space", true, where),
                                         get_bool(j, "use_regex", true, where));
  if (type == "Metaspace") return parse_metaspace(j, where);
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplit>();
  if (type == "Whitespace") return std::make_unique<WhitespacePreTokenizer>();
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array())
      fail("{}: Sequence needs a \"pretokenizers\" array", where);
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (std::size_t i = 0; i < j["pretokenizers"].size(); ++i)
      steps.push_back(parse_pre_tokenizer(j["pretokenizers"][i], fmt::format("{}.pretokenizers[{}]", where, i)));
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  fail("{}: pre_tokenizer type \"{}\" is not supported (BertPreTokenizer, ByteLevel, Metaspace, WhitespaceSplit, "
       "Whitespace, Sequence)",
       where, type);
}

}  // namespace tuneserve::tok
