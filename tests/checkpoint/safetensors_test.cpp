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
  return (std::filesystem::temp_directory_path() / ("tuneserve_" + name)).string();
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

TEST(SafeTensors, ReadsReferenceGolden) {
  TUNESERVE_REQUIRE_SHARED("goldens/bert/golden.safetensors");
  SafeTensorsReader r(testing::shared_path("goldens/bert/golden.safetensors"));
  EXPECT_EQ(r.info("input_ids").dtype, DType::I64);
  EXPECT_EQ(r.info("logits").shape, (std::vector<std::int64_t>{3, 3}));
  EXPECT_EQ(r.read_i64("input_ids").size(), 36u);
}

}  // namespace
}  // namespace tuneserve
