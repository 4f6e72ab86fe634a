// Tokenizer: the encode pipeline
// added tokens -> normalizer -> added (normalized) tokens -> pre-tokenizer -> model -> truncation
// -> post-processor (offset trimming, template) -> padding. Loading is in load.cpp.
//
// Legend: n code points of a text, m normalized code points, T tokens, B batch.
#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace tuneserve {

using tok::Split;
using tok::TemplatePiece;
using tok::Token;

namespace {

// Per-thread buffers so that encoding allocates only its output once warm.
struct Workspace {
  std::vector<char32_t> cps;
  std::vector<std::int32_t> index;  // 0 .. n-1: the alignment of unnormalized text
  tok::Text normalized;
  std::vector<Split> splits, sub_splits;
};

Workspace& workspace() {
  thread_local Workspace ws;
  // One huge text should not pin its buffers on every server thread for good.
  if (ws.cps.capacity() > (std::size_t{1} << 22)) ws = Workspace{};
  return ws;
}

void truncate(std::vector<Token>& a, std::vector<Token>* b, std::size_t max_length, Truncation strategy) {
  const std::size_t total = a.size() + (b ? b->size() : 0);
  if (strategy == Truncation::None || total <= max_length) return;
  if (max_length == 0) {
    a.clear();
    if (b) b->clear();
    return;
  }
  if (strategy == Truncation::LongestFirst) {
    if (!b) {
      a.resize(max_length);
      return;
    }
    // tokenizers' longest_first: keep the shorter whole if it fits in half, split evenly otherwise.
    std::size_t n1 = a.size(), n2 = b->size();
    const bool swapped = n1 > n2;
    if (swapped) std::swap(n1, n2);
    n2 = n1 > max_length ? n1 : std::max(n1, max_length - n1);
    if (n1 + n2 > max_length) {
      n1 = max_length / 2;
      n2 = n1 + max_length % 2;
    }
    if (swapped) std::swap(n1, n2);
    a.resize(std::min(a.size(), n1));
    b->resize(std::min(b->size(), n2));
    return;
  }
  const bool first = strategy == Truncation::OnlyFirst;
  if (!first && !b) fail("truncation only_second needs a text pair");
  std::vector<Token>& target = first ? a : *b;
  const std::size_t to_remove = total - max_length;
  if (target.size() <= to_remove)
    fail("truncation {}: the {} sequence has {} tokens, too few to remove the {} over max_length",
         first ? "only_first" : "only_second", first ? "first" : "second", target.size(), to_remove);
  target.resize(target.size() - to_remove);
}

// ByteLevel's process_offsets: offsets leave out a token's leading / trailing spaces.
void trim_offsets(std::vector<Token>& tokens, const Tokenizer::Impl& impl) {
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    Token& t = tokens[i];
    const auto id = static_cast<std::size_t>(t.id);
    std::int32_t lead = id < impl.lead_spaces.size() ? impl.lead_spaces[id] : 0;
    const std::int32_t trail = id < impl.trail_spaces.size() ? impl.trail_spaces[id] : 0;
    if (lead > 0) {
      // The one space add_prefix_space put before a first token is kept.
      if ((i == 0 || t.begin == 0) && impl.post.trim_add_prefix_space && lead == 1) lead = 0;
      t.begin = std::min(t.begin + lead, t.end);
    }
    if (trail > 0 && t.end >= trail) t.end = std::max(t.end - trail, t.begin);
  }
}

void push_token(Encoding& e, std::int32_t id, std::int32_t type_id, std::pair<std::int32_t, std::int32_t> offsets,
                std::int32_t special, std::int32_t sequence) {
  e.ids.push_back(id);
  e.type_ids.push_back(type_id);
  e.attention_mask.push_back(1);
  e.special_tokens_mask.push_back(special);
  e.offsets.push_back(offsets);
  e.sequence_ids.push_back(sequence);
}

void reserve_encoding(Encoding& e, std::size_t n) {
  e.ids.reserve(n);
  e.type_ids.reserve(n);
  e.attention_mask.reserve(n);
  e.special_tokens_mask.reserve(n);
  e.offsets.reserve(n);
  e.sequence_ids.reserve(n);
}

void pad_encoding(Encoding& e, std::size_t length, std::int32_t pad_id, std::int32_t pad_type_id) {
  if (e.size() >= length) return;
  const std::size_t n = length - e.size();
  e.ids.insert(e.ids.end(), n, pad_id);
  e.type_ids.insert(e.type_ids.end(), n, pad_type_id);
  e.attention_mask.insert(e.attention_mask.end(), n, 0);
  e.special_tokens_mask.insert(e.special_tokens_mask.end(), n, 1);
  e.offsets.insert(e.offsets.end(), n, {0, 0});
  e.sequence_ids.insert(e.sequence_ids.end(), n, -1);
}

std::size_t round_up(std::size_t n, std::size_t multiple) {
  return multiple == 0 ? n : (n + multiple - 1) / multiple * multiple;
}

}  // namespace

std::optional<std::int32_t> Tokenizer::Impl::lookup(std::string_view token) const {
  std::int32_t id = added_ids.find(token);
  if (id < 0) id = model->find(token);
  if (id < 0) return std::nullopt;
  return id;
}

void Tokenizer::Impl::tokenize(std::string_view text, std::vector<Token>& out) const {
  Workspace& ws = workspace();
  tok::utf8_decode(text, ws.cps);
  const auto n = static_cast<std::int32_t>(ws.cps.size());
  if (ws.index.size() < ws.cps.size()) {
    const std::size_t old = ws.index.size();
    ws.index.resize(ws.cps.size());
    std::iota(ws.index.begin() + static_cast<std::ptrdiff_t>(old), ws.index.end(), static_cast<std::int32_t>(old));
  }
  auto words = [&](const char32_t* chars, const std::int32_t* orig, std::size_t m) {
    if (m == 0) return;
    if (pre_tokenizer)
      pre_tokenizer->split(chars, orig, m, [&](const char32_t* c, const std::int32_t* o, std::size_t k) {
        model->tokenize(c, o, k, out);
      });
    else
      model->tokenize(chars, orig, m, out);
  };
  ws.splits.clear();
  if (raw_matcher.empty()) ws.splits.push_back(Split{0, n, -1});
  else raw_matcher.split(ws.cps.data(), 0, n, ws.splits);
  for (const Split& split : ws.splits) {
    if (split.id >= 0) {
      out.push_back(Token{split.id, split.begin, split.end});
      continue;
    }
    const char32_t* chars = ws.cps.data() + split.begin;
    const std::int32_t* orig = ws.index.data() + split.begin;
    auto m = static_cast<std::size_t>(split.end - split.begin);
    if (normalizer) {
      ws.normalized.clear();
      normalizer->normalize(chars, orig, m, ws.normalized);
      chars = ws.normalized.chars.data();
      orig = ws.normalized.orig.data();
      m = ws.normalized.size();
    }
    if (normalized_matcher.empty()) {
      words(chars, orig, m);
      continue;
    }
    ws.sub_splits.clear();
    normalized_matcher.split(chars, 0, static_cast<std::int32_t>(m), ws.sub_splits);
    for (const Split& sub : ws.sub_splits) {
      if (sub.id >= 0) out.push_back(Token{sub.id, orig[sub.begin], orig[sub.end - 1] + 1});
      else words(chars + sub.begin, orig + sub.begin, static_cast<std::size_t>(sub.end - sub.begin));
    }
  }
}

std::size_t Tokenizer::Impl::added_count(bool is_pair) const {
  if (!post.has_template) return 0;
  std::size_t count = 0;
  for (const TemplatePiece& piece : is_pair ? post.pair : post.single)
    if (piece.kind == TemplatePiece::kSpecial) count += piece.ids.size();
  return count;
}

std::size_t Tokenizer::Impl::resolve_max_length(const EncodeOptions& options) const {
  if (options.max_length > 0) return options.max_length;
  if (model_max_length) return *model_max_length;
  fail("max_length is not set and the tokenizer has no model_max_length in tokenizer_config.json");
}

Encoding Tokenizer::encode(std::string_view text, std::optional<std::string_view> pair,
                           const EncodeOptions& options) const {
  const Impl& impl = *impl_;
  std::vector<Token> a, b;
  a.reserve(text.size() / 3 + 4);
  impl.tokenize(text, a);
  if (pair) {
    b.reserve(pair->size() / 3 + 4);
    impl.tokenize(*pair, b);
  }
  const bool is_pair = pair.has_value();
  const std::size_t n_added = options.add_special_tokens ? impl.added_count(is_pair) : 0;
  if (options.truncation != Truncation::None) {
    const std::size_t max_length = impl.resolve_max_length(options);
    if (max_length < n_added)
      fail("max_length {} is smaller than the {} special tokens the template adds", max_length, n_added);
    truncate(a, is_pair ? &b : nullptr, max_length - n_added, options.truncation);
  }
  if (impl.post.trim_offsets) {
    trim_offsets(a, impl);
    trim_offsets(b, impl);
  }

  Encoding e;
  reserve_encoding(e, a.size() + b.size() + n_added);
  auto push_sequence = [&](const std::vector<Token>& tokens, std::int32_t type_id, std::int32_t sequence) {
    for (const Token& t : tokens) push_token(e, t.id, type_id, {t.begin, t.end}, 0, sequence);
  };
  if (impl.post.has_template) {
    // Without special tokens the template still gives each sequence its type id (tokenizers).
    for (const TemplatePiece& piece : is_pair ? impl.post.pair : impl.post.single) {
      switch (piece.kind) {
        case TemplatePiece::kSpecial:
          if (options.add_special_tokens)
            for (std::int32_t id : piece.ids) push_token(e, id, piece.type_id, {0, 0}, 1, -1);
          break;
        case TemplatePiece::kSequenceA:
          push_sequence(a, piece.type_id, 0);
          break;
        case TemplatePiece::kSequenceB:
          if (is_pair) push_sequence(b, piece.type_id, 1);
          break;
      }
    }
  } else {
    push_sequence(a, 0, 0);
    if (is_pair) push_sequence(b, 1, 1);
  }
  if (options.padding == Padding::MaxLength)
    pad_encoding(e, round_up(impl.resolve_max_length(options), options.pad_to_multiple_of), pad_id(),
                 impl.pad_type_id);
  else if (options.padding == Padding::Longest && options.pad_to_multiple_of > 0)
    pad_encoding(e, round_up(e.size(), options.pad_to_multiple_of), pad_id(), impl.pad_type_id);
  return e;
}

std::vector<Encoding> Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                              const std::vector<std::string>& pairs,
                                              const EncodeOptions& options) const {
  if (!pairs.empty() && pairs.size() != texts.size())
    fail("encode_batch: {} texts but {} pairs", texts.size(), pairs.size());
  EncodeOptions one = options;
  if (one.padding == Padding::Longest) one.padding = Padding::None;
  std::vector<Encoding> out;
  out.reserve(texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i)
    out.push_back(pairs.empty() ? encode(texts[i], std::nullopt, one) : encode(texts[i], pairs[i], one));
  if (options.padding == Padding::Longest) pad(out, options);
  return out;
}

void Tokenizer::pad(std::vector<Encoding>& batch, const EncodeOptions& options) const {
  if (options.padding == Padding::None || batch.empty()) return;
  std::size_t length = 0;
  if (options.padding == Padding::MaxLength) {
    length = impl_->resolve_max_length(options);
  } else {
    for (const Encoding& e : batch) length = std::max(length, e.size());
  }
  length = round_up(length, options.pad_to_multiple_of);
  const std::int32_t id = pad_id();
  for (Encoding& e : batch) pad_encoding(e, length, id, impl_->pad_type_id);
}

std::optional<std::int32_t> Tokenizer::token_to_id(std::string_view token) const { return impl_->lookup(token); }

const std::string& Tokenizer::id_to_token(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= impl_->id_to_token.size())
    fail("token id {} is outside the vocabulary [0, {})", id, impl_->id_to_token.size());
  return impl_->id_to_token[static_cast<std::size_t>(id)];
}

std::size_t Tokenizer::vocab_size() const { return impl_->id_to_token.size(); }
const SpecialTokenIds& Tokenizer::special_ids() const { return impl_->special; }

static std::int32_t require(const std::optional<std::int32_t>& id, const char* role) {
  if (!id) fail("the tokenizer defines no {} token", role);
  return *id;
}
std::int32_t Tokenizer::pad_id() const { return require(impl_->special.pad, "padding"); }
std::int32_t Tokenizer::cls_id() const { return require(impl_->special.cls, "classifier ([CLS])"); }
std::int32_t Tokenizer::sep_id() const { return require(impl_->special.sep, "separator ([SEP])"); }
std::int32_t Tokenizer::unk_id() const { return require(impl_->special.unk, "unknown ([UNK])"); }
std::int32_t Tokenizer::mask_id() const { return require(impl_->special.mask, "mask ([MASK])"); }
std::int32_t Tokenizer::pad_type_id() const { return impl_->pad_type_id; }
std::optional<std::size_t> Tokenizer::model_max_length() const { return impl_->model_max_length; }
std::size_t Tokenizer::num_special_tokens(bool pair) const { return impl_->added_count(pair); }
bool Tokenizer::lowercase() const { return impl_->normalizer && impl_->normalizer->lowercases(); }
const char* Tokenizer::kind() const { return impl_->model->kind(); }

Truncation parse_truncation(std::string_view name) {
  if (name == "longest_first" || name == "true") return Truncation::LongestFirst;
  if (name == "only_first") return Truncation::OnlyFirst;
  if (name == "only_second") return Truncation::OnlySecond;
  if (name == "none" || name == "do_not_truncate" || name == "false") return Truncation::None;
  fail("unknown truncation \"{}\" (longest_first, only_first, only_second or none)", name);
}

Padding parse_padding(std::string_view name) {
  if (name == "longest" || name == "true") return Padding::Longest;
  if (name == "max_length") return Padding::MaxLength;
  if (name == "none" || name == "do_not_pad" || name == "false") return Padding::None;
  fail("unknown padding \"{}\" (longest, max_length or none)", name);
}

}  // namespace tuneserve
