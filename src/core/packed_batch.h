// The one batch type every layer hands to the model: the token ids of B sequences end to end, no
// padding (TEI's varlen batch, CTranslate2's removed padding). Training batches (data/), predict and
// eval (pipeline/pipeline), and the server's batcher all build it through append(); a padded (B, T)
// batch from outside (reference files, tests) comes in through from_padded().
//
// Dimensions: B sequences, M tokens in all (the sum of the lengths), T the padded length.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace tuneserve {

struct PackedBatch {
  std::vector<std::int32_t> input_ids;       // (M)
  std::vector<std::int32_t> token_type_ids;  // (M); 0 where the sequence came without type ids
  std::vector<std::int32_t> cu_seqlens{0};   // (B + 1): sequence b is tokens [cu_seqlens[b], cu_seqlens[b+1])
  // (B) the token of each sequence whose last-layer state the classification head reads: its first
  // token (what every BERT-family head reads, padded or not).
  std::vector<std::int32_t> output_rows;
  // Empty for a packed batch (every token is real). A batch kept padded (from_padded) holds B rows of
  // exactly T tokens and here, per token, 1 = a real token, 0 = padding that no token attends to.
  std::vector<std::int32_t> attention_mask;  // (M) or empty
  // T of the padded (B, T) batch this stands for: dropout draws the mask of token t of sequence b at
  // position b * T + t, so a batch draws the same masks packed or padded, whatever the padding policy.
  // append() keeps it at least the longest sequence; a data pipeline that pads to max_length raises it.
  int padded_length = 0;
  // Index of sequence 0 in the padded batch whose dropout masks this one draws: sequence b draws those
  // of row sequence_offset + b. A data-parallel rank's share of a global batch (train/distributed.h)
  // so draws exactly the masks the whole batch draws in one process; 0 otherwise.
  int sequence_offset = 0;

  int size() const { return static_cast<int>(cu_seqlens.size()) - 1; }  // B
  std::size_t tokens() const { return input_ids.size(); }               // M
  int length(int b) const { return cu_seqlens[b + 1] - cu_seqlens[b]; }
  bool padded() const { return !attention_mask.empty(); }
  // Real tokens (M for a packed batch; the mask's ones for a padded one): what a token budget counts.
  std::size_t real_tokens() const;

  // Adds one sequence (at least one token); `type_ids` is empty (all 0) or as long as `ids`. Error
  // on a padded batch, an empty sequence, or mismatched lengths.
  void append(std::span<const std::int32_t> ids, std::span<const std::int32_t> type_ids = {});

  // A padded (B, T) batch, row-major; mask and types may be null (all ones / all zeros). Packed (the
  // real tokens of each row) when every row's real tokens are a prefix that starts at token 0;
  // otherwise, or with keep_padding (e.g. to read every position's hidden state), kept padded with
  // its mask. padded_length = T either way.
  static PackedBatch from_padded(int B, int T, const std::int32_t* ids, const std::int32_t* mask,
                                 const std::int32_t* types, bool keep_padding = false);

  // Error naming the first inconsistency (sizes, offsets, output rows, a padded batch's shape).
  void check() const;
};

}  // namespace tuneserve
