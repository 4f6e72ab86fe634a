// The randomised tokenizer corpus shared by the cross-checks (transformers.js, Python
// sentencepiece): rows of the shared datasets (texts and STS-B pairs) plus seeded generated texts
// that stress normalizers, pre-tokenizers and merges.
#pragma once

#include <nlohmann/json.hpp>
#include <zlib.h>

#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"
#include "tokenizer/unicode.h"

namespace tuneserve::testing {

struct Input {
  std::string text;
  std::optional<std::string> pair;
  std::string source;
};

// Seeded generator of texts that stress normalizers, pre-tokenizers and merges.
class EdgeCases {
 public:
  explicit EdgeCases(std::uint64_t seed) : rng_(seed) {}

  std::string text() {
    std::string out;
    if (pick(4) == 0) out += spaces();
    const std::size_t segments = 1 + pick(6);
    for (std::size_t s = 0; s < segments; ++s) {
      if (s > 0) out += separator();
      segment(out);
    }
    if (pick(4) == 0) out += spaces();
    return out;
  }

 private:
  std::size_t pick(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }
  char32_t in(char32_t first, char32_t last) { return first + static_cast<char32_t>(pick(last - first + 1)); }

  std::string spaces() {
    static const char32_t kinds[] = {' ', ' ', ' ', '\t', '\n', 0xA0, 0x3000, 0x2003, '\r'};
    std::string out;
    for (std::size_t i = 0, n = 1 + pick(4); i < n; ++i) tok::utf8_append(out, kinds[pick(std::size(kinds))]);
    return out;
  }
  std::string separator() {
    switch (pick(6)) {
      case 0: return "";
      case 1: return spaces();
      default: return " ";
    }
  }
  void word(std::string& out) {
    static const std::string letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (std::size_t i = 0, n = 1 + pick(9); i < n; ++i) out += letters[pick(letters.size())];
  }

  void segment(std::string& out) {
    switch (pick(14)) {
      case 0: {  // words, punctuation and English contractions
        static const char* pieces[] = {"don't", "it's", "I'M", "we've", "they'll", "'re", "'d", "''", "``", "...",
                                       "?!", "e.g.", "$12.50", "3,000", "(a)", "--", "#1", "@user", "x_y", "a/b"};
        for (std::size_t i = 0, n = 1 + pick(5); i < n; ++i) {
          if (i) out += ' ';
          if (pick(2)) word(out);
          else out += pieces[pick(std::size(pieces))];
        }
        break;
      }
      case 1:  // letters with one to three combining marks
        for (std::size_t i = 0, n = 1 + pick(6); i < n; ++i) {
          tok::utf8_append(out, pick(2) ? in('a', 'z') : in(0xC0, 0x17F));
          for (std::size_t k = 0, m = pick(4); k < m; ++k) tok::utf8_append(out, in(0x300, 0x36F));
        }
        break;
      case 2: {  // emoji: skin tones, ZWJ sequences, flags, keycaps, variation selectors
        for (std::size_t i = 0, n = 1 + pick(4); i < n; ++i) {
          switch (pick(5)) {
            case 0: tok::utf8_append(out, in(0x1F600, 0x1F64F)); break;
            case 1:
              tok::utf8_append(out, in(0x1F466, 0x1F469));
              tok::utf8_append(out, in(0x1F3FB, 0x1F3FF));
              break;
            case 2:
              tok::utf8_append(out, 0x1F469);
              tok::utf8_append(out, 0x200D);
              tok::utf8_append(out, 0x1F4BB);
              break;
            case 3:
              tok::utf8_append(out, in(0x1F1E6, 0x1F1FF));
              tok::utf8_append(out, in(0x1F1E6, 0x1F1FF));
              break;
            default:
              tok::utf8_append(out, in('0', '9'));
              tok::utf8_append(out, 0xFE0F);
              tok::utf8_append(out, 0x20E3);
          }
        }
        break;
      }
      case 3:  // CJK ideographs, kana, Hangul
        for (std::size_t i = 0, n = 1 + pick(12); i < n; ++i) {
          const std::size_t k = pick(4);
          tok::utf8_append(out, k == 0 ? in(0x4E00, 0x9FFF) : k == 1 ? in(0x3041, 0x30FF) : k == 2 ? in(0xAC00, 0xD7A3)
                                                                                          : in(0xFF01, 0xFF5E));
        }
        break;
      case 4:  // right-to-left: Arabic (with harakat), Hebrew
        for (std::size_t i = 0, n = 1 + pick(10); i < n; ++i) {
          if (pick(2)) {
            tok::utf8_append(out, in(0x621, 0x64A));
            if (pick(3) == 0) tok::utf8_append(out, in(0x64B, 0x652));
          } else {
            tok::utf8_append(out, in(0x5D0, 0x5EA));
          }
          if (pick(5) == 0) out += ' ';
        }
        break;
      case 5:  // control chars, zero-width chars, soft hyphen, BOM
        for (std::size_t i = 0, n = 1 + pick(4); i < n; ++i) {
          static const char32_t odd[] = {0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0xFEFF, 0xAD, 0x7F, 0x85, 0x9C, 0x2028};
          const std::size_t k = pick(3);
          tok::utf8_append(out, k == 0 ? in(0, 0x1F) : k == 1 ? odd[pick(std::size(odd))] : in(0x80, 0x9F));
          word(out);
        }
        break;
      case 6:  // private use, BMP and plane 15
        for (std::size_t i = 0, n = 1 + pick(4); i < n; ++i) tok::utf8_append(out, pick(2) ? in(0xE000, 0xF8FF) : in(0xF0000, 0xF0FFF));
        break;
      case 7: {  // long repeats
        static const char* units[] = {"a", "!", "ab", " ", "\xF0\x9F\x98\x80", "\xE6\x97\xA5", "-", "0", "\xC3\xA9"};
        const std::string unit = units[pick(std::size(units))];
        for (std::size_t i = 0, n = 20 + pick(300); i < n; ++i) out += unit;
        break;
      }
      case 8:  // Devanagari and Thai (combining vowel signs)
        for (std::size_t i = 0, n = 1 + pick(10); i < n; ++i) tok::utf8_append(out, pick(2) ? in(0x905, 0x94D) : in(0xE01, 0xE4E));
        break;
      case 9:  // compatibility forms: ligatures, math alphanumerics, circled, superscripts, fractions
        for (std::size_t i = 0, n = 1 + pick(6); i < n; ++i) {
          const std::size_t k = pick(5);
          tok::utf8_append(out, k == 0 ? in(0xFB00, 0xFB06) : k == 1 ? in(0x1D400, 0x1D433) : k == 2 ? in(0x2460, 0x2473)
                           : k == 3 ? in(0x2070, 0x2079) : in(0xBC, 0xBE));
        }
        break;
      case 10: {  // special-token strings of the tested tokenizers
        static const char* specials[] = {"<s>", "</s>", "<mask>", "<pad>", "<unk>", "<|endoftext|>", "<extra_id_0>",
                                         "<extra_id_99>", "[CLS]", " <mask> "};
        out += specials[pick(std::size(specials))];
        break;
      }
      case 11:  // Cyrillic, Greek (final sigma), Latin Extended
        for (std::size_t i = 0, n = 1 + pick(10); i < n; ++i) {
          const std::size_t k = pick(3);
          tok::utf8_append(out, k == 0 ? in(0x410, 0x44F) : k == 1 ? in(0x391, 0x3C9) : in(0x180, 0x24F));
        }
        break;
      case 12:  // any assigned-or-not code point outside the surrogates
        for (std::size_t i = 0, n = 1 + pick(5); i < n; ++i) {
          char32_t c = in(0x20, 0x2FFFF);
          if (c >= 0xD800 && c <= 0xDFFF) c = 'x';
          tok::utf8_append(out, c);
        }
        break;
      default:
        word(out);
    }
  }

  std::mt19937_64 rng_;
};

inline std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  if (path.size() > 3 && path.ends_with(".gz")) {
    gzFile file = gzopen(path.c_str(), "rb");
    if (!file) return out;
    std::string data;
    char buffer[1 << 16];
    int n;
    while ((n = gzread(file, buffer, sizeof buffer)) > 0) data.append(buffer, static_cast<std::size_t>(n));
    gzclose(file);
    std::istringstream in(data);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

inline std::vector<std::string> tsv_fields(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream in(line);
  for (std::string field; std::getline(in, field, '\t');) out.push_back(field);
  return out;
}

// The corpus: every `stride`-th row of the shared datasets, then `generated` edge cases (a fifth
// of them as pairs).
inline std::vector<Input> corpus(bool full) {
  std::vector<Input> out;
  const std::size_t stride = full ? 1 : 40;
  auto jsonl = [&](const std::string& file, const char* field, std::size_t limit) {
    const auto lines = lines_of(shared_path(file));
    for (std::size_t i = 0; i < lines.size() && i < limit; i += stride)
      if (!lines[i].empty()) out.push_back({nlohmann::json::parse(lines[i]).at(field).get<std::string>(), std::nullopt, file});
  };
  jsonl("data/amazon_polarity/train.jsonl", "content", 4000);
  jsonl("data/amazon_polarity/test.jsonl", "content", 1459);
  jsonl("data/imdb/test.jsonl.gz", "text", full ? 2000 : 400);
  auto tsv = [&](const std::string& file, std::size_t column, std::optional<std::size_t> pair_column, bool header) {
    const auto lines = lines_of(shared_path(file));
    for (std::size_t i = header ? 1 : 0; i < lines.size(); i += stride / 2 + 1) {
      const auto f = tsv_fields(lines[i]);
      if (f.size() <= std::max(column, pair_column.value_or(0))) continue;
      out.push_back({f[column], pair_column ? std::optional<std::string>(f[*pair_column]) : std::nullopt, file});
    }
  };
  tsv("data/sst2/dev.tsv", 1, std::nullopt, true);
  tsv("data/goemotions/dev.tsv", 0, std::nullopt, false);
  tsv("data/stsb/dev.tsv", 7, 8, true);
  EdgeCases gen(20251206);
  const std::size_t generated = full ? 6000 : 250;
  for (std::size_t i = 0; i < generated; ++i) {
    Input input{gen.text(), std::nullopt, "generated"};
    if (i % 5 == 4) input.pair = gen.text();
    out.push_back(std::move(input));
  }
  return out;
}

}  // namespace tuneserve::testing
