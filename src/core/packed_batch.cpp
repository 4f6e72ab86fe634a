// PackedBatch (core/packed_batch.h): building one sequence at a time or from a padded batch, and
// the consistency check the model runs before trusting it.
//
// Dimensions: B sequences, M tokens, T padded length.
#include "core/packed_batch.h"

#include <algorithm>

#include "core/error.h"

namespace tuneserve {

std::size_t PackedBatch::real_tokens() const {
  if (!padded()) return tokens();
  return static_cast<std::size_t>(std::count_if(attention_mask.begin(), attention_mask.end(),
                                                [](std::int32_t m) { return m != 0; }));
}

void PackedBatch::append(std::span<const std::int32_t> ids, std::span<const std::int32_t> type_ids) {
  if (padded()) fail("PackedBatch::append: the batch is padded (from_padded); build a packed one");
  if (ids.empty()) fail("PackedBatch::append: sequence {} is empty", size());
  if (!type_ids.empty() && type_ids.size() != ids.size())
    fail("PackedBatch::append: sequence {} has {} ids but {} type ids", size(), ids.size(), type_ids.size());
  output_rows.push_back(static_cast<std::int32_t>(input_ids.size()));
  input_ids.insert(input_ids.end(), ids.begin(), ids.end());
  if (type_ids.empty()) token_type_ids.resize(input_ids.size(), 0);
  else token_type_ids.insert(token_type_ids.end(), type_ids.begin(), type_ids.end());
  cu_seqlens.push_back(static_cast<std::int32_t>(input_ids.size()));
  padded_length = std::max(padded_length, static_cast<int>(ids.size()));
}

PackedBatch PackedBatch::from_padded(int B, int T, const std::int32_t* ids, const std::int32_t* mask,
                                     const std::int32_t* types, bool keep_padding) {
  if (B <= 0 || T <= 0) fail("batch is empty (B={}, T={})", B, T);
  if (!ids) fail("batch has no input_ids");
  const auto at = [T](int b, int t) { return static_cast<std::size_t>(b) * T + t; };
  // Packable: each row's real tokens are a prefix starting at token 0 (the token the head reads).
  std::vector<int> lengths(B, T);
  bool packable = !keep_padding;
  for (int b = 0; b < B && packable && mask; ++b) {
    int len = 0;
    while (len < T && mask[at(b, len)]) ++len;
    for (int t = len; t < T && packable; ++t) packable = mask[at(b, t)] == 0;
    packable = packable && len > 0;
    lengths[b] = len;
  }
  PackedBatch out;
  if (packable) {
    for (int b = 0; b < B; ++b) {
      const std::span<const std::int32_t> row_types =
          types ? std::span<const std::int32_t>(types + at(b, 0), lengths[b]) : std::span<const std::int32_t>();
      out.append(std::span<const std::int32_t>(ids + at(b, 0), lengths[b]), row_types);
    }
  } else {
    const std::size_t M = static_cast<std::size_t>(B) * T;
    out.input_ids.assign(ids, ids + M);
    out.token_type_ids = types ? std::vector<std::int32_t>(types, types + M) : std::vector<std::int32_t>(M, 0);
    out.attention_mask = mask ? std::vector<std::int32_t>(mask, mask + M) : std::vector<std::int32_t>(M, 1);
    for (int b = 0; b < B; ++b) {
      out.output_rows.push_back(static_cast<std::int32_t>(at(b, 0)));
      out.cu_seqlens.push_back(static_cast<std::int32_t>(at(b + 1, 0)));
    }
  }
  out.padded_length = T;
  return out;
}

void PackedBatch::check() const {
  const std::size_t M = tokens();
  if (cu_seqlens.empty() || cu_seqlens.front() != 0) fail("packed batch: cu_seqlens must start with 0");
  if (size() <= 0) fail("batch is empty (no sequences)");
  if (sequence_offset < 0) fail("packed batch: sequence_offset {} is negative", sequence_offset);
  if (static_cast<std::size_t>(cu_seqlens.back()) != M)
    fail("packed batch: cu_seqlens ends at {} but the batch has {} tokens", cu_seqlens.back(), M);
  if (token_type_ids.size() != M)
    fail("packed batch: {} token type ids for {} tokens", token_type_ids.size(), M);
  if (output_rows.size() != static_cast<std::size_t>(size()))
    fail("packed batch: {} output rows for {} sequences", output_rows.size(), size());
  for (int b = 0; b < size(); ++b) {
    if (length(b) <= 0) fail("packed batch: sequence {} is empty", b);
    if (length(b) > padded_length)
      fail("packed batch: sequence {} has {} tokens, more than the padded length {}", b, length(b), padded_length);
    if (output_rows[b] < cu_seqlens[b] || output_rows[b] >= cu_seqlens[b + 1])
      fail("packed batch: output row {} of sequence {} lies outside its tokens [{}, {})", output_rows[b], b,
           cu_seqlens[b], cu_seqlens[b + 1]);
  }
  if (padded()) {
    if (attention_mask.size() != M) fail("padded batch: {} mask values for {} tokens", attention_mask.size(), M);
    for (int b = 0; b < size(); ++b)
      if (length(b) != padded_length)
        fail("padded batch: row {} has {} tokens, not the padded length {}", b, length(b), padded_length);
  }
}

}  // namespace tuneserve
