// WordPiece model and its vocabulary hash map (see wordpiece.h).
// Lookups hash the word's bytes in place: no key strings are built while tokenizing.
#include "tokenizer/wordpiece.h"

#include <cstring>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace tuneserve::tok {

std::uint64_t hash_bytes(std::string_view s) {
  // FNV-1a over 8-byte words with a final avalanche: vocabulary pieces are short.
  std::uint64_t h = 0xcbf29ce484222325ull ^ s.size();
  const char* p = s.data();
  std::size_t n = s.size();
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  std::uint64_t tail = 0;
  std::memcpy(&tail, p, n);
  h = (h ^ tail) * 0x100000001b3ull;
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ull;
  h ^= h >> 32;
  return h;
}

void FlatVocab::reserve(std::size_t n) {
  std::size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  if (cap > slots_.size()) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(cap, Slot{});
    size_ = 0;
    for (const Slot& s : old) {
      if (s.id < 0) continue;
      const std::size_t mask = slots_.size() - 1;
      std::size_t i = s.hash & mask;
      while (slots_[i].id >= 0) i = (i + 1) & mask;
      slots_[i] = s;
      ++size_;
    }
  }
}

void FlatVocab::grow() { reserve(slots_.empty() ? 8 : slots_.size()); }

bool FlatVocab::insert(std::string_view key, std::int32_t id) {
  if (id < 0) fail("vocabulary id {} for token \"{}\" is negative", id, key);
  if (2 * (size_ + 1) > slots_.size()) grow();
  const std::uint64_t h = hash_bytes(key);
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = h & mask;
  while (slots_[i].id >= 0) {
    const Slot& s = slots_[i];
    if (s.hash == h && std::string_view(pool_).substr(s.offset, s.length) == key) {
      slots_[i].id = id;
      return false;
    }
    i = (i + 1) & mask;
  }
  slots_[i] = Slot{h, static_cast<std::uint32_t>(pool_.size()), static_cast<std::uint32_t>(key.size()), id};
  pool_.append(key);
  ++size_;
  if (key.size() > max_key_bytes_) max_key_bytes_ = key.size();
  return true;
}

std::int32_t FlatVocab::find(std::string_view key) const {
  if (slots_.empty()) return -1;
  const std::uint64_t h = hash_bytes(key);
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = h & mask;
  while (true) {
    const Slot& s = slots_[i];
    if (s.id < 0) return -1;
    if (s.hash == h && s.length == key.size() &&
        std::memcmp(pool_.data() + s.offset, key.data(), key.size()) == 0)
      return s.id;
    i = (i + 1) & mask;
  }
}

WordPiece::WordPiece(const std::vector<std::pair<std::string, std::int32_t>>& vocab, std::string unk_token,
                     std::string continuing_prefix, std::size_t max_input_chars_per_word)
    : entries_(vocab) {
  unk_token_ = std::move(unk_token);
  prefix_ = std::move(continuing_prefix);
  max_chars_ = max_input_chars_per_word;
  all_.reserve(vocab.size());
  first_.reserve(vocab.size());
  cont_.reserve(vocab.size() / 4);
  for (const auto& [token, id] : vocab) {
    all_.insert(token, id);
    first_.insert(token, id);
    if (!prefix_.empty() && token.size() > prefix_.size() && token.compare(0, prefix_.size(), prefix_) == 0)
      cont_.insert(std::string_view(token).substr(prefix_.size()), id);
  }
  unk_id_ = all_.find(unk_token_);
  if (unk_id_ < 0) fail("WordPiece unk_token \"{}\" is not in the vocabulary", unk_token_);
}

void WordPiece::for_each_token(FunctionRef<void(std::string_view, std::int32_t)> f) const {
  for (const auto& [token, id] : entries_) f(token, id);
}

void WordPiece::tokenize(const char32_t* chars, const std::int32_t* orig, std::size_t n, std::vector<Token>& out) const {
  if (n == 0) return;
  thread_local std::string scratch;
  thread_local std::vector<std::uint32_t> byte_at;
  if (n > max_chars_) {
    out.push_back(Token{unk_id_, orig[0], orig[n - 1] + 1});
    return;
  }
  // UTF-8 bytes of the word and the byte offset of each char (byte_at[n] = total).
  scratch.clear();
  byte_at.resize(n + 1);
  for (std::size_t i = 0; i < n; ++i) {
    byte_at[i] = static_cast<std::uint32_t>(scratch.size());
    if (chars[i] < 0x80) scratch.push_back(static_cast<char>(chars[i]));
    else utf8_append(scratch, chars[i]);
  }
  byte_at[n] = static_cast<std::uint32_t>(scratch.size());

  const std::size_t first_out = out.size();
  std::size_t start = 0;
  while (start < n) {
    const FlatVocab& table = start == 0 ? first_ : cont_;
    const std::size_t max_bytes = table.max_key_bytes();
    // Longest candidate first; pieces longer than any key cannot match.
    std::size_t end = n;
    while (end > start && byte_at[end] - byte_at[start] > max_bytes) --end;
    std::int32_t id = -1;
    for (; end > start; --end) {
      id = table.find(std::string_view(scratch.data() + byte_at[start], byte_at[end] - byte_at[start]));
      if (id >= 0) break;
    }
    if (id < 0) {  // no piece fits: the whole word is one unknown token
      out.resize(first_out);
      out.push_back(Token{unk_id_, orig[0], orig[n - 1] + 1});
      return;
    }
    out.push_back(Token{id, orig[start], orig[end - 1] + 1});
    start = end;
  }
}

}  // namespace tuneserve::tok
