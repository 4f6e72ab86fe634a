// Unigram: the most probable split of a word into vocabulary pieces (Viterbi over the pieces'
// log-probability scores), as Hugging Face `tokenizers` models::Unigram does (its optimized
// encoder, which follows SentencePiece's): a char no piece starts with becomes an unknown piece
// scored min_score - 10, consecutive unknowns fuse into one, and with byte_fallback an unknown
// piece becomes its <0xAB> byte tokens.
//
// Legend: V vocabulary size, b bytes of a word.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/model.h"
#include "tokenizer/wordpiece.h"

namespace tuneserve::tok {

class Unigram final : public Model {
 public:
  // vocab: (piece, score) in id order. Throws Error naming `where` for a bad unk_id.
  Unigram(std::vector<std::pair<std::string, double>> vocab, std::optional<std::int32_t> unk_id, bool byte_fallback,
          const std::string& where);

  void tokenize(const char32_t* chars, const std::int32_t* orig, std::size_t n, std::vector<Token>& out) const override;
  std::int32_t find(std::string_view token) const override { return ids_.find(token); }
  std::optional<std::int32_t> unk_id() const override { return unk_id_; }
  void for_each_token(FunctionRef<void(std::string_view, std::int32_t)> f) const override;
  const char* kind() const override { return "Unigram"; }

 private:
  struct Piece {
    std::int32_t id;
    std::uint32_t begin, end;  // bytes of the word
  };
  void encode(std::string_view word, std::vector<Piece>& out) const;

  // Byte trie of the pieces as a double array: the child of node s by byte c is t = base[s] + c
  // when check[t] == s (one load per byte). Node 0 is the root.
  struct Unit {
    std::int32_t base = 0, check = -1, id = -1;  // check -1: free; id -1: no piece ends here
    double score = 0;                            // the piece's, beside its id (one cache line)
  };
  std::vector<Unit> trie_;

  std::vector<std::pair<std::string, double>> pieces_;
  FlatVocab ids_;  // piece -> id; a repeated piece keeps its last id (tokenizers' token_to_ids)
  std::optional<std::int32_t> unk_id_;
  bool byte_fallback_;
  double unk_score_ = 0;
  std::vector<std::int32_t> byte_ids_;  // 256 entries, -1 when absent
  std::uint64_t serial_;
};

}  // namespace tuneserve::tok
