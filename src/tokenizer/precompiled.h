// SentencePiece's compiled normalization map ("precompiled_charsmap" of a Unigram tokenizer.json,
// `normalizer_spec.precompiled_charsmap` of a .model file) and the `Precompiled` normalizer of
// Hugging Face `tokenizers` built on it.
//
// Blob layout (little endian): u32 trie_bytes, then trie_bytes / 4 u32 units of a Darts double
// array whose leaves hold offsets into the rest of the blob: NUL-terminated UTF-8 replacements.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/normalizer.h"

namespace tuneserve::tok {

class PrecompiledCharsMap {
 public:
  // Throws Error naming `where` when the blob does not parse.
  PrecompiledCharsMap(const std::string& blob, const std::string& where);
  // The replacement of the shortest prefix of bytes[0, len) that the map holds (what
  // spm_precompiled's `transform` returns), or false when no prefix is in the map.
  bool transform(const char* bytes, std::size_t len, std::string_view& replacement) const;

 private:
  std::uint32_t unit(std::size_t pos) const;
  std::vector<std::uint32_t> units_;
  std::string normalized_;
  std::string where_;
};

std::unique_ptr<Normalizer> make_precompiled_normalizer(const std::string& blob, const std::string& where);

// Standard base64 (RFC 4648, padded); throws Error naming `where` on malformed input.
std::string base64_decode(const std::string& text, const std::string& where);

}  // namespace tuneserve::tok
