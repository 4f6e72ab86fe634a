// The Encoder prep uses, over the project's Hugging Face tokenizer.
// Dimensions: T tokens of one encoding.
#include <filesystem>

#include "core/error.h"
#include "data/prep.h"
#include "tokenizer/tokenizer.h"

namespace tuneserve::data {

Encoder tokenizer_encoder(const Tokenizer& tokenizer, const std::string& dir, std::int64_t max_length) {
  Encoder e;
  EncodeOptions options;
  options.add_special_tokens = true;
  options.padding = tuneserve::Padding::None;  // rows are stored unpadded; batches pad
  if (max_length > 0) {
    options.truncation = Truncation::LongestFirst;
    options.max_length = static_cast<std::size_t>(max_length);
  }
  // The tokenizer shares its loaded vocabulary between copies, so the lambda can own one.
  e.encode = [tokenizer, options](std::string_view text, std::optional<std::string_view> pair) {
    return tokenizer.encode(text, pair, options);
  };
  e.path = dir;
  const TokenizerIdentity id = tokenizer_identity(dir);
  e.file = id.file;
  e.hash = id.hash;
  e.pad_token_id = tokenizer.special_ids().pad.value_or(0);
  e.pad_token_type_id = tokenizer.pad_type_id();
  const Encoding probe = tokenizer.encode("a", std::nullopt, EncodeOptions{});
  e.special_suffix = 0;
  for (auto it = probe.special_tokens_mask.rbegin(); it != probe.special_tokens_mask.rend() && *it == 1; ++it)
    e.special_suffix++;
  return e;
}

TokenizerIdentity tokenizer_identity(const std::string& dir) {
  const std::filesystem::path root(dir);
  TokenizerIdentity id;
  const auto file = tokenizer_file(dir);
  if (!file) fail("{}: no tokenizer file to record in the dataset (not a tokenizer directory)", dir);
  id.file = std::filesystem::path(*file).filename().string();
  id.hash = file_hash(*file);
  return id;
}

}  // namespace tuneserve::data
