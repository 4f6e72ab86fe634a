// The Encoder prep uses, over the project's Hugging Face tokenizer.
// Dimensions: T tokens of one encoding.
#include <filesystem>

#include "data/prep.h"
#include "core/error.h"
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
  const auto file = tokenizer_file(dir);
  if (!file) fail("{}: no tokenizer file to record in the dataset", dir);
  e.file = std::filesystem::path(*file).filename().string();
  e.hash = file_hash(*file);
  e.pad_token_id = tokenizer.special_ids().pad.value_or(0);
  e.pad_token_type_id = tokenizer.pad_type_id();
  return e;
}

}  // namespace tuneserve::data
