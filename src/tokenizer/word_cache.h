// The cache of already-tokenized words that BPE and Unigram keep, as `tokenizers` does (its
// default capacity of 10,000 words, words under 256 bytes, no new entries once full): repeated
// words skip the merges or the Viterbi search. Caches are per thread (no locks on the encode
// path) and per model.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/model.h"

namespace tuneserve::tok {

// One token of a cached word: id and its char range inside the word.
struct CachedToken {
  std::int32_t id;
  std::uint16_t begin, end;
};

class WordCache {
 public:
  static constexpr std::size_t kMaxKeyBytes = 256;
  static constexpr std::size_t kCapacity = 10000;

  WordCache();
  // The tokens of `key` (their count in `count`), or nullptr when it is not cached.
  const CachedToken* find(std::string_view key, std::uint64_t hash, std::size_t& count) const;
  // Keys of kMaxKeyBytes or more are not cached, nor anything once the cache is full.
  void insert(std::string_view key, std::uint64_t hash, const CachedToken* tokens, std::size_t count);

 private:
  struct Slot {
    std::uint64_t hash = 0;
    std::uint32_t key_offset = 0, value_offset = 0;
    std::uint16_t key_len = 0, value_len = 0;
    bool used = false;
  };
  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<CachedToken> values_;
  std::size_t size_ = 0;
};

// A number no other model instance of this process has (caches are keyed by it, not by address).
std::uint64_t next_model_serial();
// The calling thread's cache for model `serial`; a thread keeps caches for a few models and drops
// the least recently used one.
WordCache& thread_word_cache(std::uint64_t serial);

// emit(id, begin, end): one token covering chars [begin, end) of the word.
using EmitToken = FunctionRef<void(std::int32_t id, std::uint32_t begin, std::uint32_t end)>;
// Appends the tokens of one word (key: its UTF-8 bytes; orig[i]: the original index of its char i):
// replayed from the calling thread's cache for model `serial` when there, else made by `split`
// and cached.
void tokenize_cached(std::uint64_t serial, std::string_view key, const std::int32_t* orig, std::vector<Token>& out,
                     FunctionRef<void(EmitToken)> split);

}  // namespace tuneserve::tok
