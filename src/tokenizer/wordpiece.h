// WordPiece: greedy longest-match-first split of one pre-tokenized word into vocabulary pieces,
// continuation pieces carrying the "##" prefix, as Hugging Face `tokenizers` models::WordPiece.
//
// Legend: V vocabulary size, n characters in a word.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/model.h"

namespace tuneserve::tok {

// Open-addressing hash map from UTF-8 bytes to id; strings live in one pool (no per-entry
// allocation, lookups by string_view without building a key).
class FlatVocab {
 public:
  void reserve(std::size_t n);
  // Returns false when `key` is already present (the id is then replaced).
  bool insert(std::string_view key, std::int32_t id);
  std::int32_t find(std::string_view key) const;  // -1 when absent
  std::size_t size() const { return size_; }
  std::size_t max_key_bytes() const { return max_key_bytes_; }

 private:
  struct Slot {
    std::uint64_t hash = 0;
    std::uint32_t offset = 0, length = 0;
    std::int32_t id = -1;  // -1: empty
  };
  void grow();
  std::vector<Slot> slots_;
  std::string pool_;
  std::size_t size_ = 0, max_key_bytes_ = 0;
};

std::uint64_t hash_bytes(std::string_view s);

class WordPiece final : public Model {
 public:
  // vocab: token -> id (V entries); ids must be >= 0.
  WordPiece(const std::vector<std::pair<std::string, std::int32_t>>& vocab, std::string unk_token,
            std::string continuing_prefix, std::size_t max_input_chars_per_word);

  void tokenize(const char32_t* chars, const std::int32_t* orig, std::size_t n, std::vector<Token>& out) const override;
  std::int32_t find(std::string_view token) const override { return all_.find(token); }
  std::optional<std::int32_t> unk_id() const override { return unk_id_; }
  void for_each_token(FunctionRef<void(std::string_view, std::int32_t)> f) const override;
  const char* kind() const override { return "WordPiece"; }

 private:
  std::vector<std::pair<std::string, std::int32_t>> entries_;
  FlatVocab all_;     // every vocabulary entry as written
  FlatVocab first_;   // entries usable at the start of a word (all of them)
  FlatVocab cont_;    // entries with the prefix, keyed without it
  std::string unk_token_, prefix_;
  std::int32_t unk_id_ = -1;
  std::size_t max_chars_ = 100;
};

}  // namespace tuneserve::tok
