// BPE model (see bpe.h). Hand-written for speed with tokenizers' exact semantics: merges live in
// a flat open-addressing table keyed by the id pair, the merge queue is a binary heap ordered by
// (rank, position) with stale entries skipped as tokenizers skips them, and merged words are
// cached per thread (word_cache.h), so a repeated word costs one hash lookup.
#include "tokenizer/bpe.h"

#include <algorithm>

#include "core/error.h"
#include "tokenizer/unicode.h"
#include "tokenizer/word_cache.h"

namespace tuneserve::tok {
namespace {

constexpr std::uint64_t kEmptyKey = ~std::uint64_t{0};

std::uint64_t pair_key(std::int32_t left, std::int32_t right) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) | static_cast<std::uint32_t>(right);
}

std::size_t pair_hash(std::uint64_t key) {
  key ^= key >> 33;
  key *= 0xff51afd7ed558ccdull;
  key ^= key >> 33;
  return static_cast<std::size_t>(key);
}

}  // namespace

void WordBytes::assign(const char32_t* chars, std::size_t n) {
  bytes.clear();
  char_of.clear();
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t before = bytes.size();
    if (chars[i] < 0x80) bytes.push_back(static_cast<char>(chars[i]));
    else utf8_append(bytes, chars[i]);
    char_of.insert(char_of.end(), bytes.size() - before, static_cast<std::uint32_t>(i));
  }
}

void utf8_key(const char32_t* chars, std::size_t n, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < n; ++i) {
    if (chars[i] < 0x80) out.push_back(static_cast<char>(chars[i]));
    else utf8_append(out, chars[i]);
  }
}

std::string byte_piece(unsigned char byte) { return fmt::format("<0x{:02X}>", byte); }

Bpe::Bpe(std::vector<std::pair<std::string, std::int32_t>> vocab, const std::vector<MergeRule>& merges,
         BpeOptions options)
    : entries_(std::move(vocab)), options_(std::move(options)), serial_(next_model_serial()) {
  vocab_.reserve(entries_.size());
  for (const auto& [token, id] : entries_) vocab_.insert(token, id);
  if (options_.unk_token) unk_id_ = vocab_.find(*options_.unk_token);
  byte_ids_.assign(256, -1);
  for (unsigned b = 0; b < 256; ++b) byte_ids_[b] = vocab_.find(byte_piece(static_cast<unsigned char>(b)));
  if (options_.continuing_subword_prefix.empty() && options_.end_of_word_suffix.empty()) {
    // Byte-level vocabularies spell every byte with a char below U+0144.
    char_ids_.assign(0x180, -1);
    std::string s;
    for (char32_t c = 0; c < 0x180; ++c) {
      s.clear();
      utf8_append(s, c);
      char_ids_[c] = vocab_.find(s);
    }
  }

  std::size_t capacity = 16;
  while (capacity < 2 * merges.size()) capacity *= 2;
  merges_.assign(capacity, {kEmptyKey, Merge{}});
  const std::size_t prefix_len = options_.continuing_subword_prefix.size();
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const MergeRule& rule = merges[rank];
    const std::int32_t left = vocab_.find(rule.left);
    if (left < 0) fail("{}: merge \"{} {}\": \"{}\" is not in the vocabulary", rule.where, rule.left, rule.right, rule.left);
    const std::int32_t right = vocab_.find(rule.right);
    if (right < 0)
      fail("{}: merge \"{} {}\": \"{}\" is not in the vocabulary", rule.where, rule.left, rule.right, rule.right);
    if (rule.right.size() < prefix_len)
      fail("{}: merge \"{} {}\": \"{}\" is shorter than the continuing_subword_prefix", rule.where, rule.left,
           rule.right, rule.right);
    const std::string merged = rule.left + rule.right.substr(prefix_len);
    const std::int32_t new_id = vocab_.find(merged);
    if (new_id < 0)
      fail("{}: merge \"{} {}\": the result \"{}\" is not in the vocabulary", rule.where, rule.left, rule.right, merged);
    // A repeated pair takes the later rank, as tokenizers' merge map does.
    const std::uint64_t key = pair_key(left, right);
    std::size_t i = pair_hash(key) & (capacity - 1);
    while (merges_[i].first != kEmptyKey && merges_[i].first != key) i = (i + 1) & (capacity - 1);
    merges_[i] = {key, Merge{static_cast<std::uint32_t>(rank), new_id}};
  }
}

std::optional<std::int32_t> Bpe::unk_id() const {
  if (unk_id_ < 0) return std::nullopt;
  return unk_id_;
}

void Bpe::for_each_token(FunctionRef<void(std::string_view, std::int32_t)> f) const {
  for (const auto& [token, id] : entries_) f(token, id);
}

const Bpe::Merge* Bpe::find_merge(std::int32_t left, std::int32_t right) const {
  const std::uint64_t key = pair_key(left, right);
  const std::size_t mask = merges_.size() - 1;
  std::size_t i = pair_hash(key) & mask;
  while (true) {
    const auto& slot = merges_[i];
    if (slot.first == key) return &slot.second;
    if (slot.first == kEmptyKey) return nullptr;
    i = (i + 1) & mask;
  }
}

// The vocabulary id of char i as a first symbol (with prefix / suffix as the options say).
std::int32_t Bpe::char_symbol(const char32_t* chars, std::size_t i, std::size_t n, std::string& scratch) const {
  if (chars[i] < char_ids_.size()) return char_ids_[chars[i]];
  scratch.clear();
  if (i > 0) scratch += options_.continuing_subword_prefix;
  utf8_append(scratch, chars[i]);
  if (i + 1 == n) scratch += options_.end_of_word_suffix;
  return vocab_.find(scratch);
}

void Bpe::merge_word(const char32_t* chars, std::size_t n, std::vector<Piece>& out) const {
  struct Symbol {
    std::int32_t id;
    std::int32_t prev, next;
    std::uint32_t len;  // bytes; 0 once merged into the symbol on its left
  };
  struct Queued {
    std::uint32_t rank, pos;
    std::int32_t left, right, new_id;
  };
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Queued> heap;
  thread_local std::string scratch;
  symbols.clear();
  heap.clear();
  auto add = [&](std::int32_t id, std::uint32_t len) {
    const auto index = static_cast<std::int32_t>(symbols.size());
    if (!symbols.empty()) symbols.back().next = index;
    symbols.push_back(Symbol{id, index - 1, -1, len});
  };
  bool pending_unk = false;
  std::uint32_t unk_len = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const char32_t c = chars[i];
    const std::uint32_t byte_len = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    const std::int32_t id = char_symbol(chars, i, n, scratch);
    if (id >= 0) {
      if (pending_unk) add(unk_id_, unk_len);
      pending_unk = false;
      add(id, byte_len);
      continue;
    }
    if (options_.byte_fallback) {
      // The symbol's bytes as spelled (prefix / suffix included), one token per byte.
      scratch.clear();
      if (i > 0) scratch += options_.continuing_subword_prefix;
      utf8_append(scratch, chars[i]);
      if (i + 1 == n) scratch += options_.end_of_word_suffix;
      const bool all = std::all_of(scratch.begin(), scratch.end(),
                                   [&](char c) { return byte_ids_[static_cast<unsigned char>(c)] >= 0; });
      if (all) {
        for (char c : scratch) add(byte_ids_[static_cast<unsigned char>(c)], 1);
        continue;
      }
    }
    if (!options_.unk_token) continue;  // tokenizers drops the char
    if (unk_id_ < 0) fail("BPE: unk_token \"{}\" is not in the vocabulary", *options_.unk_token);
    if (pending_unk && options_.fuse_unk) {
      unk_len += byte_len;
    } else {
      if (pending_unk) add(unk_id_, unk_len);
      pending_unk = true;
      unk_len = byte_len;
    }
  }
  if (pending_unk) add(unk_id_, unk_len);

  // Lowest rank first, then leftmost (tokenizers' Merge ordering).
  auto later = [](const Queued& a, const Queued& b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
  for (std::size_t i = 0; i + 1 < symbols.size(); ++i)
    if (const Merge* m = find_merge(symbols[i].id, symbols[i + 1].id))
      heap.push_back(Queued{m->rank, static_cast<std::uint32_t>(i), symbols[i].id, symbols[i + 1].id, m->new_id});
  std::make_heap(heap.begin(), heap.end(), later);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Queued top = heap.back();
    heap.pop_back();
    Symbol& current = symbols[top.pos];
    if (current.len == 0 || current.next < 0) continue;
    const Symbol right = symbols[static_cast<std::size_t>(current.next)];
    // An entry made stale by an earlier merge no longer names this pair's result (tokenizers
    // compares the result ids; the pair itself unchanged is the common case and needs no lookup).
    if (current.id != top.left || right.id != top.right) {
      const Merge* valid = find_merge(current.id, right.id);
      if (!valid || valid->new_id != top.new_id) continue;
    }
    current.id = top.new_id;
    current.len += right.len;
    symbols[static_cast<std::size_t>(current.next)].len = 0;
    current.next = right.next;
    if (right.next >= 0) symbols[static_cast<std::size_t>(right.next)].prev = static_cast<std::int32_t>(top.pos);
    if (current.prev >= 0)
      if (const Merge* m = find_merge(symbols[static_cast<std::size_t>(current.prev)].id, current.id)) {
        heap.push_back(Queued{m->rank, static_cast<std::uint32_t>(current.prev),
                              symbols[static_cast<std::size_t>(current.prev)].id, current.id, m->new_id});
        std::push_heap(heap.begin(), heap.end(), later);
      }
    if (current.next >= 0)
      if (const Merge* m = find_merge(current.id, symbols[static_cast<std::size_t>(current.next)].id)) {
        heap.push_back(Queued{m->rank, top.pos, current.id, symbols[static_cast<std::size_t>(current.next)].id,
                              m->new_id});
        std::push_heap(heap.begin(), heap.end(), later);
      }
  }
  std::uint32_t pos = 0;
  for (const Symbol& s : symbols) {
    if (s.len == 0) continue;
    out.push_back(Piece{s.id, pos, pos + s.len});
    pos += s.len;
  }
}

void Bpe::tokenize(const char32_t* chars, const std::int32_t* orig, std::size_t n, std::vector<Token>& out) const {
  if (n == 0) return;
  thread_local std::string key;
  utf8_key(chars, n, key);
  if (options_.ignore_merges) {
    const std::int32_t id = vocab_.find(key);
    if (id >= 0) {
      out.push_back(Token{id, orig[0], orig[n - 1] + 1});
      return;
    }
  }
  tokenize_cached(serial_, key, orig, out, [&](EmitToken emit) {
    thread_local WordBytes word;
    thread_local std::vector<Piece> pieces;
    word.assign(chars, n);
    pieces.clear();
    merge_word(chars, n, pieces);
    // Byte ranges become char ranges; ranges past the word (byte_fallback of a prefix or suffix)
    // end at its last char.
    const std::size_t bytes = key.size();
    for (const Piece& p : pieces) {
      const std::size_t b = std::min<std::size_t>(p.begin, bytes - 1);
      const std::size_t e = std::max<std::size_t>(std::min<std::size_t>(p.end, bytes), b + 1);
      emit(p.id, word.char_of[b], word.char_of[e - 1] + 1);
    }
  });
}

}  // namespace tuneserve::tok
