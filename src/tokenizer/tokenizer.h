// Hugging Face tokenizers, one interface over a family of models:
//   WordPiece (BERT family): tokenizer.json, or vocab.txt + tokenizer_config.json;
//   byte-level BPE (GPT-2, RoBERTa): tokenizer.json, or vocab.json + merges.txt;
//   Unigram (T5, ALBERT, XLM-R ... converted): tokenizer.json with Precompiled / Metaspace;
//   SentencePiece .model files (spiece.model, spm.model, sentencepiece.bpe.model) run by
//   libsentencepiece, with Hugging Face's special tokens and template around them.
// The pipeline is tokenizers': added tokens -> normalizer -> pre-tokenizer -> model ->
// truncation -> post-processor (template, offsets trimming) -> padding.
//
// Results equal Hugging Face `tokenizers` (ids, type ids, special-token mask and offsets in Unicode
// code points of the original text). A Tokenizer is immutable after loading: `encode` is const and
// safe to call from many threads at once; copies share the loaded vocabulary.
//
// Legend: T tokens in one encoding, B encodings in a batch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/encoding.h"

namespace tuneserve {

enum class Truncation {
  None,          // never truncate
  LongestFirst,  // remove from the longer sequence first (tokenizers' `longest_first`)
  OnlyFirst,     // remove only from the first sequence (error if it is too short)
  OnlySecond,    // remove only from the pair (error without a pair or if it is too short)
};

enum class Padding {
  None,       // no padding
  Longest,    // pad every encoding of a batch to the batch's longest (single encode: no-op)
  MaxLength,  // pad to max_length
};

// Parses "longest_first" / "only_first" / "only_second" / "none" (also "do_not_truncate", "true",
// "false"); "longest" / "max_length" / "none" (also "do_not_pad"). Throws Error naming the value.
Truncation parse_truncation(std::string_view name);
Padding parse_padding(std::string_view name);

struct EncodeOptions {
  bool add_special_tokens = true;  // apply the post-processor template ([CLS] A [SEP] B [SEP])
  Truncation truncation = Truncation::None;
  Padding padding = Padding::None;
  // Length limit for truncation and Padding::MaxLength, special tokens included.
  // 0 means model_max_length (tokenizer_config.json); an error if that is unknown too.
  std::size_t max_length = 0;
  std::size_t pad_to_multiple_of = 0;  // 0 = off; rounds padded lengths up
};

// Ids of the tokens with a special role, resolved from the files; nullopt when the files have none.
struct SpecialTokenIds {
  std::optional<std::int32_t> pad, cls, sep, unk, mask;
};

class Tokenizer {
 public:
  // Loads the directory's tokenizer file (tokenizer_file() says which), plus
  // tokenizer_config.json / special_tokens_map.json for model_max_length and special tokens.
  static Tokenizer from_dir(const std::string& dir);
  // The tokenizer.json form; the model kind comes from model.type, else a "merges" array means
  // BPE and an array "vocab" of [piece, score] Unigram (as tokenizers decides). Its "truncation"
  // section is not applied (EncodeOptions decides); "padding" gives pad id/type id.
  static Tokenizer from_tokenizer_json(const std::string& path);
  // The legacy BERT form: a vocab.txt and the directory's tokenizer_config.json if any
  // (do_lower_case, tokenize_chinese_chars, strip_accents), as BertTokenizerFast builds it.
  static Tokenizer from_vocab_txt(const std::string& vocab_path);
  // The legacy byte-level BPE form (GPT2TokenizerFast / RobertaTokenizerFast): RoBERTa's
  // template and special tokens when the directory's tokenizer_config.json / config.json name
  // RoBERTa or the vocabulary has <s> and </s>, else GPT-2's.
  static Tokenizer from_bpe_files(const std::string& vocab_json, const std::string& merges_txt);
  // A SentencePiece model file run by libsentencepiece; special tokens and the template follow
  // the tokenizer class (tokenizer_config.json, else config.json's model_type, else the special
  // pieces the model holds: [CLS]/[SEP] as ALBERT and DeBERTa-v2, <s>/</s> as XLM-R, </s> as T5).
  static Tokenizer from_sentencepiece(const std::string& model_path);

  // One text or a text pair -> one Encoding (truncated / padded as `options` say).
  Encoding encode(std::string_view text, std::optional<std::string_view> pair = std::nullopt,
                  const EncodeOptions& options = {}) const;
  // B texts (and B pairs when `pairs` is non-empty) -> B encodings; Padding::Longest pads all of
  // them to the longest one.
  std::vector<Encoding> encode_batch(const std::vector<std::string>& texts,
                                     const std::vector<std::string>& pairs = {},
                                     const EncodeOptions& options = {}) const;
  // Pads already-made encodings in place (Longest: to the longest of `batch`; MaxLength: to
  // options.max_length). Encodings longer than the target are left as they are.
  void pad(std::vector<Encoding>& batch, const EncodeOptions& options) const;

  std::optional<std::int32_t> token_to_id(std::string_view token) const;
  // Throws Error for an id outside [0, vocab_size()).
  const std::string& id_to_token(std::int32_t id) const;
  std::size_t vocab_size() const;  // model vocabulary plus added tokens beyond it

  const SpecialTokenIds& special_ids() const;
  // Convenience accessors; each throws Error naming the token role when the files define none.
  std::int32_t pad_id() const;
  std::int32_t cls_id() const;
  std::int32_t sep_id() const;
  std::int32_t unk_id() const;
  std::int32_t mask_id() const;
  std::int32_t pad_type_id() const;

  // tokenizer_config.json's model_max_length when present and sane (< 1e9), else nullopt.
  std::optional<std::size_t> model_max_length() const;
  // How many tokens the template adds around one text (2 for BERT) or a pair (3 for BERT).
  std::size_t num_special_tokens(bool pair) const;
  bool lowercase() const;  // what the normalizer does (uncased models)
  // The model family: "WordPiece", "BPE", "Unigram" or "SentencePiece".
  const char* kind() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// The file that defines the tokenizer of `dir`, the one from_dir loads: tokenizer.json, else
// vocab.json (with merges.txt), else a SentencePiece .model file, else vocab.txt; nullopt when
// the directory has none.
std::optional<std::string> tokenizer_file(const std::string& dir);
// Every tokenizer file name a Hugging Face model directory may carry (to copy them unchanged).
const std::vector<std::string>& tokenizer_file_names();

}  // namespace tuneserve
