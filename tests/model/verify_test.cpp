// `tuneserve verify` end to end: passes on the transformers goldens (logits, hidden states, loss,
// gradients, 4-step trajectory), fails with a non-zero exit on a perturbed reference.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "checkpoint/safetensors.h"
#include "test_util.h"

namespace tuneserve {
namespace {

struct CliRun {
  int code;
  std::string output;
};

CliRun run_verify(const std::string& args) {
  const std::string cmd = testing::binary_path() + " verify " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (pipe && fgets(buf, sizeof buf, pipe)) out += buf;
  const int status = pipe ? pclose(pipe) : -1;
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(Verify, PassesOnEveryGolden) {
  for (const std::string arch : {"distilbert", "bert", "roberta"}) {
    TUNESERVE_REQUIRE_SHARED("goldens/" + arch + "/golden.safetensors");
    const std::string dir = testing::shared_path("goldens/" + arch);
    // The goldens' recipe: AdamW weight decay 0.01, clipping 1.0 (golden.json).
    const CliRun r = run_verify("--model " + dir + " --reference " + dir + "/golden.safetensors --weight-decay 0.01");
    EXPECT_EQ(r.code, 0) << r.output;
    for (const char* key : {"logits ", "hidden_states.2 ", "loss ", "train.step_loss ", "train.grad_norm ",
                            "grad.", "final."})
      EXPECT_NE(r.output.find(key), std::string::npos) << key << "\n" << r.output;
    EXPECT_NE(r.output.find("PASSED"), std::string::npos) << r.output;
  }
}

TEST(Verify, FailsOnAPerturbedReference) {
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/golden.safetensors");
  const std::string dir = testing::shared_path("goldens/distilbert");
  const SafeTensorsReader g(dir + "/golden.safetensors");
  SafeTensorsWriter w;
  for (const char* key : {"input_ids", "attention_mask"}) {
    const auto v = g.read_i64(key);
    w.add_i64(key, g.info(key).shape, v.data());
  }
  auto logits = g.read_f32("logits");
  logits[1] += 1e-3f;
  w.add_f32("logits", g.info("logits").shape, logits.data());
  const auto path = testing::scratch_path("engine_perturbed.safetensors").string();
  w.write(path);
  const CliRun r = run_verify("--model " + dir + " --reference " + path);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("logits"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("FAIL"), std::string::npos) << r.output;
  const CliRun missing = run_verify("--model " + dir + " --reference /nonexistent.safetensors");
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.output.find("/nonexistent.safetensors"), std::string::npos) << missing.output;
}

}  // namespace
}  // namespace tuneserve
