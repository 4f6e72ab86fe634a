// The Precompiled normalizer (see precompiled.h). Hand-written because it must reproduce
// `tokenizers` exactly, quirks included: each extended grapheme cluster shorter than 6 bytes is
// looked up whole, and the *shortest* prefix the map holds replaces the whole cluster; otherwise
// each char is looked up alone. The edits follow tokenizers' alignment rules (Transformer).
//
// Legend: n input code points.
#include "tokenizer/precompiled.h"

#include <openssl/evp.h>

#include <array>
#include <cstring>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace tuneserve::tok {
namespace {

std::uint32_t read_le32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

// Darts double-array unit fields (spm_precompiled / sentencepiece's darts.h).
bool has_leaf(std::uint32_t u) { return (u >> 8) & 1; }
std::uint32_t value_of(std::uint32_t u) { return u & 0x7FFFFFFFu; }
std::uint32_t label_of(std::uint32_t u) { return u & (0x80000000u | 0xFFu); }
std::size_t offset_of(std::uint32_t u) { return static_cast<std::size_t>(u >> 10) << ((u & (1u << 9)) >> 6); }

class PrecompiledNormalizer final : public Normalizer {
 public:
  PrecompiledNormalizer(const std::string& blob, const std::string& where) : map_(blob, where) {
    for (unsigned c = 1; c < 128; ++c) {
      const char byte = static_cast<char>(c);
      std::string_view repl;
      if (map_.transform(&byte, 1, repl)) {
        ascii_mapped_[c] = true;
        ascii_repl_[c] = utf8_to_u32(repl);
      }
    }
  }

  void normalize(const char32_t* in, const std::int32_t* in_orig, std::size_t n, Text& out) const override {
    Transformer t(in_orig, n, out);
    std::string bytes;
    std::u32string repl;
    std::size_t i = 0;
    while (i < n) {
      const char32_t c = in[i];
      // Two ASCII chars always have a cluster boundary between them, except CR LF.
      if (c < 0x80 && c != '\r' && (i + 1 == n || in[i + 1] < 0x80)) {
        if (ascii_mapped_[c]) replace(t, 1, ascii_repl_[c]);
        else t.put(c, 0);
        ++i;
        continue;
      }
      std::size_t j = i + 1;
      std::int32_t state = 0;
      while (j < n && !grapheme_break(in[j - 1], in[j], state)) ++j;
      bytes.clear();
      for (std::size_t k = i; k < j && bytes.size() < 6; ++k) utf8_append(bytes, in[k]);
      std::string_view found;
      if (bytes.size() < 6 && map_.transform(bytes.data(), bytes.size(), found)) {
        repl = utf8_to_u32(found);
        replace(t, j - i, repl);
        i = j;
        continue;
      }
      for (; i < j; ++i) {
        bytes.clear();
        utf8_append(bytes, in[i]);
        if (map_.transform(bytes.data(), bytes.size(), found)) {
          repl = utf8_to_u32(found);
          replace(t, 1, repl);
        } else {
          t.put(in[i], 0);
        }
      }
    }
  }

 private:
  // tokenizers' precompiled `replace`: new chars replace old ones one for one; extra new chars
  // are insertions; fewer new chars make the last edit so far swallow the difference.
  static void replace(Transformer& t, std::size_t old_count, const std::u32string& repl) {
    const auto diff = static_cast<std::ptrdiff_t>(repl.size()) - static_cast<std::ptrdiff_t>(old_count);
    for (std::size_t k = 0; k < repl.size(); ++k)
      t.put(repl[k], diff > 0 && static_cast<std::ptrdiff_t>(k) >= static_cast<std::ptrdiff_t>(repl.size()) - diff ? 1 : 0);
    if (diff < 0) t.drop_after_last(static_cast<std::size_t>(-diff));
  }

  PrecompiledCharsMap map_;
  std::array<bool, 128> ascii_mapped_{};
  std::array<std::u32string, 128> ascii_repl_;
};

}  // namespace

PrecompiledCharsMap::PrecompiledCharsMap(const std::string& blob, const std::string& where) : where_(where) {
  const auto* p = reinterpret_cast<const unsigned char*>(blob.data());
  if (blob.size() < 4) fail("{}: {} bytes is too short for a precompiled char map", where, blob.size());
  const std::size_t units = read_le32(p) / 4;
  if (units == 0 || units > (blob.size() - 4) / 4)
    fail("{}: the char map's trie ({} units) does not fit in its {} bytes", where, units, blob.size());
  units_.resize(units);
  for (std::size_t i = 0; i < units; ++i) units_[i] = read_le32(p + 4 + 4 * i);
  normalized_ = blob.substr(4 + 4 * units);
  std::vector<char32_t> check;
  try {
    utf8_decode(normalized_, check);
  } catch (const Error& e) {
    fail("{}: the char map's replacement strings are not UTF-8: {}", where, e.what());
  }
}

std::uint32_t PrecompiledCharsMap::unit(std::size_t pos) const {
  if (pos >= units_.size()) fail("{}: corrupt char map (trie index {} of {})", where_, pos, units_.size());
  return units_[pos];
}

bool PrecompiledCharsMap::transform(const char* bytes, std::size_t len, std::string_view& replacement) const {
  std::size_t pos = offset_of(unit(0));
  for (std::size_t i = 0; i < len; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c == 0) break;
    pos ^= c;
    if (pos >= units_.size()) return false;
    const std::uint32_t u = units_[pos];
    if (label_of(u) != c) return false;
    pos ^= offset_of(u);
    if (has_leaf(u)) {
      const std::size_t start = value_of(unit(pos));
      if (start > normalized_.size())
        fail("{}: corrupt char map (replacement offset {} of {})", where_, start, normalized_.size());
      const std::size_t end = normalized_.find('\0', start);
      replacement = std::string_view(normalized_).substr(start, end == std::string::npos ? std::string::npos : end - start);
      return true;
    }
  }
  return false;
}

std::unique_ptr<Normalizer> make_precompiled_normalizer(const std::string& blob, const std::string& where) {
  return std::make_unique<PrecompiledNormalizer>(blob, where);
}

std::string base64_decode(const std::string& text, const std::string& where) {
  if (text.size() % 4 != 0) fail("{}: base64 text of {} chars is not a multiple of 4", where, text.size());
  std::string out(text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) fail("{}: not valid base64", where);
  std::size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

}  // namespace tuneserve::tok
