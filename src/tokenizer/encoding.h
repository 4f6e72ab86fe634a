// The result of tokenizing one input (a text or a text pair), as Hugging Face `tokenizers`
// reports it. Shared by the tokenizer, data preparation, the model pipeline and the server.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace tuneserve {

struct Encoding {
  std::vector<std::int32_t> ids;             // token ids, special tokens included
  std::vector<std::int32_t> type_ids;        // segment ids (0 first sequence, 1 pair)
  std::vector<std::int32_t> attention_mask;  // 1 real token, 0 padding
  std::vector<std::int32_t> special_tokens_mask;  // 1 for [CLS]/[SEP]/[PAD]...
  // [begin, end) in Unicode code points of the original text; (0, 0) for special tokens.
  std::vector<std::pair<std::int32_t, std::int32_t>> offsets;
  std::vector<std::int32_t> sequence_ids;    // 0, 1, or -1 for special tokens / padding
  std::size_t size() const { return ids.size(); }
};

}  // namespace tuneserve
