// Normalizers of Hugging Face `tokenizers` over code points: each normalized char keeps the index
// of the original char it is aligned to (tokenizers' NormalizedString alignments, at code point
// granularity), which is how token offsets find their way back to the original text.
//
// Supported: BertNormalizer, Precompiled (SentencePiece's compiled char map, precompiled.h),
// Lowercase, Strip, Replace (string pattern), Prepend, and Sequence of these.
//
// Legend: n input code points, m normalized code points.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tuneserve::tok {

// Code points and, for each, the original index it is aligned to (m entries each).
struct Text {
  std::vector<char32_t> chars;
  std::vector<std::int32_t> orig;
  void clear() {
    chars.clear();
    orig.clear();
  }
  std::size_t size() const { return chars.size(); }
  void push(char32_t c, std::int32_t o) {
    chars.push_back(c);
    orig.push_back(o);
  }
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Appends the normalization of in[0, n) (in_orig: the alignment of each input char) to out.
  virtual void normalize(const char32_t* in, const std::int32_t* in_orig, std::size_t n, Text& out) const = 0;
  virtual bool lowercases() const { return false; }
};

// Applies a list of (char, change) edits the way tokenizers' NormalizedString::transform does:
// change 0 replaces the next input char, -N replaces it and drops N more, +1 inserts a char that
// shares the alignment of the input char before it. Input chars no edit consumes are dropped.
class Transformer {
 public:
  Transformer(const std::int32_t* in_orig, std::size_t n, Text& out) : orig_(in_orig), n_(n), out_(out) {}
  void put(char32_t c, int change) {
    std::int32_t align;
    if (change > 0) {
      align = offset_ >= 1 ? orig_[std::min(offset_, n_) - 1] : (n_ ? orig_[0] : 0);
    } else {
      align = offset_ < n_ ? orig_[offset_] : (n_ ? orig_[n_ - 1] : 0);
      offset_ += 1 + static_cast<std::size_t>(-change);
    }
    out_.push(c, align);
    any_ = true;
  }
  // tokenizers' "the last edit also removes k more chars": only when there is a last edit.
  void drop_after_last(std::size_t k) {
    if (any_) offset_ += k;
  }

 private:
  const std::int32_t* orig_;
  std::size_t n_, offset_ = 0;
  Text& out_;
  bool any_ = false;
};

struct NormalizerConfig {
  bool clean_text = true;            // drop control chars, map whitespace to ' '
  bool handle_chinese_chars = true;  // surround CJK ideographs with spaces
  bool strip_accents = false;        // NFD, then drop non-spacing marks
  bool lowercase = false;
};

std::unique_ptr<Normalizer> make_bert_normalizer(const NormalizerConfig& config);
std::unique_ptr<Normalizer> make_lowercase_normalizer();

// tokenizer.json's "normalizer" object (not null). Throws Error naming `where` and an unsupported type.
std::unique_ptr<Normalizer> parse_normalizer(const nlohmann::json& j, const std::string& where);

}  // namespace tuneserve::tok
