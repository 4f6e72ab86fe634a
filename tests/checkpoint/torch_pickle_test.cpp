// pytorch_model.bin read by the restricted unpickler, on files written by PyTorch itself (Debian's
// python3-torch, tests/checkpoint/write_torch_checkpoints.py): fp32, fp16, views into shared
// storages, non-contiguous strides, Parameters, the legacy format; the same tensors and logits as
// the safetensors files; hostile files refused with the reason; `tuneserve convert`.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "checkpoint/tensor_file.h"
#include "checkpoint/torch_pickle.h"
#include "hub/cache.h"
#include "model/model.h"
#include "test_util.h"

namespace tuneserve {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::error_of;
using testing::run_command;
using testing::shared_path;

const char* kArchs[] = {"distilbert", "bert", "roberta"};

class TorchCheckpointTest : public ::testing::Test {
 protected:
  // The files are made once per build folder (ctest runs each test in its own process) and again
  // when the script changes; a lock keeps parallel test processes from making them twice.
  static void SetUpTestSuite() {
    std::string out;
    if (run_command("/usr/bin/python3 -c 'import torch, numpy'", out) != 0) {
      why_ = "Debian's python3-torch (/usr/bin/python3) is missing: " + out;
      return;
    }
    root_ = fs::read_symlink("/proc/self/exe").parent_path() / "torch-checkpoints";
    const hub::FileLock lock(root_.string() + ".lock");
    const std::string script = std::string(TUNESERVE_SOURCE_DIR) + "/tests/checkpoint/write_torch_checkpoints.py";
    const std::string stamp = std::to_string(fs::last_write_time(script).time_since_epoch().count());
    std::string done;
    std::getline(std::ifstream(root_ / "done"), done);
    if (done == stamp) return;
    fs::remove_all(root_);
    for (const char* arch : kArchs) {
      if (!fs::exists(shared_path(std::string("goldens/") + arch))) continue;
      const std::string cmd = fmt::format("/usr/bin/python3 {} {} {}{}", script, shared_path(std::string("goldens/") + arch),
                                          (root_ / arch).string(), std::string(arch) == "bert" ? " --hostile" : "");
      if (run_command(cmd, out) != 0) {
        failed_ = "write_torch_checkpoints.py failed: " + out;
        return;
      }
    }
    std::ofstream(root_ / "done") << stamp;
  }
  void SetUp() override {
    TUNESERVE_REQUIRE_SHARED("goldens/distilbert/model.safetensors");
    if (!why_.empty()) GTEST_SKIP() << why_;
    ASSERT_EQ(failed_, "");
  }
  static std::string dir(const std::string& arch, const std::string& c) { return (root_ / arch / c).string(); }

  static inline fs::path root_;
  static inline std::string why_, failed_;
};

std::vector<float> logits(const std::string& model_dir) {
  const Model model = Model::load(model_dir);
  const std::vector<std::int32_t> ids = {2, 17, 33, 8, 9, 3, 2, 9, 41, 3, 0, 0};
  const std::vector<std::int32_t> mask = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
  return model.forward(PackedBatch::from_padded(2, 6, ids.data(), mask.data(), nullptr));
}

TEST_F(TorchCheckpointTest, SameTensorsAsTheSafetensorsFile) {
  for (const char* arch : kArchs) {
    const auto golden = open_tensor_file(shared_path(std::string("goldens/") + arch + "/model.safetensors"));
    for (const char* c : {"fp32", "shared", "legacy"}) {
      SCOPED_TRACE(std::string(arch) + "/" + c);
      const auto bin = open_torch_checkpoint(dir(arch, c) + "/pytorch_model.bin");
      for (const TensorInfo& t : golden->tensors()) {
        ASSERT_TRUE(bin->contains(t.name)) << t.name;
        EXPECT_EQ(bin->info(t.name).shape, t.shape) << t.name;
        if (is_floating(t.dtype)) {
          EXPECT_EQ(bin->read_f32(t.name), golden->read_f32(t.name)) << t.name;
        }
      }
    }
    // The tied duplicate shares a storage with the first tensor and reads the same.
    const auto shared = open_torch_checkpoint(dir(arch, "shared") + "/pytorch_model.bin");
    const auto tied = std::find_if(shared->tensors().begin(), shared->tensors().end(),
                                   [](const TensorInfo& t) { return t.name.starts_with("tied."); });
    ASSERT_NE(tied, shared->tensors().end());
    EXPECT_EQ(shared->read_f32(tied->name), golden->read_f32(tied->name.substr(5)));
  }
}

TEST_F(TorchCheckpointTest, BinOnlyModelsGiveTheSafetensorsLogits) {
  for (const char* arch : kArchs) {
    SCOPED_TRACE(arch);
    const std::vector<float> expected = logits(shared_path(std::string("goldens/") + arch));
    for (const char* c : {"fp32", "shared", "legacy"}) EXPECT_EQ(logits(dir(arch, c)), expected) << c;
    // fp16 weights: the same logits as a safetensors file holding the same fp16 values.
    EXPECT_EQ(logits(dir(arch, "fp16")), logits(dir(arch, "fp16-twin")));
    EXPECT_EQ(open_torch_checkpoint(dir(arch, "fp16") + "/pytorch_model.bin")->tensors().front().dtype, DType::F16);
  }
}

TEST_F(TorchCheckpointTest, HostileFilesAreRefusedWithTheReason) {
  const std::pair<const char*, const char*> cases[] = {
      {"os_system.bin", "GLOBAL os.system is not allowed"},
      {"eval.bin", "GLOBAL builtins.eval is not allowed"},
      {"reduce_value.bin", "torch.float32 is allowed by torch.load(weights_only=True) but tuneserve does not read it"},
      {"reduce_str.bin", "REDUCE of a str"},
      {"stack_global.bin", "opcode 0x93 is not one torch.load(weights_only=True) accepts"},
      {"truncated.bin", "not a readable zip"},
      {"short_storage.bin", "announces 4096 elements, its entry holds 100 bytes"},
      {"out_of_bounds.bin", "reaches element 65535 of a storage of 4096"},
      {"deep.bin", "nesting deeper than 1000"},
      {"zip_bomb.bin", "inflate to more than"},
      {"legacy_system.bin", "GLOBAL posix.system is not allowed"},
  };
  for (const auto& [file, reason] : cases) {
    const std::string path = (root_ / "bert/hostile" / file).string();
    EXPECT_THAT(error_of([&] { open_torch_checkpoint(path); }), ::testing::AllOf(HasSubstr(path), HasSubstr(reason)))
        << file;
  }
  // Truncated pickles inside an otherwise valid zip: every prefix of a real data.pkl is refused.
  const fs::path h = fs::temp_directory_path() / fmt::format("tuneserve-torch-cut-{}", ::getpid());
  fs::create_directories(h);
  std::string out;
  ASSERT_EQ(run_command(fmt::format("cd {} && /usr/bin/python3 -c \"import zipfile\n"
                                    "z = zipfile.ZipFile('{}')\n"
                                    "n = [x for x in z.namelist() if x.endswith('data.pkl')][0]\n"
                                    "p = z.read(n)\n"
                                    "for i in range(0, len(p), max(1, len(p) // 40)):\n"
                                    "    with zipfile.ZipFile('cut%d.bin' % i, 'w') as o: o.writestr('a/data.pkl', p[:i])\"",
                                    h.string(), dir("bert", "fp32") + "/pytorch_model.bin"),
                        out),
            0)
      << out;
  int refused = 0;
  for (const auto& e : fs::directory_iterator(h)) {
    if (!e.path().filename().string().starts_with("cut")) continue;
    EXPECT_THAT(error_of([&] { open_torch_checkpoint(e.path().string()); }), HasSubstr("refused")) << e.path();
    ++refused;
  }
  EXPECT_GE(refused, 20);
  fs::remove_all(h);
}

TEST_F(TorchCheckpointTest, ConvertWritesSafetensorsInTheOriginalDtype) {
  const std::string out_dir = (fs::temp_directory_path() / fmt::format("tuneserve-converted-{}", ::getpid())).string();
  std::string out;
  ASSERT_EQ(run_command(fmt::format("{} convert --model {} --output {}", TUNESERVE_BINARY, dir("distilbert", "fp16"), out_dir),
                        out),
            0)
      << out;
  const SafeTensorsReader converted(out_dir + "/model.safetensors");
  EXPECT_EQ(converted.info(converted.tensors().front().name).dtype, DType::F16);
  EXPECT_TRUE(fs::exists(out_dir + "/config.json"));
  EXPECT_EQ(logits(out_dir), logits(dir("distilbert", "fp16-twin")));
  fs::remove_all(out_dir);
  EXPECT_EQ(run_command(fmt::format("{} convert --model {}", TUNESERVE_BINARY, shared_path("goldens/distilbert")), out), 1);
  EXPECT_THAT(out, HasSubstr("no pytorch_model.bin"));
}

// The "done when": a .bin-only model predicts what its safetensors twin predicts.
TEST_F(TorchCheckpointTest, PredictWithABinOnlyModel) {
  TUNESERVE_REQUIRE_SHARED("models/distilbert-tiny-init/model.safetensors");
  const fs::path tiny = fs::temp_directory_path() / fmt::format("tuneserve-tiny-bin-{}", ::getpid());
  std::string out;
  ASSERT_EQ(run_command(fmt::format("/usr/bin/python3 {}/tests/checkpoint/write_torch_checkpoints.py {} {} --fp32-only",
                                    TUNESERVE_SOURCE_DIR, shared_path("models/distilbert-tiny-init"), tiny.string()),
                        out),
            0)
      << out;
  const std::string texts = "'This is a very good product!' 'Terrible, it broke after a day.'";
  std::string from_bin, from_safetensors;
  ASSERT_EQ(run_command(fmt::format("{} predict --model {} --tokenizer {} --top-k all {} 2>/dev/null", TUNESERVE_BINARY,
                                    (tiny / "fp32").string(), shared_path("tokenizers/bert-base-cased"), texts),
                        from_bin),
            0)
      << from_bin;
  ASSERT_EQ(run_command(fmt::format("{} predict --model {} --tokenizer {} --top-k all {} 2>/dev/null", TUNESERVE_BINARY,
                                    shared_path("models/distilbert-tiny-init"), shared_path("tokenizers/bert-base-cased"),
                                    texts),
                        from_safetensors),
            0);
  EXPECT_THAT(from_bin, HasSubstr("\"score\""));
  EXPECT_EQ(from_bin, from_safetensors);
  fs::remove_all(tiny);
}

}  // namespace
}  // namespace tuneserve
