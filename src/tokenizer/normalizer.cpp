// Normalizers (see normalizer.h). Hand-written rather than built on a Unicode library's
// normalization because tokens must map back to original offsets exactly as `tokenizers` maps
// them, edit by edit; each normalizer states which tokenizers edits it reproduces.
#include "tokenizer/normalizer.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/config_files.h"
#include "tokenizer/precompiled.h"
#include "tokenizer/scratch.h"
#include "tokenizer/unicode.h"

namespace tuneserve::tok {
namespace {

using json = nlohmann::json;

// BertNormalizer (clean_text, handle_chinese_chars, strip_accents, lowercase) as `tokenizers`
// applies it: the four steps in that order, each char keeping its original index.
class BertNormalizer final : public Normalizer {
 public:
  explicit BertNormalizer(const NormalizerConfig& config) : config_(config) {}
  bool lowercases() const override { return config_.lowercase; }

  void normalize(const char32_t* in, const std::int32_t* in_orig, std::size_t n, Text& out) const override {
    const bool simple = !config_.strip_accents && !config_.lowercase;
    for (std::size_t i = 0; i < n; ++i) {
      char32_t c = in[i];
      const std::int32_t index = in_orig[i];
      const std::uint8_t flags = char_flags(c);
      if (config_.clean_text) {
        if (c == 0 || c == 0xFFFD || (flags & kControl)) continue;
        if (flags & kWhitespace) c = ' ';
      }
      if (c < 128) {  // ASCII: only case can change
        out.push(config_.lowercase && c >= 'A' && c <= 'Z' ? c + 32 : c, index);
        continue;
      }
      if (config_.handle_chinese_chars && (flags & kChinese)) {
        out.push(' ', index);
        if (simple) out.push(c, index);
        else accents_and_case(c, index, out);
        out.push(' ', index);
        continue;
      }
      if (simple) out.push(c, index);
      else accents_and_case(c, index, out);
    }
  }

 private:
  // Steps 3-4 for one char that survived steps 1-2.
  void accents_and_case(char32_t c, std::int32_t index, Text& out) const {
    char32_t decomposed[8];
    const int nd = config_.strip_accents ? decompose_canonical(c, decomposed) : (decomposed[0] = c, 1);
    for (int k = 0; k < nd; ++k) {
      char32_t d = decomposed[k];
      if (config_.strip_accents) {
        if (char_flags(d) & kNonSpacing) continue;
        // Canonical ordering: a mark with a lower combining class moves before higher ones.
        // Only kept marks (spacing / enclosing) can still be reordered here.
        const int ccc = combining_class(d);
        if (ccc != 0) {
          std::size_t pos = out.chars.size();
          while (pos > 0 && combining_class(out.chars[pos - 1]) > ccc) --pos;
          if (pos != out.chars.size()) {
            if (config_.lowercase) {
              char32_t low[3];
              to_lower_full(d, low);
              d = low[0];
            }
            out.chars.insert(out.chars.begin() + static_cast<std::ptrdiff_t>(pos), d);
            out.orig.insert(out.orig.begin() + static_cast<std::ptrdiff_t>(pos), index);
            continue;
          }
        }
      }
      if (config_.lowercase) {
        char32_t low[3];
        const int nl = to_lower_full(d, low);
        for (int j = 0; j < nl; ++j) out.push(low[j], index);
      } else {
        out.push(d, index);
      }
    }
  }

  NormalizerConfig config_;
};

// Lowercase: Rust's char::to_lowercase; extra chars of a multi-char mapping are insertions.
class LowercaseNormalizer final : public Normalizer {
 public:
  bool lowercases() const override { return true; }
  void normalize(const char32_t* in, const std::int32_t* in_orig, std::size_t n, Text& out) const override {
    Transformer t(in_orig, n, out);
    for (std::size_t i = 0; i < n; ++i) {
      char32_t low[3];
      const int nl = to_lower_full(in[i], low);
      for (int j = 0; j < nl; ++j) t.put(low[j], j > 0 ? 1 : 0);
    }
  }
};

// Strip: removes leading / trailing whitespace (Rust char::is_whitespace); kept chars keep theirs.
class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(const char32_t* in, const std::int32_t* in_orig, std::size_t n, Text& out) const override {
    std::size_t begin = 0, end = n;
    if (left_)
      while (begin < end && (char_flags(in[begin]) & kWhitespace)) ++begin;
    if (right_)
      while (end > begin && (char_flags(in[end - 1]) & kWhitespace)) --end;
    for (std::size_t i = begin; i < end; ++i) out.push(in[i], in_orig[i]);
  }

 private:
  bool left_, right_;
};

// Replace with a string pattern: non-overlapping matches left to right; the content's chars are
// insertions after the match, so they share the alignment of the match's last char.
class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::u32string pattern, std::u32string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(const char32_t* in, const std::int32_t* in_orig, std::size_t n, Text& out) const override {
    const std::size_t p = pattern_.size();
    std::size_t i = 0;
    while (i < n) {
      if (p > 0 && i + p <= n && std::equal(pattern_.begin(), pattern_.end(), in + i)) {
        for (char32_t c : content_) out.push(c, in_orig[i + p - 1]);
        i += p;
      } else {
        out.push(in[i], in_orig[i]);
        ++i;
      }
    }
  }

 private:
  std::u32string pattern_, content_;
};

// Prepend: the string goes before a non-empty text, aligned to its first char.
class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::u32string prefix) : prefix_(std::move(prefix)) {}
  void normalize(const char32_t* in, const std::int32_t* in_orig, std::size_t n, Text& out) const override {
    if (n == 0) return;
    for (char32_t c : prefix_) out.push(c, in_orig[0]);
    for (std::size_t i = 0; i < n; ++i) out.push(in[i], in_orig[i]);
  }

 private:
  std::u32string prefix_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  bool lowercases() const override {
    for (const auto& s : steps_)
      if (s->lowercases()) return true;
    return false;
  }
  void normalize(const char32_t* in, const std::int32_t* in_orig, std::size_t n, Text& out) const override {
    if (steps_.empty()) {
      for (std::size_t i = 0; i < n; ++i) out.push(in[i], in_orig[i]);
      return;
    }
    Scratch<Text> a, b;
    const char32_t* cur = in;
    const std::int32_t* cur_orig = in_orig;
    std::size_t cur_n = n;
    for (std::size_t s = 0; s + 1 < steps_.size(); ++s) {
      Text& next = s % 2 == 0 ? *a : *b;
      next.clear();
      steps_[s]->normalize(cur, cur_orig, cur_n, next);
      cur = next.chars.data();
      cur_orig = next.orig.data();
      cur_n = next.size();
    }
    steps_.back()->normalize(cur, cur_orig, cur_n, out);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

std::u32string string_field(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string()) fail("{}: missing string \"{}\"", where, key);
  return utf8_to_u32(j[key].get<std::string>());
}

}  // namespace

std::unique_ptr<Normalizer> make_bert_normalizer(const NormalizerConfig& config) {
  return std::make_unique<BertNormalizer>(config);
}

std::unique_ptr<Normalizer> make_lowercase_normalizer() { return std::make_unique<LowercaseNormalizer>(); }

std::unique_ptr<Normalizer> parse_normalizer(const json& j, const std::string& where) {
  if (!j.is_object()) fail("{}: expected an object", where);
  const std::string type = j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "";
  if (type == "BertNormalizer") {
    NormalizerConfig c;
    c.clean_text = get_bool(j, "clean_text", true, where);
    c.handle_chinese_chars = get_bool(j, "handle_chinese_chars", true, where);
    c.lowercase = get_bool(j, "lowercase", true, where);
    // strip_accents null follows lowercase (tokenizers' BertNormalizer).
    c.strip_accents = get_bool(j, "strip_accents", c.lowercase, where);
    return make_bert_normalizer(c);
  }
  if (type == "Precompiled") {
    if (!j.contains("precompiled_charsmap") || !j["precompiled_charsmap"].is_string())
      fail("{}: Precompiled needs a base64 string \"precompiled_charsmap\"", where);
    return make_precompiled_normalizer(base64_decode(j["precompiled_charsmap"].get<std::string>(), where),
                                       where + ".precompiled_charsmap");
  }
  if (type == "Lowercase") return make_lowercase_normalizer();
  if (type == "Strip")
    return std::make_unique<StripNormalizer>(get_bool(j, "strip_left", true, where),
                                             get_bool(j, "strip_right", true, where));
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(string_field(j, "prepend", where));
  if (type == "Replace") {
    if (!j.contains("pattern") || !j["pattern"].is_object() || !j["pattern"].contains("String"))
      fail("{}: Replace is supported with a {{\"String\": ...}} pattern only (not a regex)", where);
    return std::make_unique<ReplaceNormalizer>(string_field(j["pattern"], "String", where + ".pattern"),
                                               string_field(j, "content", where));
  }
  if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array())
      fail("{}: Sequence needs a \"normalizers\" array", where);
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (std::size_t i = 0; i < j["normalizers"].size(); ++i)
      steps.push_back(parse_normalizer(j["normalizers"][i], fmt::format("{}.normalizers[{}]", where, i)));
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  fail("{}: normalizer type \"{}\" is not supported (BertNormalizer, Precompiled, Lowercase, Strip, "
       "Replace, Prepend, Sequence)",
       where, type);
}

}  // namespace tuneserve::tok
