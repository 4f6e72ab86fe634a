// Tokenizer loading: tokenizer.json (WordPiece, BPE, Unigram), vocab.txt (BERT), vocab.json +
// merges.txt (GPT-2 / RoBERTa), and the directory's configuration files around them. Every
// error names the file and the field.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/config_files.h"
#include "tokenizer/sentencepiece.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"
#include "tokenizer/unigram.h"

namespace tuneserve {

using json = nlohmann::json;
namespace fs = std::filesystem;
using tok::AddedToken;
using tok::bert_template;
using tok::DirConfig;
using tok::get_bool;
using tok::get_id;
using tok::roberta_template;
using tok::TemplatePiece;

namespace {

std::string string_or(const json& obj, const char* key, const std::string& fallback, const std::string& where) {
  if (!obj.contains(key) || obj[key].is_null()) return fallback;
  if (!obj[key].is_string()) fail("{}: field \"{}\" must be a string", where, key);
  return obj[key].get<std::string>();
}

// [token, id] of a BertProcessing / RobertaProcessing "cls" or "sep".
std::int32_t pair_id(const json& p, const char* key, const std::string& where) {
  if (!p.contains(key) || !p[key].is_array() || p[key].size() != 2) fail("{}: \"{}\" must be [token, id]", where, key);
  return get_id(p[key][1], where + "." + key);
}

void parse_post_processor(const json& p, const std::string& where, tok::PostProcessor& post) {
  if (!p.is_object()) fail("{}: expected an object", where);
  const std::string type = string_or(p, "type", "", where);
  if (type == "TemplateProcessing") {
    std::unordered_map<std::string, std::vector<std::int32_t>> specials;
    if (p.contains("special_tokens") && p["special_tokens"].is_object()) {
      for (const auto& [name, value] : p["special_tokens"].items()) {
        const std::string swhere = fmt::format("{}.special_tokens[\"{}\"]", where, name);
        if (!value.is_object() || !value.contains("ids") || !value["ids"].is_array())
          fail("{}: missing \"ids\" array", swhere);
        std::vector<std::int32_t> ids;
        for (const json& id : value["ids"]) ids.push_back(get_id(id, swhere));
        specials[name] = ids;
      }
    }
    auto parse_template = [&](const char* key) {
      std::vector<TemplatePiece> pieces;
      if (!p.contains(key) || !p[key].is_array()) fail("{}: missing \"{}\" template", where, key);
      for (const json& item : p[key]) {
        TemplatePiece piece{TemplatePiece::kSpecial, {}, 0};
        const json* s = nullptr;
        if (item.is_object() && item.contains("SpecialToken")) {
          s = &item["SpecialToken"];
          const std::string name = string_or(*s, "id", "", where);
          auto it = specials.find(name);
          if (it == specials.end()) fail("{}.{}: special token \"{}\" has no entry in special_tokens", where, key, name);
          piece.ids = it->second;
        } else if (item.is_object() && item.contains("Sequence")) {
          s = &item["Sequence"];
          const std::string id = string_or(*s, "id", "A", where);
          if (id != "A" && id != "B") fail("{}.{}: sequence id \"{}\" must be A or B", where, key, id);
          piece.kind = id == "A" ? TemplatePiece::kSequenceA : TemplatePiece::kSequenceB;
        } else {
          fail("{}.{}: items must be SpecialToken or Sequence", where, key);
        }
        if (s->contains("type_id")) piece.type_id = get_id((*s)["type_id"], fmt::format("{}.{}.type_id", where, key));
        pieces.push_back(std::move(piece));
      }
      return pieces;
    };
    post.has_template = true;
    post.single = parse_template("single");
    post.pair = parse_template("pair");
  } else if (type == "BertProcessing") {
    const std::int32_t cls = pair_id(p, "cls", where), sep = pair_id(p, "sep", where);
    post.has_template = true;
    post.single = bert_template(cls, sep, false);
    post.pair = bert_template(cls, sep, true);
  } else if (type == "RobertaProcessing") {
    const std::int32_t cls = pair_id(p, "cls", where), sep = pair_id(p, "sep", where);
    post.has_template = true;
    post.single = roberta_template(cls, sep, false);
    post.pair = roberta_template(cls, sep, true);
    post.trim_offsets = get_bool(p, "trim_offsets", true, where);
    post.trim_add_prefix_space = get_bool(p, "add_prefix_space", true, where);
  } else if (type == "ByteLevel") {
    post.trim_offsets = get_bool(p, "trim_offsets", true, where);
    post.trim_add_prefix_space = get_bool(p, "add_prefix_space", true, where);
  } else if (type == "Sequence") {
    if (!p.contains("processors") || !p["processors"].is_array()) fail("{}: Sequence needs a \"processors\" array", where);
    for (std::size_t i = 0; i < p["processors"].size(); ++i)
      parse_post_processor(p["processors"][i], fmt::format("{}.processors[{}]", where, i), post);
  } else {
    fail("{}: post_processor type \"{}\" is not supported (TemplateProcessing, BertProcessing, RobertaProcessing, "
         "ByteLevel, Sequence)",
         where, type);
  }
}

std::vector<std::pair<std::string, std::int32_t>> parse_vocab_object(const json& vocab, const std::string& where) {
  if (!vocab.is_object()) fail("{}: the vocabulary must be an object {{token: id}}", where);
  std::vector<std::pair<std::string, std::int32_t>> out;
  out.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) out.emplace_back(token, get_id(id, fmt::format("{}[\"{}\"]", where, token)));
  return out;
}

// One merges.txt line / legacy tokenizer.json string "left right": exactly one space.
tok::MergeRule parse_merge_line(const std::string& line, const std::string& where) {
  const std::size_t space = line.find(' ');
  if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
    fail("{}: a merge must be two pieces separated by one space, got \"{}\"", where, line);
  return tok::MergeRule{line.substr(0, space), line.substr(space + 1), where};
}

std::unique_ptr<tok::Model> parse_model(const json& model, const std::string& where) {
  if (!model.is_object()) fail("{}: missing \"model\" object", where);
  std::string type = string_or(model, "type", "", where);
  if (type.empty()) {
    // Files without a type: tokenizers tries BPE (vocab + merges), then WordPiece, then Unigram.
    if (model.contains("merges")) type = "BPE";
    else if (model.contains("vocab") && model["vocab"].is_array()) type = "Unigram";
    else type = "WordPiece";
  }
  const std::string mwhere = fmt::format("{}: model ({})", where, type);
  if (type == "WordPiece") {
    if (!model.contains("vocab")) fail("{}: missing \"vocab\"", mwhere);
    auto vocab = parse_vocab_object(model["vocab"], mwhere + ".vocab");
    std::size_t max_chars = 100;
    if (model.contains("max_input_chars_per_word") && !model["max_input_chars_per_word"].is_null()) {
      if (!model["max_input_chars_per_word"].is_number_unsigned())
        fail("{}: max_input_chars_per_word must be a non-negative integer", mwhere);
      max_chars = model["max_input_chars_per_word"].get<std::size_t>();
    }
    try {
      return std::make_unique<tok::WordPiece>(vocab, string_or(model, "unk_token", "[UNK]", mwhere),
                                              string_or(model, "continuing_subword_prefix", "##", mwhere), max_chars);
    } catch (const Error& e) {
      fail("{}: {}", mwhere, e.what());
    }
  }
  if (type == "BPE") {
    if (!model.contains("vocab")) fail("{}: missing \"vocab\"", mwhere);
    if (!model.contains("merges") || !model["merges"].is_array()) fail("{}: missing \"merges\" array", mwhere);
    if (model.contains("dropout") && !model["dropout"].is_null() &&
        !(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0))
      fail("{}: BPE dropout is a training-time option; tuneserve encodes without it", mwhere);
    auto vocab = parse_vocab_object(model["vocab"], mwhere + ".vocab");
    std::vector<tok::MergeRule> merges;
    merges.reserve(model["merges"].size());
    for (std::size_t i = 0; i < model["merges"].size(); ++i) {
      const json& m = model["merges"][i];
      const std::string rwhere = fmt::format("{}.merges[{}]", mwhere, i);
      if (m.is_string()) merges.push_back(parse_merge_line(m.get<std::string>(), rwhere));
      else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
        merges.push_back(tok::MergeRule{m[0].get<std::string>(), m[1].get<std::string>(), rwhere});
      else fail("{}: a merge must be \"left right\" or [left, right]", rwhere);
    }
    tok::BpeOptions options;
    if (model.contains("unk_token") && !model["unk_token"].is_null()) options.unk_token = string_or(model, "unk_token", "", mwhere);
    options.continuing_subword_prefix = string_or(model, "continuing_subword_prefix", "", mwhere);
    options.end_of_word_suffix = string_or(model, "end_of_word_suffix", "", mwhere);
    options.fuse_unk = get_bool(model, "fuse_unk", false, mwhere);
    options.byte_fallback = get_bool(model, "byte_fallback", false, mwhere);
    options.ignore_merges = get_bool(model, "ignore_merges", false, mwhere);
    return std::make_unique<tok::Bpe>(std::move(vocab), merges, std::move(options));
  }
  if (type == "Unigram") {
    if (!model.contains("vocab") || !model["vocab"].is_array()) fail("{}: \"vocab\" must be an array of [piece, score]", mwhere);
    std::vector<std::pair<std::string, double>> vocab;
    vocab.reserve(model["vocab"].size());
    for (std::size_t i = 0; i < model["vocab"].size(); ++i) {
      const json& v = model["vocab"][i];
      if (!v.is_array() || v.size() != 2 || !v[0].is_string() || !v[1].is_number())
        fail("{}.vocab[{}]: must be [piece, score]", mwhere, i);
      vocab.emplace_back(v[0].get<std::string>(), v[1].get<double>());
    }
    std::optional<std::int32_t> unk;
    if (model.contains("unk_id") && !model["unk_id"].is_null()) unk = get_id(model["unk_id"], mwhere + ".unk_id");
    return std::make_unique<tok::Unigram>(std::move(vocab), unk, get_bool(model, "byte_fallback", false, mwhere), mwhere);
  }
  fail("{}: model.type \"{}\" is not supported (WordPiece, BPE, Unigram)", where, type);
}

// The first of `candidates` the vocabulary (added tokens included) has.
std::optional<std::int32_t> first_known(const Tokenizer::Impl& impl, const std::optional<std::string>& name,
                                        std::initializer_list<const char*> candidates) {
  if (name) return impl.lookup(*name);
  for (const char* c : candidates)
    if (auto id = impl.lookup(c)) return id;
  return std::nullopt;
}

// Leading / trailing chars that are 'Ġ' (ByteLevel's space) or whitespace, per token string.
void count_spaces(std::string_view token, std::uint8_t& lead, std::uint8_t& trail) {
  const std::u32string chars = tok::utf8_to_u32(token);
  auto space = [](char32_t c) { return c == tok::byte_level_char(' ') || (tok::char_flags(c) & tok::kWhitespace); };
  std::size_t l = 0, t = 0;
  while (l < chars.size() && space(chars[l])) ++l;
  while (t < chars.size() && space(chars[chars.size() - 1 - t])) ++t;
  lead = static_cast<std::uint8_t>(std::min<std::size_t>(l, 255));
  trail = static_cast<std::uint8_t>(std::min<std::size_t>(t, 255));
}

}  // namespace

namespace tok {

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

std::vector<TemplatePiece> roberta_template(std::int32_t cls, std::int32_t sep, bool pair) {
  std::vector<TemplatePiece> t = {{TemplatePiece::kSpecial, {cls}, 0},
                                  {TemplatePiece::kSequenceA, {}, 0},
                                  {TemplatePiece::kSpecial, {sep}, 0}};
  if (pair) {
    t.push_back({TemplatePiece::kSpecial, {sep}, 0});
    t.push_back({TemplatePiece::kSequenceB, {}, 0});
    t.push_back({TemplatePiece::kSpecial, {sep}, 0});
  }
  return t;
}

}  // namespace tok

// Finishes loading: id -> token table, added-token matchers, special ids, offset-trimming tables.
static void finish_tokenizer(Tokenizer::Impl& impl, const DirConfig& dir_config, const std::string& where) {
  std::int32_t max_id = -1;
  std::size_t entries = impl.added.size();
  impl.model->for_each_token([&](std::string_view, std::int32_t id) {
    max_id = std::max(max_id, id);
    ++entries;
  });
  for (const AddedToken& token : impl.added) max_id = std::max(max_id, token.id);
  // Ids index the id -> token table; a stray huge id would make it huge.
  if (max_id >= 0 && static_cast<std::size_t>(max_id) >= 2 * entries + 1024)
    fail("{}: token id {} is far beyond the {} vocabulary entries", where, max_id, entries);
  impl.id_to_token.assign(static_cast<std::size_t>(max_id + 1), std::string());
  impl.model->for_each_token([&](std::string_view token, std::int32_t id) { impl.id_to_token[id] = token; });
  for (AddedToken& token : impl.added) {
    impl.id_to_token[token.id] = token.content;
    impl.added_ids.insert(token.content, token.id);
    token.pattern = tok::utf8_to_u32(token.content);
    if (token.normalized && impl.normalizer) {
      // Matched against normalized text, so the pattern is normalized the same way.
      std::vector<std::int32_t> orig(token.pattern.size(), 0);
      tok::Text normalized;
      impl.normalizer->normalize(token.pattern.data(), orig.data(), token.pattern.size(), normalized);
      token.pattern.assign(normalized.chars.begin(), normalized.chars.end());
    }
  }
  for (const AddedToken& token : impl.added) (token.normalized ? impl.normalized_matcher : impl.raw_matcher).add(token);
  impl.raw_matcher.finish();
  impl.normalized_matcher.finish();

  const tok::SpecialNames& names = dir_config.names;
  if (!impl.special.pad) impl.special.pad = first_known(impl, names.pad, {"[PAD]", "<pad>"});
  impl.special.cls = first_known(impl, names.cls, {"[CLS]", "<s>"});
  impl.special.sep = first_known(impl, names.sep, {"[SEP]", "</s>"});
  impl.special.unk = impl.model->unk_id();
  if (!impl.special.unk) impl.special.unk = first_known(impl, names.unk, {"[UNK]", "<unk>"});
  impl.special.mask = first_known(impl, names.mask, {"[MASK]", "<mask>"});
  impl.model_max_length = dir_config.model_max_length;

  if (impl.post.trim_offsets) {
    impl.lead_spaces.assign(impl.id_to_token.size(), 0);
    impl.trail_spaces.assign(impl.id_to_token.size(), 0);
    for (std::size_t id = 0; id < impl.id_to_token.size(); ++id)
      count_spaces(impl.id_to_token[id], impl.lead_spaces[id], impl.trail_spaces[id]);
  }
}

Tokenizer Tokenizer::from_tokenizer_json(const std::string& path_string) {
  const fs::path path(path_string);
  const json root = tok::read_json(path);
  const std::string where = path.string();
  if (!root.is_object()) fail("{}: expected a JSON object", where);
  auto impl = std::make_shared<Impl>();
  const DirConfig dir_config = tok::read_dir_config(path.parent_path());

  if (!root.contains("model")) fail("{}: missing \"model\" object", where);
  impl->model = parse_model(root["model"], where);
  if (root.contains("normalizer") && !root["normalizer"].is_null())
    impl->normalizer = tok::parse_normalizer(root["normalizer"], where + ": normalizer");
  if (root.contains("pre_tokenizer") && !root["pre_tokenizer"].is_null())
    impl->pre_tokenizer = tok::parse_pre_tokenizer(root["pre_tokenizer"], where + ": pre_tokenizer");

  if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
    if (!root["added_tokens"].is_array()) fail("{}: added_tokens must be an array", where);
    std::size_t i = 0;
    for (const json& t : root["added_tokens"]) {
      const std::string twhere = fmt::format("{}: added_tokens[{}]", where, i++);
      AddedToken token = tok::parse_added_token(t, twhere);
      if (!t.contains("id")) fail("{}: missing \"id\"", twhere);
      token.id = get_id(t["id"], twhere + ".id");
      impl->added.push_back(std::move(token));
    }
  }
  if (root.contains("post_processor") && !root["post_processor"].is_null())
    parse_post_processor(root["post_processor"], where + ": post_processor", impl->post);

  // padding section (pad id / type id) when the file sets one
  if (root.contains("padding") && root["padding"].is_object()) {
    const json& pad = root["padding"];
    if (pad.contains("pad_id")) impl->special.pad = get_id(pad["pad_id"], where + ": padding.pad_id");
    if (pad.contains("pad_type_id")) impl->pad_type_id = get_id(pad["pad_type_id"], where + ": padding.pad_type_id");
  }

  finish_tokenizer(*impl, dir_config, where);
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
  const DirConfig dir_config = tok::read_dir_config(path.parent_path());
  const json& config = dir_config.config;
  const std::string cwhere = dir_config.config_path();
  // BertTokenizer defaults: do_lower_case true, tokenize_chinese_chars true, strip_accents None.
  tok::NormalizerConfig normalizer;
  normalizer.lowercase = get_bool(config, "do_lower_case", true, cwhere);
  normalizer.handle_chinese_chars = get_bool(config, "tokenize_chinese_chars", true, cwhere);
  normalizer.strip_accents = get_bool(config, "strip_accents", normalizer.lowercase, cwhere);
  impl->normalizer = tok::make_bert_normalizer(normalizer);
  impl->pre_tokenizer = tok::make_bert_pre_tokenizer();
  const tok::SpecialNames& names = dir_config.names;
  const std::string unk = names.unk.value_or("[UNK]"), sep = names.sep.value_or("[SEP]"),
                    pad = names.pad.value_or("[PAD]"), cls = names.cls.value_or("[CLS]"),
                    mask = names.mask.value_or("[MASK]");
  try {
    impl->model = std::make_unique<tok::WordPiece>(vocab, unk, "##", 100);
  } catch (const Error& e) {
    fail("{}: {}", where, e.what());
  }

  impl->added = dir_config.added_tokens_decoder();
  if (impl->added.empty() && !(config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object())) {
    // The special tokens become non-normalized special added tokens, in transformers' order.
    auto next_id = static_cast<std::int32_t>(vocab.size());
    for (const std::string* name : {&unk, &sep, &pad, &cls, &mask}) {
      AddedToken token;
      token.content = *name;
      token.special = true;
      const std::int32_t id = impl->model->find(*name);
      token.id = id >= 0 ? id : next_id++;
      impl->added.push_back(std::move(token));
    }
  }
  std::int32_t cls_id = -1, sep_id = -1;
  for (const AddedToken& t : impl->added) {
    if (t.content == cls) cls_id = t.id;
    if (t.content == sep) sep_id = t.id;
  }
  if (cls_id < 0) cls_id = impl->model->find(cls);
  if (sep_id < 0) sep_id = impl->model->find(sep);
  if (cls_id < 0 || sep_id < 0)
    fail("{}: the classifier/separator tokens \"{}\" / \"{}\" are not in the vocabulary", where, cls, sep);
  impl->post.has_template = true;
  impl->post.single = bert_template(cls_id, sep_id, false);
  impl->post.pair = bert_template(cls_id, sep_id, true);

  finish_tokenizer(*impl, dir_config, where);
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_bpe_files(const std::string& vocab_json, const std::string& merges_txt) {
  const fs::path vocab_path(vocab_json);
  auto vocab = parse_vocab_object(tok::read_json(vocab_path), vocab_path.string());
  std::ifstream in(merges_txt, std::ios::binary);
  if (!in) fail("{}: cannot open", merges_txt);
  std::vector<tok::MergeRule> merges;
  std::string line;
  for (std::size_t number = 1; std::getline(in, line); ++number) {
    if (line.starts_with("#version")) continue;
    merges.push_back(parse_merge_line(line, fmt::format("{}: line {}", merges_txt, number)));
  }
  const DirConfig dir_config = tok::read_dir_config(vocab_path.parent_path());
  const std::string& cls_name = dir_config.tokenizer_class;
  bool has_s = false, has_end = false;
  for (const auto& [token, id] : vocab) {
    has_s = has_s || token == "<s>";
    has_end = has_end || token == "</s>";
  }
  // RoBERTa's conventions when the files say RoBERTa, or the vocabulary has its <s> / </s>.
  const bool roberta = cls_name == "RobertaTokenizer" || dir_config.model_type == "roberta" ||
                       (cls_name.empty() && dir_config.model_type.empty() && has_s && has_end);

  auto impl = std::make_shared<Impl>();
  impl->model = std::make_unique<tok::Bpe>(std::move(vocab), merges, tok::BpeOptions{});
  const bool add_prefix_space = get_bool(dir_config.config, "add_prefix_space", false, dir_config.config_path());
  impl->pre_tokenizer = tok::make_byte_level_pre_tokenizer(add_prefix_space);
  impl->added = dir_config.added_tokens_decoder();
  const tok::SpecialNames& names = dir_config.names;
  auto require = [&](const std::string& name) {
    const std::int32_t id = impl->model->find(name);
    if (id < 0) fail("{}: the special token \"{}\" is not in the vocabulary", vocab_json, name);
    return id;
  };
  if (roberta) {
    const std::string bos = names.cls.value_or(names.bos.value_or("<s>"));
    const std::string eos = names.sep.value_or(names.eos.value_or("</s>"));
    impl->post.has_template = true;
    impl->post.single = roberta_template(require(bos), require(eos), false);
    impl->post.pair = roberta_template(require(bos), require(eos), true);
    impl->post.trim_offsets = get_bool(dir_config.config, "trim_offsets", true, dir_config.config_path());
    impl->post.trim_add_prefix_space = add_prefix_space;
    if (impl->added.empty()) {
      // RobertaTokenizer's special tokens; <mask> takes the space before it.
      for (const std::string& name : {bos, names.pad.value_or("<pad>"), eos, names.unk.value_or("<unk>"),
                                      names.mask.value_or("<mask>")}) {
        AddedToken token;
        token.content = name;
        token.special = true;
        token.lstrip = name == names.mask.value_or("<mask>");
        token.id = require(name);
        impl->added.push_back(std::move(token));
      }
    }
  } else {
    // GPT2Tokenizer: no template, offsets untrimmed; <|endoftext|> is its one special token.
    impl->post.trim_offsets = false;
    if (impl->added.empty()) {
      const std::string eos = names.eos.value_or("<|endoftext|>");
      if (impl->model->find(eos) >= 0) {
        AddedToken token;
        token.content = eos;
        token.special = true;
        token.id = require(eos);
        impl->added.push_back(std::move(token));
      }
    }
  }
  finish_tokenizer(*impl, dir_config, vocab_json);
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_sentencepiece(const std::string& model_path) {
  auto impl = std::make_shared<Impl>();
  const DirConfig dir_config = tok::read_dir_config(fs::path(model_path).parent_path());
  tok::build_sentencepiece(*impl, model_path, dir_config);
  finish_tokenizer(*impl, dir_config, model_path);
  return Tokenizer(std::move(impl));
}

const std::vector<std::string>& tokenizer_file_names() {
  static const std::vector<std::string> names = {
      "tokenizer.json", "vocab.json", "merges.txt", "vocab.txt", "spiece.model", "spm.model",
      "sentencepiece.bpe.model", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
      "added_tokens.json"};
  return names;
}

std::optional<std::string> tokenizer_file(const std::string& dir_string) {
  const fs::path dir(dir_string);
  for (const char* name : {"tokenizer.json", "vocab.json", "spiece.model", "spm.model", "sentencepiece.bpe.model",
                           "tokenizer.model", "vocab.txt"})
    if (fs::is_regular_file(dir / name)) return (dir / name).string();
  return std::nullopt;
}

Tokenizer Tokenizer::from_dir(const std::string& dir_string) {
  const fs::path dir(dir_string);
  if (!fs::is_directory(dir)) fail("tokenizer directory {} does not exist", dir.string());
  const auto file = tokenizer_file(dir_string);
  if (!file)
    fail("{}: no tokenizer file in the directory (tokenizer.json, vocab.json + merges.txt, a SentencePiece "
         ".model, or vocab.txt)",
         dir.string());
  const std::string name = fs::path(*file).filename().string();
  if (name == "tokenizer.json") return from_tokenizer_json(*file);
  if (name == "vocab.txt") return from_vocab_txt(*file);
  if (name == "vocab.json") {
    if (!fs::is_regular_file(dir / "merges.txt")) fail("{}: vocab.json without the merges.txt it needs", dir.string());
    return from_bpe_files(*file, (dir / "merges.txt").string());
  }
  return from_sentencepiece(*file);
}

}  // namespace tuneserve
