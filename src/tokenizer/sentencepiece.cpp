// SentencePiece .model tokenizers (see sentencepiece.h). The model itself is libsentencepiece's;
// this file holds only what Hugging Face puts around it.
//
// Legend: n code points of a text, b its UTF-8 bytes.
#include "tokenizer/sentencepiece.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace tuneserve::tok {
namespace {

class SentencePieceModel final : public Model {
 public:
  explicit SentencePieceModel(const std::string& path) {
    if (!std::filesystem::is_regular_file(path)) fail("{}: cannot open", path);
    const auto status = sp_.Load(path);
    if (!status.ok()) fail("{}: not a SentencePiece model that loads: {}", path, status.ToString());
    if (sp_.GetPieceSize() <= 0) fail("{}: the SentencePiece model has no pieces", path);
  }

  // The whole text (split around special tokens) goes to SentencePiece, whose normalizer and
  // whitespace handling are part of the model. Offsets: each piece's surface in the text,
  // without the whitespace SentencePiece folds into a piece's leading "▁".
  void tokenize(const char32_t* chars, const std::int32_t* orig, std::size_t n, std::vector<Token>& out) const override {
    if (n == 0) return;
    thread_local WordBytes text;
    text.assign(chars, n);
    const sentencepiece::ImmutableSentencePieceText encoded = sp_.EncodeAsImmutableProto(text.bytes);
    const std::size_t bytes = text.bytes.size();
    for (std::size_t i = 0; i < encoded.pieces_size(); ++i) {
      const auto piece = encoded.pieces(static_cast<int>(i));
      std::size_t begin = std::min<std::size_t>(piece.begin(), bytes), end = std::min<std::size_t>(piece.end(), bytes);
      while (begin < end && (char_flags(chars[text.char_of[begin]]) & kWhitespace)) {
        const std::uint32_t c = text.char_of[begin];
        while (begin < end && text.char_of[begin] == c) ++begin;
      }
      const auto id = static_cast<std::int32_t>(piece.id());
      if (begin < end) {
        out.push_back(Token{id, orig[text.char_of[begin]], orig[text.char_of[end - 1]] + 1});
      } else {
        const std::int32_t at = begin < bytes ? orig[text.char_of[begin]] : orig[n - 1] + 1;
        out.push_back(Token{id, at, at});
      }
    }
  }

  std::int32_t find(std::string_view token) const override {
    const int id = sp_.PieceToId(token);  // the unknown id for any piece it lacks
    return id >= 0 && sp_.IdToPiece(id) == token ? id : -1;
  }
  std::optional<std::int32_t> unk_id() const override {
    const int id = sp_.unk_id();
    if (id < 0) return std::nullopt;
    return id;
  }
  void for_each_token(FunctionRef<void(std::string_view, std::int32_t)> f) const override {
    for (int id = 0; id < sp_.GetPieceSize(); ++id) f(sp_.IdToPiece(id), id);
  }
  const char* kind() const override { return "SentencePiece"; }

  bool is_control(int id) const { return sp_.IsControl(id); }
  std::string piece(int id) const { return sp_.IdToPiece(id); }
  int size() const { return sp_.GetPieceSize(); }

 private:
  sentencepiece::SentencePieceProcessor sp_;
};

// AlbertTokenizer.preprocess_text (transformers): remove_space (strip, then one space between
// words, Python's whitespace), `` and '' become ", keep_accents false: NFKD then drop
// combining chars, do_lower_case: Python's str.lower (final sigma included).
class AlbertPreprocess final : public Normalizer {
 public:
  AlbertPreprocess(bool remove_space, bool keep_accents, bool lowercase)
      : remove_space_(remove_space), keep_accents_(keep_accents), lowercase_(lowercase) {}
  bool lowercases() const override { return lowercase_; }

  void normalize(const char32_t* in, const std::int32_t* in_orig, std::size_t n, Text& out) const override {
    Text a, b;
    // 1. remove_space
    if (remove_space_) {
      std::size_t i = 0;
      bool first = true;
      while (i < n) {
        const std::size_t gap = i;
        while (i < n && is_python_space(in[i])) ++i;
        if (i == n) break;
        if (!first) a.push(' ', in_orig[gap]);
        first = false;
        while (i < n && !is_python_space(in[i])) a.push(in[i], in_orig[i]), ++i;
      }
    } else {
      for (std::size_t i = 0; i < n; ++i) a.push(in[i], in_orig[i]);
    }
    // 2. `` and '' -> "
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (i + 1 < a.size() && (a.chars[i] == '`' || a.chars[i] == '\'') && a.chars[i + 1] == a.chars[i]) {
        b.push('"', a.orig[i]);
        ++i;
      } else {
        b.push(a.chars[i], a.orig[i]);
      }
    }
    // 3. NFKD, dropping combining chars (their order then cannot matter)
    Text& c = keep_accents_ ? b : a;
    if (!keep_accents_) {
      a.clear();
      for (std::size_t i = 0; i < b.size(); ++i) {
        char32_t d[18];
        const int k = decompose_compat(b.chars[i], d);
        for (int j = 0; j < k; ++j)
          if (combining_class(d[j]) == 0) a.push(d[j], b.orig[i]);
      }
    }
    // 4. lowercase
    for (std::size_t i = 0; i < c.size(); ++i) {
      if (!lowercase_) {
        out.push(c.chars[i], c.orig[i]);
        continue;
      }
      if (c.chars[i] == 0x03A3) {  // Greek capital sigma: final form at the end of a word
        out.push(final_sigma(c, i) ? 0x03C2 : 0x03C3, c.orig[i]);
        continue;
      }
      char32_t low[3];
      const int k = to_lower_full(c.chars[i], low);
      for (int j = 0; j < k; ++j) out.push(low[j], c.orig[i]);
    }
  }

 private:
  // Unicode's Final_Sigma condition: a cased letter before (skipping case-ignorable chars) and
  // none after.
  static bool final_sigma(const Text& t, std::size_t i) {
    auto ignorable = [](char32_t ch) {
      return ch == '\'' || ch == '.' || ch == ':' || ch == 0xB7 || ch == 0x2019 || (char_flags(ch) & kNonSpacing);
    };
    auto cased = [](char32_t ch) {
      char32_t low[3];
      to_lower_full(ch, low);
      return (char_flags(ch) & kLetter) && (low[0] != ch || (ch >= 'a' && ch <= 'z') || ch >= 0x3AC);
    };
    std::size_t j = i;
    bool before = false;
    while (j > 0) {
      --j;
      if (ignorable(t.chars[j])) continue;
      before = cased(t.chars[j]);
      break;
    }
    if (!before) return false;
    for (std::size_t k = i + 1; k < t.size(); ++k) {
      if (ignorable(t.chars[k])) continue;
      return !cased(t.chars[k]);
    }
    return true;
  }

  bool remove_space_, keep_accents_, lowercase_;
};

std::vector<TemplatePiece> t5_style(std::int32_t eos, bool pair) {
  std::vector<TemplatePiece> t = {{TemplatePiece::kSequenceA, {}, 0}, {TemplatePiece::kSpecial, {eos}, 0}};
  if (pair) {
    t.push_back({TemplatePiece::kSequenceB, {}, 0});
    t.push_back({TemplatePiece::kSpecial, {eos}, 0});
  }
  return t;
}

}  // namespace

void build_sentencepiece(Tokenizer::Impl& impl, const std::string& path, const DirConfig& config) {
  auto owned = std::make_unique<SentencePieceModel>(path);
  const SentencePieceModel& model = *owned;
  impl.model = std::move(owned);
  const std::string cwhere = config.config_path();

  std::string cls = config.tokenizer_class;
  if (cls.empty()) {
    if (config.model_type == "albert") cls = "AlbertTokenizer";
    else if (config.model_type == "deberta-v2") cls = "DebertaV2Tokenizer";
    else if (config.model_type == "t5") cls = "T5Tokenizer";
  }
  const bool has_cls_sep = model.find("[CLS]") >= 0 && model.find("[SEP]") >= 0;
  const bool has_eos = model.find("</s>") >= 0, has_bos = model.find("<s>") >= 0;
  bool bert_layout = false;
  if (cls == "AlbertTokenizer" || cls == "DebertaV2Tokenizer") bert_layout = true;
  else if (cls == "T5Tokenizer") bert_layout = false;
  else if (!cls.empty())
    fail("{}: tokenizer class {} is not supported with a SentencePiece model (ALBERT, DeBERTa-v2/v3 and T5 are; "
         "for others give the model's tokenizer.json)",
         path, cls);
  else if (has_cls_sep) bert_layout = true;
  else if (has_eos && !has_bos) bert_layout = false;
  else
    fail("{}: cannot tell this SentencePiece model's conventions: no tokenizer_class in {} and neither [CLS] + "
         "[SEP] nor </s> alone among its pieces (XLM-R and CamemBERT renumber SentencePiece ids: give their "
         "tokenizer.json)",
         path, cwhere);

  const bool albert = cls == "AlbertTokenizer";
  if (albert)
    impl.normalizer = std::make_unique<AlbertPreprocess>(get_bool(config.config, "remove_space", true, cwhere),
                                                         get_bool(config.config, "keep_accents", false, cwhere),
                                                         get_bool(config.config, "do_lower_case", true, cwhere));
  else if (get_bool(config.config, "do_lower_case", false, cwhere))
    impl.normalizer = std::make_unique<AlbertPreprocess>(false, true, true);

  // A role's token: the name the files give, else the first of the class's spellings the model has.
  auto name_of = [&](const std::optional<std::string>& given, std::initializer_list<const char*> spellings) {
    if (given) return *given;
    for (const char* s : spellings)
      if (model.find(s) >= 0) return std::string(s);
    return std::string(*spellings.begin());
  };
  const SpecialNames& names = config.names;
  const bool deberta = cls == "DebertaV2Tokenizer";
  std::vector<AddedToken> specials;
  std::int32_t next_id = model.size();
  auto special = [&](const std::string& name, bool required, bool lstrip) -> std::int32_t {
    std::int32_t id = model.find(name);
    if (id < 0) {
      if (required) fail("{}: the special token \"{}\" is not among the model's pieces", path, name);
      // A class adds its special tokens after the pieces (DebertaV2Tokenizer's [MASK]); without
      // one, the special tokens are the model's own pieces.
      if (cls.empty()) return -1;
      id = next_id++;
    }
    AddedToken token;
    token.content = name;
    token.special = true;
    token.lstrip = lstrip;
    token.id = id;
    specials.push_back(std::move(token));
    return id;
  };
  if (bert_layout) {
    const std::string mask = name_of(names.mask, {"[MASK]"});
    const std::int32_t cls_id = special(name_of(names.cls, {"[CLS]"}), true, false);
    const std::int32_t sep_id = special(name_of(names.sep, {"[SEP]"}), true, false);
    special(name_of(names.unk, {deberta ? "[UNK]" : "<unk>", "<unk>", "[UNK]"}), false, false);
    special(name_of(names.pad, {deberta ? "[PAD]" : "<pad>", "<pad>", "[PAD]"}), false, false);
    special(mask, false, albert);  // AlbertTokenizer's [MASK] takes the space before it
    impl.post.single = bert_template(cls_id, sep_id, false);
    impl.post.pair = bert_template(cls_id, sep_id, true);
  } else {
    const std::int32_t eos_id = special(name_of(names.eos, {"</s>"}), true, false);
    special(name_of(names.unk, {"<unk>"}), false, false);
    special(name_of(names.pad, {"<pad>"}), false, false);
    if (cls == "T5Tokenizer") {
      // T5Tokenizer's sentinels: <extra_id_i> is the (i+1)-th id from the end of the vocabulary.
      std::int64_t extra = 100;
      if (config.config.contains("extra_ids") && config.config["extra_ids"].is_number_integer())
        extra = config.config["extra_ids"].get<std::int64_t>();
      if (extra < 0 || extra > 100000) fail("{}: extra_ids {} is out of range", cwhere, extra);
      for (std::int64_t i = 0; i < extra; ++i) {
        AddedToken token;
        token.content = fmt::format("<extra_id_{}>", i);
        token.special = true;
        token.id = static_cast<std::int32_t>(model.size() + extra - 1 - i);
        specials.push_back(std::move(token));
      }
    }
    impl.post.single = t5_style(eos_id, false);
    impl.post.pair = t5_style(eos_id, true);
  }
  impl.post.has_template = true;
  if (cls.empty())
    // Without a class, every control piece is a special token as well (split out of the text).
    for (int id = 0; id < model.size(); ++id)
      if (model.is_control(id) &&
          std::none_of(specials.begin(), specials.end(), [&](const AddedToken& t) { return t.id == id; }))
        special(model.piece(id), true, false);
  // tokenizer_config.json's own list, when it has one, is what transformers uses.
  impl.added = config.added_tokens_decoder();
  if (impl.added.empty()) impl.added = std::move(specials);
}

}  // namespace tuneserve::tok
