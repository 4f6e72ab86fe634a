// core/packed_batch.h: append() packs sequences end to end, from_padded() packs prefix rows and keeps
// anything else padded, and check() names the first inconsistency.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "core/packed_batch.h"

namespace tuneserve {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;
using V = std::vector<std::int32_t>;

TEST(PackedBatch, AppendPacksSequencesEndToEnd) {
  PackedBatch b;
  b.append(V{101, 7, 102});
  b.append(V{101, 8, 9, 10, 102}, V{0, 0, 0, 1, 1});
  EXPECT_EQ(b.size(), 2);
  EXPECT_EQ(b.tokens(), 8u);
  EXPECT_EQ(b.input_ids, (V{101, 7, 102, 101, 8, 9, 10, 102}));
  EXPECT_EQ(b.token_type_ids, (V{0, 0, 0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(b.cu_seqlens, (V{0, 3, 8}));
  EXPECT_EQ(b.output_rows, (V{0, 3}));
  EXPECT_EQ(b.padded_length, 5);
  EXPECT_EQ(b.real_tokens(), 8u);
  EXPECT_FALSE(b.padded());
  EXPECT_NO_THROW(b.check());
}

TEST(PackedBatch, AppendRejectsEmptyAndMismatchedSequences) {
  PackedBatch b;
  EXPECT_THAT([&] { b.append(V{}); }, ThrowsMessage<Error>(HasSubstr("sequence 0 is empty")));
  EXPECT_THAT([&] { b.append(V{1, 2}, V{0}); }, ThrowsMessage<Error>(HasSubstr("2 ids but 1 type ids")));
  EXPECT_THAT([] { PackedBatch{}.check(); }, ThrowsMessage<Error>(HasSubstr("batch is empty")));
}

TEST(PackedBatch, FromPaddedPacksPrefixRowsAndKeepsOthersPadded) {
  const V ids = {5, 6, 7, 0, 8, 9, 0, 0};
  const V prefix = {1, 1, 1, 0, 1, 1, 0, 0};
  const V types = {0, 1, 1, 0, 0, 1, 0, 0};
  const PackedBatch packed = PackedBatch::from_padded(2, 4, ids.data(), prefix.data(), types.data());
  EXPECT_FALSE(packed.padded());
  EXPECT_EQ(packed.input_ids, (V{5, 6, 7, 8, 9}));
  EXPECT_EQ(packed.token_type_ids, (V{0, 1, 1, 0, 1}));
  EXPECT_EQ(packed.cu_seqlens, (V{0, 3, 5}));
  EXPECT_EQ(packed.padded_length, 4);  // dropout keys of the (2, 4) batch it stands for

  // A hole, or left padding, keeps the (B, T) layout with its mask; so does keep_padding.
  for (const V& mask : {V{1, 0, 1, 0, 1, 1, 0, 0}, V{0, 1, 1, 1, 1, 1, 0, 0}, prefix}) {
    const bool keep = mask == prefix;
    const PackedBatch padded = PackedBatch::from_padded(2, 4, ids.data(), mask.data(), nullptr, keep);
    EXPECT_TRUE(padded.padded());
    EXPECT_EQ(padded.input_ids, ids);
    EXPECT_EQ(padded.attention_mask, mask);
    EXPECT_EQ(padded.token_type_ids, V(8, 0));
    EXPECT_EQ(padded.cu_seqlens, (V{0, 4, 8}));
    EXPECT_EQ(padded.output_rows, (V{0, 4}));
    EXPECT_NO_THROW(padded.check());
  }
  EXPECT_EQ(PackedBatch::from_padded(2, 4, ids.data(), prefix.data(), nullptr, true).real_tokens(), 5u);
  EXPECT_THAT([&] { PackedBatch::from_padded(0, 4, ids.data(), nullptr, nullptr); },
              ThrowsMessage<Error>(HasSubstr("batch is empty")));
}

TEST(PackedBatch, CheckNamesTheInconsistency) {
  auto base = [] {
    PackedBatch b;
    b.append(V{1, 2, 3});
    b.append(V{4, 5});
    return b;
  };
  PackedBatch b = base();
  b.cu_seqlens.back() = 4;
  EXPECT_THAT([&] { b.check(); }, ThrowsMessage<Error>(HasSubstr("cu_seqlens ends at 4 but the batch has 5 tokens")));
  b = base();
  b.output_rows[1] = 1;
  EXPECT_THAT([&] { b.check(); }, ThrowsMessage<Error>(HasSubstr("output row 1 of sequence 1 lies outside")));
  b = base();
  b.token_type_ids.pop_back();
  EXPECT_THAT([&] { b.check(); }, ThrowsMessage<Error>(HasSubstr("4 token type ids for 5 tokens")));
  b = base();
  b.padded_length = 2;
  EXPECT_THAT([&] { b.check(); }, ThrowsMessage<Error>(HasSubstr("more than the padded length 2")));
  b = base();
  b.attention_mask.assign(5, 1);
  EXPECT_THAT([&] { b.check(); }, ThrowsMessage<Error>(HasSubstr("row 1 has 2 tokens, not the padded length 3")));
  EXPECT_THAT([&] { b.append(V{1}); }, ThrowsMessage<Error>(HasSubstr("the batch is padded")));
}

}  // namespace
}  // namespace tuneserve
