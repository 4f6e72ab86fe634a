// SentencePiece .model files (ALBERT's spiece.model, DeBERTa-v2/v3's spm.model, T5's spiece.model)
// run by libsentencepiece, the reference implementation, with Hugging Face's conventions around
// it: the tokenizer class's text preprocessing (AlbertTokenizer: collapse whitespace, `` and '' to
// ", strip accents, lowercase), its special tokens split out of the text first, and its template.
// The class comes from tokenizer_config.json's tokenizer_class, else config.json's model_type,
// else the special pieces the model holds ([CLS] + [SEP]: BERT-style template; </s> alone: T5's).
#pragma once

#include <string>

#include "tokenizer/config_files.h"
#include "tokenizer/tokenizer_impl.h"

namespace tuneserve::tok {

// Fills impl's normalizer, model, added tokens and post-processor from the .model file at `path`.
// Throws Error naming the file when it is not a SentencePiece model or its layout is unsupported.
void build_sentencepiece(Tokenizer::Impl& impl, const std::string& path, const DirConfig& config);

}  // namespace tuneserve::tok
