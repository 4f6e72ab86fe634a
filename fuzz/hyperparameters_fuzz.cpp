// libFuzzer target for SageMaker's hyperparameters.json (train/job_env.cpp, train/args.cpp): the
// input is the file in a SageMaker root of its own; the job environment is read from it and the
// hyperparameters applied and checked as `tuneserve train` does. Any exception other than
// tuneserve::Error is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "train/args.h"
#include "train/job_env.h"

using namespace tuneserve;

namespace {

const std::string& root() {
  static const std::string r = [] {
    char path[] = "/tmp/tuneserve_hyperparameters_fuzz_XXXXXX";
    if (!::mkdtemp(path)) std::abort();
    std::filesystem::create_directories(std::string(path) + "/input/config");
    return std::string(path);
  }();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  {
    std::ofstream out(root() + "/input/config/hyperparameters.json", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const train::JobEnv env = train::detect_job_env(root());
    train::TrainArgs args;
    train::apply_job_env(env, args);
    train::finalize_args(args);
    train::args_to_json(args).dump();
  } catch (const Error&) {
  }
  return 0;
}
