// Per-thread word caches (see word_cache.h): open addressing over a power-of-two table twice the
// capacity; keys and values live in flat pools, so a warm cache allocates nothing.
#include "tokenizer/word_cache.h"

#include <array>
#include <atomic>
#include <cstring>
#include <memory>

#include "tokenizer/wordpiece.h"

namespace tuneserve::tok {
namespace {
constexpr std::size_t kSlots = 16384;  // > 1.5 x kCapacity, a power of two
static_assert(kSlots >= WordCache::kCapacity * 3 / 2 && (kSlots & (kSlots - 1)) == 0);
}  // namespace

WordCache::WordCache() : slots_(kSlots) {}

const CachedToken* WordCache::find(std::string_view key, std::uint64_t hash, std::size_t& count) const {
  if (key.size() >= kMaxKeyBytes) return nullptr;
  std::size_t i = hash & (kSlots - 1);
  while (slots_[i].used) {
    const Slot& s = slots_[i];
    if (s.hash == hash && s.key_len == key.size() && std::memcmp(keys_.data() + s.key_offset, key.data(), key.size()) == 0) {
      count = s.value_len;
      return values_.data() + s.value_offset;
    }
    i = (i + 1) & (kSlots - 1);
  }
  return nullptr;
}

void WordCache::insert(std::string_view key, std::uint64_t hash, const CachedToken* tokens, std::size_t count) {
  if (key.size() >= kMaxKeyBytes || count > 0xFFFF || size_ >= kCapacity) return;
  std::size_t i = hash & (kSlots - 1);
  while (slots_[i].used) {
    const Slot& s = slots_[i];
    if (s.hash == hash && s.key_len == key.size() && std::memcmp(keys_.data() + s.key_offset, key.data(), key.size()) == 0)
      return;
    i = (i + 1) & (kSlots - 1);
  }
  Slot& s = slots_[i];
  s.used = true;
  s.hash = hash;
  s.key_offset = static_cast<std::uint32_t>(keys_.size());
  s.key_len = static_cast<std::uint16_t>(key.size());
  s.value_offset = static_cast<std::uint32_t>(values_.size());
  s.value_len = static_cast<std::uint16_t>(count);
  keys_.append(key);
  values_.insert(values_.end(), tokens, tokens + count);
  ++size_;
}

std::uint64_t next_model_serial() {
  static std::atomic<std::uint64_t> serial{1};
  return serial.fetch_add(1);
}

WordCache& thread_word_cache(std::uint64_t serial) {
  struct Entry {
    std::uint64_t serial = 0, last_use = 0;
    std::unique_ptr<WordCache> cache;
  };
  thread_local std::array<Entry, 4> entries;
  thread_local std::uint64_t clock = 0;
  thread_local Entry* last = nullptr;
  if (last && last->serial == serial) {
    last->last_use = ++clock;
    return *last->cache;
  }
  ++clock;
  Entry* victim = &entries[0];
  for (Entry& e : entries) {
    if (e.serial == serial && e.cache) {
      e.last_use = clock;
      last = &e;
      return *e.cache;
    }
    if (e.last_use < victim->last_use) victim = &e;
  }
  victim->serial = serial;
  victim->last_use = clock;
  victim->cache = std::make_unique<WordCache>();
  last = victim;
  return *victim->cache;
}

void tokenize_cached(std::uint64_t serial, std::string_view key, const std::int32_t* orig, std::vector<Token>& out,
                     FunctionRef<void(EmitToken)> split) {
  WordCache& cache = thread_word_cache(serial);
  const std::uint64_t hash = hash_bytes(key);
  std::size_t count = 0;
  if (const CachedToken* hit = cache.find(key, hash, count)) {
    for (std::size_t k = 0; k < count; ++k) out.push_back(Token{hit[k].id, orig[hit[k].begin], orig[hit[k].end - 1] + 1});
    return;
  }
  // A cached word has under kMaxKeyBytes bytes, so its char ranges fit CachedToken's 16 bits.
  const bool cacheable = key.size() < WordCache::kMaxKeyBytes;
  thread_local std::vector<CachedToken> tokens;
  tokens.clear();
  split([&](std::int32_t id, std::uint32_t begin, std::uint32_t end) {
    out.push_back(Token{id, orig[begin], orig[end - 1] + 1});
    if (cacheable)
      tokens.push_back(CachedToken{id, static_cast<std::uint16_t>(begin), static_cast<std::uint16_t>(end)});
  });
  if (cacheable) cache.insert(key, hash, tokens.data(), tokens.size());
}

}  // namespace tuneserve::tok
