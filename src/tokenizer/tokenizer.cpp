// Tokenizer: loading (tokenizer.json or vocab.txt + configs) and the encode pipeline
// added tokens -> BertNormalizer -> BertPreTokenizer -> WordPiece -> truncation -> template -> padding.
//
// Legend: n code points of a text, m normalized code points, T tokens, B batch.
#include "tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <unordered_map>

#include "core/error.h"
#include "core/json.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/wordpiece.h"

namespace tuneserve {

using tok::Token;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct AddedToken {
  std::string content;
  std::u32string pattern;  // what is matched: content, normalized when `normalized`
  std::int32_t id = -1;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

// One piece of a split text: an added token (id >= 0) or plain text (id -1), [begin, end) chars.
struct Split {
  std::int32_t begin, end, id;
};

// Finds added tokens in a code point string the way tokenizers' AddedVocabulary::find_matches
// does: leftmost-longest, non-overlapping, then single_word / lstrip / rstrip.
class AddedMatcher {
 public:
  void add(const AddedToken& token, std::int32_t index) {
    if (token.pattern.empty()) return;
    auto& list = by_first_[token.pattern[0]];
    list.push_back(index);
    patterns_.resize(std::max<std::size_t>(patterns_.size(), index + 1));
    patterns_[index] = &token;
    if (token.pattern[0] < 128) ascii_first_[token.pattern[0]] = true;
  }
  void finish() {
    for (auto& [first, list] : by_first_)
      std::stable_sort(list.begin(), list.end(), [&](std::int32_t a, std::int32_t b) {
        return patterns_[a]->pattern.size() > patterns_[b]->pattern.size();
      });
  }
  bool empty() const { return by_first_.empty(); }

  // Splits chars[begin, end) into `out`; plain pieces keep id -1.
  void split(const char32_t* chars, std::int32_t begin, std::int32_t end, std::vector<Split>& out) const {
    std::int32_t start_offset = begin;
    std::int32_t pos = begin;
    while (pos < end) {
      const char32_t c = chars[pos];
      if (c < 128 ? !ascii_first_[c] : by_first_.find(c) == by_first_.end()) {
        ++pos;
        continue;
      }
      const AddedToken* match = nullptr;
      for (std::int32_t index : by_first_.at(c)) {
        const AddedToken* t = patterns_[index];
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
        const bool start_space = start == begin || !(tok::char_flags(chars[start - 1]) & tok::kWord);
        const bool stop_space = stop == end || !(tok::char_flags(chars[stop]) & tok::kWord);
        if (!start_space || !stop_space) continue;
      }
      if (match->lstrip) {
        std::int32_t s = start;
        while (s > begin && (tok::char_flags(chars[s - 1]) & tok::kWhitespace)) --s;
        start = std::max(s, start_offset);
      }
      if (match->rstrip) {
        while (stop < end && (tok::char_flags(chars[stop]) & tok::kWhitespace)) ++stop;
        pos = stop;
      }
      if (start_offset < start) out.push_back(Split{start_offset, start, -1});
      out.push_back(Split{start, stop, match->id});
      start_offset = stop;
    }
    if (start_offset < end) out.push_back(Split{start_offset, end, -1});
  }

 private:
  std::unordered_map<char32_t, std::vector<std::int32_t>> by_first_;
  std::vector<const AddedToken*> patterns_;
  bool ascii_first_[128] = {};
};

struct TemplatePiece {
  enum Kind { kSpecial, kSequenceA, kSequenceB } kind;
  std::vector<std::int32_t> ids;  // kSpecial only
  std::int32_t type_id = 0;
};

// Per-thread buffers so that encoding allocates only its output once warm.
struct Workspace {
  std::vector<char32_t> cps, chars;
  std::vector<std::int32_t> orig;
  std::vector<Split> splits, sub_splits;
  std::string bytes;
  std::vector<std::uint32_t> byte_at;
};

Workspace& workspace() {
  thread_local Workspace ws;
  // One huge text should not pin its buffers on every server thread for good.
  if (ws.cps.capacity() > (std::size_t{1} << 22)) ws = Workspace{};
  return ws;
}

// tokenizer.json of a large vocabulary runs to tens of MB.
json read_json(const fs::path& path) { return read_json_file(path.string(), {kJsonLargeFileBytes}); }

// A token name in tokenizer_config.json / special_tokens_map.json: "x" or {"content": "x", ...}.
std::optional<std::string> token_name(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string())
    return value["content"].get<std::string>();
  return std::nullopt;
}

bool get_bool(const json& obj, const char* key, bool fallback, const std::string& where) {
  if (!obj.contains(key) || obj[key].is_null()) return fallback;
  if (!obj[key].is_boolean()) fail("{}: field \"{}\" must be true or false", where, key);
  return obj[key].get<bool>();
}

std::int32_t get_id(const json& value, const std::string& where) {
  if (!value.is_number_integer()) fail("{}: must be an integer id", where);
  const auto id = value.get<std::int64_t>();
  if (id < 0 || id > 0x7FFFFFFF) fail("{}: id {} out of range", where, id);
  return static_cast<std::int32_t>(id);
}

}  // namespace

struct Tokenizer::Impl {
  bool has_normalizer = false;
  tok::NormalizerConfig normalizer;
  bool has_pre_tokenizer = false;
  tok::WordPiece model;
  std::vector<AddedToken> added;
  AddedMatcher raw_matcher, normalized_matcher;
  tok::FlatVocab added_ids;  // content -> id of added tokens (looked up before the model)
  std::vector<std::string> id_to_token;
  bool has_post_processor = false;
  std::vector<TemplatePiece> single, pair;
  SpecialTokenIds special;
  std::int32_t pad_type_id = 0;
  std::optional<std::size_t> model_max_length;

  std::optional<std::int32_t> lookup(std::string_view token) const {
    std::int32_t id = added_ids.find(token);
    if (id < 0) id = model.find(token);
    if (id < 0) return std::nullopt;
    return id;
  }

  // text -> tokens (before truncation and template), offsets in code points of `text`.
  void tokenize(std::string_view text, std::vector<Token>& out) const {
    Workspace& ws = workspace();
    tok::utf8_decode(text, ws.cps);
    const auto n = static_cast<std::int32_t>(ws.cps.size());
    ws.splits.clear();
    if (raw_matcher.empty()) ws.splits.push_back(Split{0, n, -1});
    else raw_matcher.split(ws.cps.data(), 0, n, ws.splits);
    for (const Split& split : ws.splits) {
      if (split.id >= 0) {
        out.push_back(Token{split.id, split.begin, split.end});
        continue;
      }
      ws.chars.clear();
      ws.orig.clear();
      if (has_normalizer) {
        tok::bert_normalize(normalizer, ws.cps.data(), split.begin, split.end, ws.chars, ws.orig);
      } else {
        for (std::int32_t i = split.begin; i < split.end; ++i) {
          ws.chars.push_back(ws.cps[i]);
          ws.orig.push_back(i);
        }
      }
      const auto m = static_cast<std::int32_t>(ws.chars.size());
      if (normalized_matcher.empty()) {
        words(ws, 0, m, out);
        continue;
      }
      ws.sub_splits.clear();
      normalized_matcher.split(ws.chars.data(), 0, m, ws.sub_splits);
      for (const Split& sub : ws.sub_splits) {
        if (sub.id >= 0) out.push_back(Token{sub.id, ws.orig[sub.begin], ws.orig[sub.end - 1] + 1});
        else words(ws, sub.begin, sub.end, out);
      }
    }
  }

  void words(Workspace& ws, std::int32_t begin, std::int32_t end, std::vector<Token>& out) const {
    auto word = [&](std::size_t first, std::size_t last) {
      model.tokenize(ws.chars.data() + first, ws.orig.data() + first, last - first, ws.bytes,
                     ws.byte_at, out);
    };
    if (has_pre_tokenizer) tok::bert_pre_tokenize(ws.chars.data(), begin, end, word);
    else if (begin < end) word(begin, end);
  }

  std::size_t added_count(bool is_pair) const {
    if (!has_post_processor) return 0;
    std::size_t count = 0;
    for (const TemplatePiece& piece : is_pair ? pair : single)
      if (piece.kind == TemplatePiece::kSpecial) count += piece.ids.size();
    return count;
  }

  std::size_t resolve_max_length(const EncodeOptions& options) const {
    if (options.max_length > 0) return options.max_length;
    if (model_max_length) return *model_max_length;
    fail("max_length is not set and the tokenizer has no model_max_length in tokenizer_config.json");
  }
};

namespace {

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

std::vector<TemplatePiece> bert_template(std::int32_t cls, std::int32_t sep, bool pair) {
  std::vector<TemplatePiece> t = {{TemplatePiece::kSpecial, {cls}, 0},
                                  {TemplatePiece::kSequenceA, {}, 0},
                                  {TemplatePiece::kSpecial, {sep}, 0}};
  if (pair) {
    t.push_back({TemplatePiece::kSequenceB, {}, 1});
    t.push_back({TemplatePiece::kSpecial, {sep}, 1});
  }
  return t;
}

// Names of the special tokens, from special_tokens_map.json, then tokenizer_config.json, then
// the BertTokenizer defaults (the class both files name for this model family).
struct SpecialNames {
  std::string pad = "[PAD]", cls = "[CLS]", sep = "[SEP]", unk = "[UNK]", mask = "[MASK]";
};

struct DirConfig {
  json config = json::object();  // tokenizer_config.json or {}
  SpecialNames names;
  std::optional<std::size_t> model_max_length;
};

DirConfig read_dir_config(const fs::path& dir) {
  DirConfig out;
  const fs::path config_path = dir / "tokenizer_config.json";
  if (fs::exists(config_path)) {
    out.config = read_json(config_path);
    if (!out.config.is_object()) fail("{}: expected a JSON object", config_path.string());
  }
  const fs::path map_path = dir / "special_tokens_map.json";
  json map = json::object();
  if (fs::exists(map_path)) {
    map = read_json(map_path);
    if (!map.is_object()) fail("{}: expected a JSON object", map_path.string());
  }
  auto resolve = [&](const char* key, std::string& name) {
    for (const json* source : {&map, &out.config})
      if (source->contains(key))
        if (auto value = token_name((*source)[key])) {
          name = *value;
          return;
        }
  };
  resolve("pad_token", out.names.pad);
  resolve("cls_token", out.names.cls);
  resolve("sep_token", out.names.sep);
  resolve("unk_token", out.names.unk);
  resolve("mask_token", out.names.mask);
  if (out.config.contains("model_max_length") && out.config["model_max_length"].is_number()) {
    const double v = out.config["model_max_length"].get<double>();
    // transformers writes int(1e30) when a model has no limit.
    if (v >= 1 && v < 1e9) out.model_max_length = static_cast<std::size_t>(v);
  }
  return out;
}

AddedToken parse_added_token(const json& t, const std::string& where) {
  if (!t.is_object()) fail("{}: expected an object", where);
  AddedToken token;
  if (!t.contains("content") || !t["content"].is_string()) fail("{}: missing string \"content\"", where);
  token.content = t["content"].get<std::string>();
  token.single_word = get_bool(t, "single_word", false, where);
  token.lstrip = get_bool(t, "lstrip", false, where);
  token.rstrip = get_bool(t, "rstrip", false, where);
  token.special = get_bool(t, "special", false, where);
  token.normalized = get_bool(t, "normalized", !token.special, where);
  return token;
}

}  // namespace

// Finishes loading: added-token matchers, id -> token table, special ids.
static void finish(Tokenizer::Impl& impl, const std::vector<std::pair<std::string, std::int32_t>>& vocab,
                   const DirConfig& dir_config, const std::string& where) {
  std::int32_t max_id = -1;
  for (const auto& [token, id] : vocab) max_id = std::max(max_id, id);
  for (AddedToken& token : impl.added) max_id = std::max(max_id, token.id);
  // Ids index the id -> token table; a stray huge id would make it huge.
  const std::size_t entries = vocab.size() + impl.added.size();
  if (static_cast<std::size_t>(max_id) >= 2 * entries + 1024)
    fail("{}: token id {} is far beyond the {} vocabulary entries", where, max_id, entries);
  impl.id_to_token.assign(static_cast<std::size_t>(max_id + 1), std::string());
  for (const auto& [token, id] : vocab) impl.id_to_token[id] = token;
  for (std::size_t i = 0; i < impl.added.size(); ++i) {
    AddedToken& token = impl.added[i];
    impl.id_to_token[token.id] = token.content;
    impl.added_ids.insert(token.content, token.id);
    token.pattern = tok::utf8_to_u32(token.content);
    if (token.normalized && impl.has_normalizer) {
      // Matched against normalized text, so the pattern is normalized the same way.
      std::vector<char32_t> chars;
      std::vector<std::int32_t> orig;
      tok::bert_normalize(impl.normalizer, token.pattern.data(), 0,
                          static_cast<std::int32_t>(token.pattern.size()), chars, orig);
      token.pattern.assign(chars.begin(), chars.end());
    }
  }
  for (std::size_t i = 0; i < impl.added.size(); ++i)
    (impl.added[i].normalized ? impl.normalized_matcher : impl.raw_matcher)
        .add(impl.added[i], static_cast<std::int32_t>(i));
  impl.raw_matcher.finish();
  impl.normalized_matcher.finish();

  const SpecialNames& names = dir_config.names;
  impl.special.pad = impl.special.pad ? impl.special.pad : impl.lookup(names.pad);
  impl.special.cls = impl.lookup(names.cls);
  impl.special.sep = impl.lookup(names.sep);
  impl.special.unk = impl.model.unk_id();
  impl.special.mask = impl.lookup(names.mask);
  impl.model_max_length = dir_config.model_max_length;
}

Tokenizer Tokenizer::from_tokenizer_json(const std::string& path_string) {
  const fs::path path(path_string);
  const json root = read_json(path);
  const std::string where = path.string();
  if (!root.is_object()) fail("{}: expected a JSON object", where);
  auto impl = std::make_shared<Impl>();
  const DirConfig dir_config = read_dir_config(path.parent_path());

  // model
  if (!root.contains("model") || !root["model"].is_object()) fail("{}: missing \"model\" object", where);
  const json& model = root["model"];
  const std::string type = model.value("type", std::string("WordPiece"));
  if (type != "WordPiece")
    fail("{}: model.type \"{}\" is not supported (only WordPiece, the BERT family's model)", where, type);
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail("{}: model.vocab must be an object", where);
  std::vector<std::pair<std::string, std::int32_t>> vocab;
  vocab.reserve(model["vocab"].size());
  for (const auto& [token, id] : model["vocab"].items())
    vocab.emplace_back(token, get_id(id, fmt::format("{}: model.vocab[\"{}\"]", where, token)));
  const std::string unk = model.contains("unk_token") && model["unk_token"].is_string()
                              ? model["unk_token"].get<std::string>() : std::string("[UNK]");
  const std::string prefix = model.contains("continuing_subword_prefix") && model["continuing_subword_prefix"].is_string()
                                 ? model["continuing_subword_prefix"].get<std::string>() : std::string("##");
  std::size_t max_chars = 100;
  if (model.contains("max_input_chars_per_word") && !model["max_input_chars_per_word"].is_null()) {
    if (!model["max_input_chars_per_word"].is_number_unsigned())
      fail("{}: model.max_input_chars_per_word must be a non-negative integer", where);
    max_chars = model["max_input_chars_per_word"].get<std::size_t>();
  }
  try {
    impl->model.build(vocab, unk, prefix, max_chars);
  } catch (const Error& e) {
    fail("{}: {}", where, e.what());
  }

  // normalizer
  if (root.contains("normalizer") && !root["normalizer"].is_null()) {
    const json& n = root["normalizer"];
    const std::string ntype = n.value("type", std::string());
    if (ntype != "BertNormalizer")
      fail("{}: normalizer.type \"{}\" is not supported (only BertNormalizer)", where, ntype);
    impl->has_normalizer = true;
    const std::string nwhere = where + ": normalizer";
    impl->normalizer.clean_text = get_bool(n, "clean_text", true, nwhere);
    impl->normalizer.handle_chinese_chars = get_bool(n, "handle_chinese_chars", true, nwhere);
    impl->normalizer.lowercase = get_bool(n, "lowercase", true, nwhere);
    // strip_accents null follows lowercase (tokenizers' BertNormalizer).
    impl->normalizer.strip_accents = get_bool(n, "strip_accents", impl->normalizer.lowercase, nwhere);
  }

  // pre_tokenizer
  if (root.contains("pre_tokenizer") && !root["pre_tokenizer"].is_null()) {
    const std::string ptype = root["pre_tokenizer"].value("type", std::string());
    if (ptype != "BertPreTokenizer")
      fail("{}: pre_tokenizer.type \"{}\" is not supported (only BertPreTokenizer)", where, ptype);
    impl->has_pre_tokenizer = true;
  }

  // added tokens
  if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
    if (!root["added_tokens"].is_array()) fail("{}: added_tokens must be an array", where);
    std::size_t i = 0;
    for (const json& t : root["added_tokens"]) {
      const std::string twhere = fmt::format("{}: added_tokens[{}]", where, i++);
      AddedToken token = parse_added_token(t, twhere);
      if (!t.contains("id")) fail("{}: missing \"id\"", twhere);
      token.id = get_id(t["id"], twhere + ".id");
      impl->added.push_back(std::move(token));
    }
  }

  // post_processor
  if (root.contains("post_processor") && !root["post_processor"].is_null()) {
    const json& p = root["post_processor"];
    const std::string ptype = p.value("type", std::string());
    const std::string pwhere = where + ": post_processor";
    impl->has_post_processor = true;
    if (ptype == "TemplateProcessing") {
      std::unordered_map<std::string, std::vector<std::int32_t>> specials;
      if (p.contains("special_tokens") && p["special_tokens"].is_object()) {
        for (const auto& [name, value] : p["special_tokens"].items()) {
          if (!value.contains("ids") || !value["ids"].is_array())
            fail("{}.special_tokens[\"{}\"]: missing \"ids\" array", pwhere, name);
          std::vector<std::int32_t> ids;
          for (const json& id : value["ids"]) ids.push_back(get_id(id, pwhere + ".special_tokens[\"" + name + "\"]"));
          specials[name] = ids;
        }
      }
      auto parse_template = [&](const char* key) {
        std::vector<TemplatePiece> pieces;
        if (!p.contains(key) || !p[key].is_array()) fail("{}: missing \"{}\" template", pwhere, key);
        for (const json& item : p[key]) {
          TemplatePiece piece{TemplatePiece::kSpecial, {}, 0};
          if (item.contains("SpecialToken")) {
            const json& s = item["SpecialToken"];
            const std::string name = s.value("id", std::string());
            auto it = specials.find(name);
            if (it == specials.end())
              fail("{}.{}: special token \"{}\" has no entry in special_tokens", pwhere, key, name);
            piece.ids = it->second;
            piece.type_id = s.value("type_id", 0);
          } else if (item.contains("Sequence")) {
            const json& s = item["Sequence"];
            const std::string id = s.value("id", std::string("A"));
            if (id != "A" && id != "B") fail("{}.{}: sequence id \"{}\" must be A or B", pwhere, key, id);
            piece.kind = id == "A" ? TemplatePiece::kSequenceA : TemplatePiece::kSequenceB;
            piece.type_id = s.value("type_id", 0);
          } else {
            fail("{}.{}: items must be SpecialToken or Sequence", pwhere, key);
          }
          pieces.push_back(std::move(piece));
        }
        return pieces;
      };
      impl->single = parse_template("single");
      impl->pair = parse_template("pair");
    } else if (ptype == "BertProcessing") {
      auto pair_id = [&](const char* key) {
        if (!p.contains(key) || !p[key].is_array() || p[key].size() != 2)
          fail("{}: \"{}\" must be [token, id]", pwhere, key);
        return get_id(p[key][1], pwhere + "." + key);
      };
      const std::int32_t cls = pair_id("cls"), sep = pair_id("sep");
      impl->single = bert_template(cls, sep, false);
      impl->pair = bert_template(cls, sep, true);
    } else {
      fail("{}: post_processor.type \"{}\" is not supported (TemplateProcessing or BertProcessing)", where, ptype);
    }
  }

  // padding section (pad id / type id) when the file sets one
  if (root.contains("padding") && root["padding"].is_object()) {
    const json& pad = root["padding"];
    if (pad.contains("pad_id")) impl->special.pad = get_id(pad["pad_id"], where + ": padding.pad_id");
    if (pad.contains("pad_type_id")) impl->pad_type_id = get_id(pad["pad_type_id"], where + ": padding.pad_type_id");
  }

  finish(*impl, vocab, dir_config, where);
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_vocab_txt(const std::string& vocab_path) {
  const fs::path path(vocab_path);
  const std::string where = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", where);
  std::vector<std::pair<std::string, std::int32_t>> vocab;
  std::string line;
  std::int32_t index = 0;
  while (std::getline(in, line)) vocab.emplace_back(line, index++);  // transformers strips only "\n"
  if (vocab.empty()) fail("{}: empty vocabulary", where);

  auto impl = std::make_shared<Impl>();
  const DirConfig dir_config = read_dir_config(path.parent_path());
  const json& config = dir_config.config;
  const std::string cwhere = (path.parent_path() / "tokenizer_config.json").string();
  // BertTokenizer defaults: do_lower_case true, tokenize_chinese_chars true, strip_accents None.
  impl->has_normalizer = true;
  impl->has_pre_tokenizer = true;
  impl->normalizer.lowercase = get_bool(config, "do_lower_case", true, cwhere);
  impl->normalizer.handle_chinese_chars = get_bool(config, "tokenize_chinese_chars", true, cwhere);
  impl->normalizer.strip_accents = get_bool(config, "strip_accents", impl->normalizer.lowercase, cwhere);
  try {
    impl->model.build(vocab, dir_config.names.unk, "##", 100);
  } catch (const Error& e) {
    fail("{}: {}", where, e.what());
  }

  if (config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object()) {
    for (const auto& [key, value] : config["added_tokens_decoder"].items()) {
      const std::string twhere = fmt::format("{}: added_tokens_decoder[\"{}\"]", cwhere, key);
      AddedToken token = parse_added_token(value, twhere);
      try {
        token.id = static_cast<std::int32_t>(std::stol(key));
      } catch (const std::exception&) {
        fail("{}: key is not an id", twhere);
      }
      if (token.id < 0) fail("{}: negative id", twhere);
      impl->added.push_back(std::move(token));
    }
  } else {
    // The special tokens become non-normalized special added tokens, in transformers' order.
    const SpecialNames& names = dir_config.names;
    auto next_id = static_cast<std::int32_t>(vocab.size());
    for (const std::string* name : {&names.unk, &names.sep, &names.pad, &names.cls, &names.mask}) {
      AddedToken token;
      token.content = *name;
      token.special = true;
      const std::int32_t id = impl->model.find(*name);
      token.id = id >= 0 ? id : next_id++;
      impl->added.push_back(std::move(token));
    }
  }
  std::int32_t cls = -1, sep = -1;
  for (const AddedToken& t : impl->added) {
    if (t.content == dir_config.names.cls) cls = t.id;
    if (t.content == dir_config.names.sep) sep = t.id;
  }
  if (cls < 0) cls = impl->model.find(dir_config.names.cls);
  if (sep < 0) sep = impl->model.find(dir_config.names.sep);
  if (cls < 0 || sep < 0)
    fail("{}: the classifier/separator tokens \"{}\" / \"{}\" are not in the vocabulary", where,
         dir_config.names.cls, dir_config.names.sep);
  impl->has_post_processor = true;
  impl->single = bert_template(cls, sep, false);
  impl->pair = bert_template(cls, sep, true);

  finish(*impl, vocab, dir_config, where);
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_dir(const std::string& dir_string) {
  const fs::path dir(dir_string);
  if (!fs::is_directory(dir)) fail("tokenizer directory {} does not exist", dir.string());
  if (fs::exists(dir / "tokenizer.json")) return from_tokenizer_json((dir / "tokenizer.json").string());
  if (fs::exists(dir / "vocab.txt")) return from_vocab_txt((dir / "vocab.txt").string());
  fail("{}: no tokenizer.json or vocab.txt in the directory", dir.string());
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

  Encoding e;
  reserve_encoding(e, a.size() + b.size() + n_added);
  auto push_sequence = [&](const std::vector<Token>& tokens, std::int32_t type_id, std::int32_t sequence) {
    for (const Token& t : tokens) push_token(e, t.id, type_id, {t.begin, t.end}, 0, sequence);
  };
  if (options.add_special_tokens && impl.has_post_processor) {
    for (const TemplatePiece& piece : is_pair ? impl.pair : impl.single) {
      switch (piece.kind) {
        case TemplatePiece::kSpecial:
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

std::optional<std::int32_t> Tokenizer::token_to_id(std::string_view token) const {
  return impl_->lookup(token);
}

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
bool Tokenizer::lowercase() const { return impl_->has_normalizer && impl_->normalizer.lowercase; }

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
