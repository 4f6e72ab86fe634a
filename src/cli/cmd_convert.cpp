// `tuneserve convert --model DIR|HUB_ID [--output DIR]`: writes model.safetensors from a model's
// pytorch_model.bin (or its shards), each tensor in its own dtype, read by the restricted unpickler
// (checkpoint/torch_pickle.h: nothing in the file runs). config.json and the tokenizer files are
// copied when --output is another directory.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "checkpoint/tensor_file.h"
#include "cli/command.h"
#include "core/error.h"
#include "storage/resolve.h"
#include "train/trainer.h"

namespace tuneserve::cli {
namespace {

namespace fs = std::filesystem;

struct ConvertArgs {
  std::string model, revision = "main", output;
};

int run(const ConvertArgs& a) {
  const std::string dir = storage::resolve_model(a.model, "", {a.revision}).model;
  const std::string out_dir = a.output.empty() ? dir : a.output;
  fs::create_directories(out_dir);
  SafeTensorsWriter writer;
  std::size_t count = 0, bytes = 0;
  for (const std::string& file : checkpoint_files(dir, true)) {
    const std::unique_ptr<TensorFile> in = open_tensor_file(file);
    for (const TensorInfo& t : in->tensors()) {
      const std::vector<std::uint8_t> data = in->read_bytes(t.name);
      writer.add_raw(t.name, t.dtype, t.shape, data.data());
      ++count;
      bytes += data.size();
    }
  }
  writer.set_metadata("format", "pt");  // what transformers writes and checks for
  const std::string target = (fs::path(out_dir) / "model.safetensors").string();
  writer.write(target);
  if (fs::weakly_canonical(out_dir) != fs::weakly_canonical(dir)) {
    fs::copy_file(fs::path(dir) / "config.json", fs::path(out_dir) / "config.json", fs::copy_options::overwrite_existing);
    train::copy_tokenizer_files(dir, out_dir);
  }
  std::printf("%s: %zu tensors, %.1f MB\n", target.c_str(), count, bytes / 1e6);
  return 0;
}

const Registration registration{Command{
    "convert", "Write model.safetensors from a pytorch_model.bin (read safely: nothing in it runs)",
    [](CLI::App& app) -> std::function<int()> {
      auto a = std::make_shared<ConvertArgs>();
      app.add_option("--model", a->model, "Model directory or Hub id with pytorch_model.bin")->required();
      app.add_option("--revision", a->revision, "Hub branch, tag or commit of --model")->capture_default_str();
      app.add_option("--output", a->output, "Directory for model.safetensors (default: the model directory)");
      return [a] { return run(*a); };
    }}};

}  // namespace
}  // namespace tuneserve::cli
