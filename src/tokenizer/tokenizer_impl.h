// What a loaded Tokenizer holds (shared by tokenizer.cpp, the encode pipeline, and load.cpp, which
// builds it from the files). Immutable once loaded.
//
// Legend: n code points of a text, T tokens.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/model.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/wordpiece.h"

namespace tuneserve {
namespace tok {

struct TemplatePiece {
  enum Kind { kSpecial, kSequenceA, kSequenceB } kind;
  std::vector<std::int32_t> ids;  // kSpecial only
  std::int32_t type_id = 0;
};

// The post-processor: TemplateProcessing, BertProcessing and RobertaProcessing are all a template
// (RoBERTa's with every type id 0); ByteLevel and RobertaProcessing may trim offsets.
struct PostProcessor {
  bool has_template = false;
  std::vector<TemplatePiece> single, pair;
  bool trim_offsets = false;            // drop leading / trailing spaces (Ġ) from token offsets
  bool trim_add_prefix_space = false;   // ... except the one space a prefix added to a first token
};

// BertProcessing's template: [CLS] A [SEP] (type 0), pair: B [SEP] (type 1).
std::vector<TemplatePiece> bert_template(std::int32_t cls, std::int32_t sep, bool pair);
// RobertaProcessing's: <s> A </s>, pair: </s> B </s>, every type id 0.
std::vector<TemplatePiece> roberta_template(std::int32_t cls, std::int32_t sep, bool pair);

}  // namespace tok

struct Tokenizer::Impl {
  std::unique_ptr<tok::Normalizer> normalizer;        // null: none
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer;   // null: each split is one word
  std::unique_ptr<tok::Model> model;
  std::vector<tok::AddedToken> added;                 // not resized after the matchers are built
  tok::AddedMatcher raw_matcher, normalized_matcher;
  tok::FlatVocab added_ids;                           // content -> id, looked up before the model
  std::vector<std::string> id_to_token;
  tok::PostProcessor post;
  std::vector<std::uint8_t> lead_spaces, trail_spaces;  // per id, when post.trim_offsets
  SpecialTokenIds special;
  std::int32_t pad_type_id = 0;
  std::optional<std::size_t> model_max_length;

  std::optional<std::int32_t> lookup(std::string_view token) const;
  // text -> tokens (before truncation and the post-processor), offsets in code points of `text`.
  void tokenize(std::string_view text, std::vector<tok::Token>& out) const;
  std::size_t added_count(bool is_pair) const;
  std::size_t resolve_max_length(const EncodeOptions& options) const;
};

}  // namespace tuneserve
