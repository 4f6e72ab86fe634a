// Unigram model (see unigram.h). Hand-written for speed with tokenizers' exact semantics: one
// left-to-right pass keeps the best path ending at each byte (ties keep the first path found,
// pieces visited shortest first), pieces come from a byte trie, and tokenized words are cached
// per thread (word_cache.h).
#include "tokenizer/unigram.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "tokenizer/word_cache.h"

namespace tuneserve::tok {
namespace {
constexpr double kUnkPenalty = 10.0;  // tokenizers' K_UNK_PENALTY

std::size_t utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  return 4;
}
}  // namespace

Unigram::Unigram(std::vector<std::pair<std::string, double>> vocab, std::optional<std::int32_t> unk_id,
                 bool byte_fallback, const std::string& where)
    : pieces_(std::move(vocab)), unk_id_(unk_id), byte_fallback_(byte_fallback), serial_(next_model_serial()) {
  if (unk_id_) {
    if (pieces_.empty()) fail("{}: the vocabulary is empty but unk_id is set", where);
    if (*unk_id_ < 0 || static_cast<std::size_t>(*unk_id_) >= pieces_.size())
      fail("{}: unk_id {} is outside the vocabulary of {} pieces", where, *unk_id_, pieces_.size());
  }
  ids_.reserve(pieces_.size());
  double min_score = std::numeric_limits<double>::infinity();
  // Build the trie with child lists first, then lay it out as a double array (first fit).
  struct BuildNode {
    std::int32_t id = -1;
    std::vector<std::pair<unsigned char, std::uint32_t>> children;
  };
  std::vector<BuildNode> build(1);
  for (std::size_t id = 0; id < pieces_.size(); ++id) {
    const auto& [piece, score] = pieces_[id];
    ids_.insert(piece, static_cast<std::int32_t>(id));
    min_score = std::min(min_score, score);
    std::uint32_t node = 0;
    for (char ch : piece) {
      const auto byte = static_cast<unsigned char>(ch);
      auto& children = build[node].children;
      auto it = std::find_if(children.begin(), children.end(), [&](const auto& e) { return e.first == byte; });
      if (it == children.end()) {
        const auto child = static_cast<std::uint32_t>(build.size());
        build[node].children.emplace_back(byte, child);
        build.emplace_back();
        node = child;
      } else {
        node = it->second;
      }
    }
    build[node].id = static_cast<std::int32_t>(id);
  }
  trie_.assign(512, Unit{});
  trie_[0].check = -2;  // the root: taken, and nobody's child
  // free_after[q]: a position <= the first free one at or after q (path-compressed as used).
  std::vector<std::uint32_t> free_after(trie_.size());
  std::iota(free_after.begin(), free_after.end(), 0u);
  auto grow = [&] {
    const std::size_t old = trie_.size();
    trie_.resize(old * 2, Unit{});
    free_after.resize(old * 2);
    std::iota(free_after.begin() + static_cast<std::ptrdiff_t>(old), free_after.end(), static_cast<std::uint32_t>(old));
  };
  auto first_free = [&](std::size_t q) {
    std::size_t r = q;
    while (true) {
      while (r + 256 >= trie_.size()) grow();
      if (free_after[r] == r && trie_[r].check == -1) break;
      r = free_after[r] == r ? r + 1 : free_after[r];
    }
    for (std::size_t k = q; k < r;) {  // path compression
      const std::size_t next = free_after[k] > k ? free_after[k] : k + 1;
      free_after[k] = static_cast<std::uint32_t>(r);
      k = next;
    }
    return r;
  };
  std::vector<std::pair<std::uint32_t, std::int32_t>> queue = {{0, 0}};  // (build node, position)
  for (std::size_t head = 0; head < queue.size(); ++head) {
    const auto [node, pos] = queue[head];
    trie_[static_cast<std::size_t>(pos)].id = build[node].id;
    if (build[node].id >= 0) trie_[static_cast<std::size_t>(pos)].score = pieces_[static_cast<std::size_t>(build[node].id)].second;
    auto& children = build[node].children;
    if (children.empty()) continue;
    std::sort(children.begin(), children.end());
    std::size_t base = 0;
    for (std::size_t q = first_free(children[0].first + 1);; q = first_free(q + 1)) {
      base = q - children[0].first;
      const bool fits = std::all_of(children.begin(), children.end(),
                                    [&](const auto& c) { return trie_[base + c.first].check == -1; });
      if (fits) break;
    }
    trie_[static_cast<std::size_t>(pos)].base = static_cast<std::int32_t>(base);
    for (const auto& [byte, child] : children) {
      trie_[base + byte].check = pos;
      free_after[base + byte] = static_cast<std::uint32_t>(base + byte + 1);
      queue.emplace_back(child, static_cast<std::int32_t>(base + byte));
    }
    children = {};
  }
  while (!trie_.empty() && trie_.back().check == -1) trie_.pop_back();
  trie_.resize(trie_.size() + 256, Unit{});  // every base + byte stays in range
  unk_score_ = min_score - kUnkPenalty;
  byte_ids_.assign(256, -1);
  for (unsigned b = 0; b < 256; ++b) byte_ids_[b] = ids_.find(byte_piece(static_cast<unsigned char>(b)));
}

void Unigram::for_each_token(FunctionRef<void(std::string_view, std::int32_t)> f) const {
  for (std::size_t id = 0; id < pieces_.size(); ++id) f(pieces_[id].first, static_cast<std::int32_t>(id));
}

void Unigram::encode(std::string_view word, std::vector<Piece>& out) const {
  struct Best {
    double score;
    std::int32_t start;  // -1: no path ends here yet
    std::int32_t id;
  };
  thread_local std::vector<Best> best;
  const std::size_t size = word.size();
  best.assign(size + 1, Best{0.0, -1, 0});
  const auto* bytes = reinterpret_cast<const unsigned char*>(word.data());
  auto offer = [&](std::size_t end, double score, std::size_t start, std::int32_t id) {
    Best& b = best[end];
    if (b.start < 0 || score > b.score) b = Best{score, static_cast<std::int32_t>(start), id};
  };
  for (std::size_t start = 0; start < size;) {
    const double here = best[start].score;
    const std::size_t char_len = std::min(utf8_length(bytes[start]), size - start);
    bool single = false;
    std::int32_t node = 0;
    for (std::size_t k = start; k < size; ++k) {
      const std::int32_t next = trie_[static_cast<std::size_t>(node)].base + bytes[k];
      if (trie_[static_cast<std::size_t>(next)].check != node) break;
      node = next;
      const Unit& unit = trie_[static_cast<std::size_t>(node)];
      if (unit.id < 0) continue;
      offer(k + 1, unit.score + here, start, unit.id);
      if (k + 1 - start == char_len) single = true;
    }
    if (!single) {
      if (!unk_id_) fail("Unigram: the text has a char no piece covers and the model has no unk_id");
      offer(start + char_len, unk_score_ + here, start, *unk_id_);
    }
    start += char_len;
  }
  // Back from the end; consecutive unknown pieces fuse into one (id -1: look its text up).
  const std::size_t first_out = out.size();
  std::size_t end = size;
  std::size_t unk_end = 0;
  bool in_unk = false;
  while (end > 0) {
    const Best& b = best[end];
    const auto start = static_cast<std::size_t>(b.start);
    if (unk_id_ && b.id == *unk_id_) {
      if (!in_unk) unk_end = end;
      in_unk = true;
    } else {
      if (in_unk) out.push_back(Piece{-1, static_cast<std::uint32_t>(end), static_cast<std::uint32_t>(unk_end)});
      in_unk = false;
      out.push_back(Piece{b.id, static_cast<std::uint32_t>(start), static_cast<std::uint32_t>(end)});
    }
    end = start;
  }
  if (in_unk) out.push_back(Piece{-1, 0, static_cast<std::uint32_t>(unk_end)});
  std::reverse(out.begin() + static_cast<std::ptrdiff_t>(first_out), out.end());
}

void Unigram::tokenize(const char32_t* chars, const std::int32_t* orig, std::size_t n, std::vector<Token>& out) const {
  if (n == 0) return;
  thread_local std::string key;
  utf8_key(chars, n, key);
  tokenize_cached(serial_, key, orig, out, [&](EmitToken emit_range) {
    thread_local WordBytes word;
    thread_local std::vector<Piece> pieces;
    word.assign(chars, n);
    pieces.clear();
    encode(key, pieces);
    // Pieces end on char boundaries; they are looked up by their text, as tokenizers does, and
    // unknown text falls back to bytes or unk.
    auto emit = [&](std::int32_t id, const Piece& p) {
      emit_range(id, word.char_of[p.begin], word.char_of[p.end - 1] + 1);
    };
    for (const Piece& p : pieces) {
      const std::string_view text = std::string_view(key).substr(p.begin, p.end - p.begin);
      // A piece the trie found carries the id its text maps to; fused unknowns need the lookup.
      const std::int32_t id = p.id >= 0 ? p.id : ids_.find(text);
      if (id >= 0) {
        emit(id, p);
        continue;
      }
      if (byte_fallback_ && std::all_of(text.begin(), text.end(),
                                        [&](char c) { return byte_ids_[static_cast<unsigned char>(c)] >= 0; })) {
        for (char c : text) emit(byte_ids_[static_cast<unsigned char>(c)], p);
        continue;
      }
      if (!unk_id_) fail("Unigram: the text has a piece outside the vocabulary and the model has no unk_id");
      emit(*unk_id_, p);
    }
  });
}

}  // namespace tuneserve::tok
