// Added-token matching (see added_tokens.h).
#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace tuneserve::tok {

void AddedMatcher::add(const AddedToken& token) {
  if (token.pattern.empty()) return;
  by_first_[token.pattern[0]].push_back(&token);
  if (token.pattern[0] < 128) ascii_first_[token.pattern[0]] = true;
}

void AddedMatcher::finish() {
  for (auto& [first, list] : by_first_)
    std::stable_sort(list.begin(), list.end(),
                     [](const AddedToken* a, const AddedToken* b) { return a->pattern.size() > b->pattern.size(); });
}

void AddedMatcher::split(const char32_t* chars, std::int32_t begin, std::int32_t end, std::vector<Split>& out) const {
  std::int32_t start_offset = begin;
  std::int32_t pos = begin;
  while (pos < end) {
    const char32_t c = chars[pos];
    if (c < 128 && !ascii_first_[c]) {
      ++pos;
      continue;
    }
    const auto candidates = by_first_.find(c);
    if (candidates == by_first_.end()) {
      ++pos;
      continue;
    }
    const AddedToken* match = nullptr;
    for (const AddedToken* t : candidates->second) {
      const auto len = static_cast<std::int32_t>(t->pattern.size());
      if (len <= end - pos && std::equal(t->pattern.begin(), t->pattern.end(), chars + pos)) {
        match = t;
        break;  // longest first
      }
    }
    if (!match) {
      ++pos;
      continue;
    }
    std::int32_t start = pos;
    std::int32_t stop = pos + static_cast<std::int32_t>(match->pattern.size());
    pos = stop;
    if (match->single_word) {
      const bool start_space = start == begin || !(char_flags(chars[start - 1]) & kWord);
      const bool stop_space = stop == end || !(char_flags(chars[stop]) & kWord);
      if (!start_space || !stop_space) continue;
    }
    if (match->lstrip) {
      std::int32_t s = start;
      while (s > begin && (char_flags(chars[s - 1]) & kWhitespace)) --s;
      start = std::max(s, start_offset);
    }
    if (match->rstrip) {
      while (stop < end && (char_flags(chars[stop]) & kWhitespace)) ++stop;
      pos = stop;
    }
    if (start_offset < start) out.push_back(Split{start_offset, start, -1});
    out.push_back(Split{start, stop, match->id});
    start_offset = stop;
  }
  if (start_offset < end) out.push_back(Split{start_offset, end, -1});
}

}  // namespace tuneserve::tok
