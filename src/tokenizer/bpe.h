// BPE: a word starts as one symbol per char (or its byte pieces / unk), then the ranked merges
// apply lowest rank first, leftmost first on ties, as Hugging Face `tokenizers` models::BPE
// (Word::merge_all) does. Byte-level BPE (GPT-2, RoBERTa) is this model behind the ByteLevel
// pre-tokenizer, which turns every byte into one vocabulary char.
//
// Legend: V vocabulary size, M merges, n chars of a word.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/model.h"
#include "tokenizer/wordpiece.h"

namespace tuneserve::tok {

struct BpeOptions {
  std::optional<std::string> unk_token;    // chars missing from the vocabulary are dropped without one
  std::string continuing_subword_prefix;   // prepended to every char symbol but the first
  std::string end_of_word_suffix;          // appended to the last char symbol
  bool fuse_unk = false;                   // consecutive unknown chars make one unk token
  bool byte_fallback = false;              // unknown chars become their <0xAB> byte pieces
  bool ignore_merges = false;              // a word that is a vocabulary entry is that token
};

// One merge rule "left right" and where it was read (errors name it: "merges.txt: line 7").
struct MergeRule {
  std::string left, right, where;
};

class Bpe final : public Model {
 public:
  // Throws Error naming the rule when a merge's pieces or result are not in the vocabulary.
  Bpe(std::vector<std::pair<std::string, std::int32_t>> vocab, const std::vector<MergeRule>& merges,
      BpeOptions options);

  void tokenize(const char32_t* chars, const std::int32_t* orig, std::size_t n, std::vector<Token>& out) const override;
  std::int32_t find(std::string_view token) const override { return vocab_.find(token); }
  std::optional<std::int32_t> unk_id() const override;
  void for_each_token(FunctionRef<void(std::string_view, std::int32_t)> f) const override;
  const char* kind() const override { return "BPE"; }

 private:
  struct Piece {
    std::int32_t id;
    std::uint32_t begin, end;  // bytes of the word
  };
  struct Merge {
    std::uint32_t rank;
    std::int32_t new_id;
  };
  void merge_word(const char32_t* chars, std::size_t n, std::vector<Piece>& out) const;
  const Merge* find_merge(std::int32_t left, std::int32_t right) const;
  std::int32_t char_symbol(const char32_t* chars, std::size_t i, std::size_t n, std::string& scratch) const;

  std::vector<std::pair<std::string, std::int32_t>> entries_;
  FlatVocab vocab_;
  BpeOptions options_;
  std::int32_t unk_id_ = -1;
  std::vector<std::int32_t> byte_ids_;    // 256 entries (byte_fallback), -1 when absent
  std::vector<std::int32_t> char_ids_;    // id of each single char below char_ids_.size(), -1 when absent
  std::vector<std::pair<std::uint64_t, Merge>> merges_;  // open addressing on (left << 32 | right)
  std::uint64_t serial_;
};

}  // namespace tuneserve::tok
