// The tokenizer models behind one interface: a model turns one pre-tokenized word into vocabulary
// ids with offsets. WordPiece (wordpiece.h), byte-level BPE (bpe.h), Unigram (unigram.h) and
// SentencePiece .model files (sentencepiece.h) implement it.
//
// Legend: n chars of one word, V vocabulary size.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/pre_tokenizer.h"

namespace tuneserve::tok {

// One token of a sequence before the post-processor: id and [begin, end) in code points of the
// original text.
struct Token {
  std::int32_t id;
  std::int32_t begin, end;
};

class Model {
 public:
  virtual ~Model() = default;
  // Tokenizes the word chars[0, n) (orig[i]: the original index of chars[i]); appends to `out`.
  // Thread-safe: any number of threads may call it at once.
  virtual void tokenize(const char32_t* chars, const std::int32_t* orig, std::size_t n,
                        std::vector<Token>& out) const = 0;
  virtual std::int32_t find(std::string_view token) const = 0;  // -1 when absent
  virtual std::optional<std::int32_t> unk_id() const = 0;
  // Calls f(token, id) for the V entries of the vocabulary.
  virtual void for_each_token(FunctionRef<void(std::string_view, std::int32_t)> f) const = 0;
  // "WordPiece", "BPE", "Unigram" or "SentencePiece".
  virtual const char* kind() const = 0;
};

// UTF-8 bytes of a word and, for each byte, the index of the char it belongs to (how byte
// offsets inside a word become char offsets).
struct WordBytes {
  std::string bytes;
  std::vector<std::uint32_t> char_of;
  void assign(const char32_t* chars, std::size_t n);
};

// The UTF-8 bytes of chars[0, n) into `out` (a word cache key).
void utf8_key(const char32_t* chars, std::size_t n, std::string& out);

// "<0xAB>": the vocabulary spelling of a byte for byte_fallback.
std::string byte_piece(unsigned char byte);

}  // namespace tuneserve::tok
