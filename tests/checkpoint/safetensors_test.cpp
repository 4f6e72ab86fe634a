#include "checkpoint/safetensors.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "test_util.h"

namespace tuneserve {
namespace {

std::string temp_path(const std::string& name) {
  return testing::scratch_path(name).string();
}

TEST(SafeTensors, RoundTrip) {
  SafeTensorsWriter w;
  std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 1e-8f, 7.0f};
  std::vector<std::int64_t> ids = {101, 1422, 102};
  w.add_f32("b.weight", {2, 3}, a.data());
  w.add_i64("a.ids", {3}, ids.data());
  w.set_metadata("format", "pt");
  const auto path = temp_path("roundtrip.safetensors");
  w.write(path);

  SafeTensorsReader r(path);
  ASSERT_EQ(r.tensors().size(), 2u);
  EXPECT_EQ(r.metadata().at("format"), "pt");
  EXPECT_EQ(r.info("b.weight").shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(r.read_f32("b.weight"), a);
  EXPECT_EQ(r.read_i64("a.ids"), ids);
  EXPECT_THROW(r.read_f32("a.ids"), Error);
  std::filesystem::remove(path);
}

TEST(SafeTensors, MissingTensorNamesTensorAndFile) {
  SafeTensorsWriter w;
  float x = 1;
  w.add_f32("x", {1}, &x);
  const auto path = temp_path("missing.safetensors");
  w.write(path);
  SafeTensorsReader r(path);
  try {
    r.info("classifier.weight");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("classifier.weight"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
  std::filesystem::remove(path);
}

TEST(SafeTensors, RejectsTruncatedAndCorruptFiles) {
  const auto path = temp_path("corrupt.safetensors");
  {
    std::ofstream out(path, std::ios::binary);
    out << "abc";
  }
  EXPECT_THROW(SafeTensorsReader{path}, Error);
  {
    std::ofstream out(path, std::ios::binary);
    std::uint64_t n = 64;
    out.write(reinterpret_cast<const char*>(&n), 8);
    std::string header = R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
    header.resize(64, ' ');
    out << header << "12345678";  // only 8 of 16 data bytes
  }
  EXPECT_THROW(SafeTensorsReader{path}, Error);
  std::filesystem::remove(path);
}

// A file with this header (space-padded to 8 bytes) and `data_bytes` zero bytes after it.
std::string raw_file(const std::string& name, std::string header, std::size_t data_bytes) {
  while (header.size() % 8) header.push_back(' ');
  const auto path = temp_path(name);
  std::ofstream out(path, std::ios::binary);
  const std::uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << std::string(data_bytes, '\0');
  return path;
}

std::string error_reading(const std::string& path) {
  const std::string message = testing::error_of([&] { SafeTensorsReader r(path); });
  std::filesystem::remove(path);
  return message;
}

// Issue 11: overlapping data_offsets and shapes whose byte size wraps to 0 were accepted.
TEST(SafeTensors, RefusesOverlapsGapsAndWrappingShapes) {
  EXPECT_NE(error_reading(raw_file("overlap.safetensors",
                                   R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                   R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12))
                .find("tensor 'b' at bytes [4, 12) overlaps tensor 'a' at [0, 8)"),
            std::string::npos);
  EXPECT_NE(error_reading(raw_file("same.safetensors",
                                   R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                   R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8))
                .find("overlaps"),
            std::string::npos);
  // 2^32 x 2^32 F32 elements: 2^66 bytes, which a 64-bit product wraps to 0.
  EXPECT_NE(error_reading(raw_file("wrap.safetensors",
                                   R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0))
                .find("more elements than fit in 64 bits"),
            std::string::npos);
  EXPECT_NE(error_reading(raw_file("wrap2.safetensors",
                                   R"({"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}})", 0))
                .find("larger than 2^64 bytes"),
            std::string::npos);
  EXPECT_NE(error_reading(raw_file("gap.safetensors", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8))
                .find("leaving bytes [0, 4) of the data section unused"),
            std::string::npos);
  EXPECT_NE(error_reading(raw_file("tail.safetensors", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8))
                .find("bytes after the last tensor"),
            std::string::npos);
  EXPECT_NE(error_reading(raw_file("short.safetensors", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8))
                .find("the file is truncated"),
            std::string::npos);
  for (const char* shape : {"[-1]", "[1.5]", "[\"2\"]", "3"})
    EXPECT_NE(error_reading(raw_file("shape.safetensors",
                                     std::string(R"({"a":{"dtype":"F32","shape":)") + shape + R"(,"data_offsets":[0,4]}})", 4))
                  .find("tensor 'a': shape"),
              std::string::npos)
        << shape;
  EXPECT_NE(error_reading(raw_file("offsets.safetensors", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4))
                .find("two non-negative integers"),
            std::string::npos);
  // Zero-element tensors are fine, wherever they sit.
  const auto ok = raw_file("empty.safetensors",
                           R"({"e":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]},)"
                           R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  SafeTensorsReader r(ok);
  EXPECT_EQ(r.read_f32("e").size(), 0u);
  std::filesystem::remove(ok);
}

TEST(SafeTensors, HeadersAreBoundedJsonAndMessagesDoNotLeakOtherFiles) {
  // A deeply nested __metadata__ crashed every reader (the value was dumped recursively).
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_NE(error_reading(raw_file("deep.safetensors", R"({"__metadata__":{"x":)" + deep + "}}", 0))
                .find("nested deeper than 64"),
            std::string::npos);
  // Any other file: its first 8 bytes are not echoed as a "header length".
  const auto path = temp_path("passwd");
  std::ofstream(path) << "root:x:0:0:root:/root:/bin/bash\n";
  const std::string message = error_reading(path);
  EXPECT_NE(message.find("not a safetensors file"), std::string::npos) << message;
  EXPECT_EQ(message.find("3475222254926655346"), std::string::npos) << message;
}

TEST(SafeTensors, ReadsReferenceGolden) {
  TUNESERVE_REQUIRE_SHARED("goldens/bert/golden.safetensors");
  SafeTensorsReader r(testing::shared_path("goldens/bert/golden.safetensors"));
  EXPECT_EQ(r.info("input_ids").dtype, DType::I64);
  EXPECT_EQ(r.info("logits").shape, (std::vector<std::int64_t>{3, 3}));
  EXPECT_EQ(r.read_i64("input_ids").size(), 36u);
}

}  // namespace
}  // namespace tuneserve
