// Training throughput of a DistilBERT-family classifier: full training steps (training forward with
// dropout, backward, grad-norm clip, AdamW) timed on the same batches the PyTorch peer
// (bench/torch_train.py) runs. Driven by bench/train_throughput.sh, which prints the ratio.
//
// Dimensions: B batch, T tokens (padded per batch), K batches per scenario.
//   bench_train_throughput batches MODEL_DIR OUT.safetensors [--batch 8] [--tokens 128] [--count K]
//       writes the scenarios: "fixed.{k}.*" random ids, B x T, no padding; "amazon.{k}.*" B random
//       rows of ../shared/data/amazon_polarity/train.jsonl (cased tokenizer, truncation 512), padded
//       to the batch's longest. Each batch: input_ids, attention_mask (B, T), labels (B).
//   bench_train_throughput run MODEL_DIR BATCHES.safetensors [--threads 2] [--dtype fp32|bf16]
//       one JSON line: {"dtype", "parity_loss", "runs": [{"scenario", "steps", "ms", "cpu_ms", "samples_per_s", "tokens"}]}
//       --dtype bf16: train --bf16's mixed precision (Model::set_compute_dtype); parity_loss stays fp32's.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "core/error.h"
#include "data/prep.h"
#include "bench_util.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "train/optimizer.h"

namespace {

using namespace tuneserve;

using bench::median;
using bench::process_cpu_seconds;

struct HostBatch {
  int B = 0, T = 0;
  std::vector<std::int32_t> ids, mask, labels;
  PackedBatch view() const { return PackedBatch::from_padded(B, T, ids.data(), mask.data(), nullptr); }
};

void add_batch(SafeTensorsWriter& w, const std::string& prefix, const HostBatch& b) {
  std::vector<std::int64_t> ids(b.ids.begin(), b.ids.end()), mask(b.mask.begin(), b.mask.end()),
      labels(b.labels.begin(), b.labels.end());
  w.add_i64(prefix + ".input_ids", {b.B, b.T}, ids.data());
  w.add_i64(prefix + ".attention_mask", {b.B, b.T}, mask.data());
  w.add_i64(prefix + ".labels", {b.B}, labels.data());
}

std::vector<HostBatch> read_batches(const SafeTensorsReader& r, const std::string& scenario) {
  std::vector<HostBatch> out;
  for (int k = 0;; k++) {
    const std::string p = scenario + "." + std::to_string(k);
    if (!r.contains(p + ".input_ids")) break;
    HostBatch b;
    b.B = static_cast<int>(r.info(p + ".input_ids").shape[0]);
    b.T = static_cast<int>(r.info(p + ".input_ids").shape[1]);
    for (auto v : r.read_i64(p + ".input_ids")) b.ids.push_back(static_cast<std::int32_t>(v));
    for (auto v : r.read_i64(p + ".attention_mask")) b.mask.push_back(static_cast<std::int32_t>(v));
    for (auto v : r.read_i64(p + ".labels")) b.labels.push_back(static_cast<std::int32_t>(v));
    out.push_back(std::move(b));
  }
  if (out.empty()) fail("{}: no batches for scenario {}", r.path(), scenario);
  return out;
}

int write_batches(const std::string& model_dir, const std::string& out, int B, int T, int count) {
  const ModelConfig config = load_config(model_dir);
  std::mt19937 rng(1234);
  SafeTensorsWriter w;
  for (int k = 0; k < count; k++) {
    HostBatch b{B, T, {}, std::vector<std::int32_t>(static_cast<std::size_t>(B) * T, 1), {}};
    for (int i = 0; i < B * T; i++) b.ids.push_back(1 + static_cast<std::int32_t>(rng() % static_cast<unsigned>(config.vocab_size - 1)));
    for (int i = 0; i < B; i++) b.labels.push_back(static_cast<std::int32_t>(rng() % 2));
    add_batch(w, "fixed." + std::to_string(k), b);
  }
  const std::string tok_dir = std::string(TUNESERVE_SHARED_DIR) + "/tokenizers/bert-base-cased";
  const Tokenizer tokenizer = Tokenizer::from_dir(tok_dir);
  data::PrepOptions o;
  o.read.files = {std::string(TUNESERVE_SHARED_DIR) + "/data/amazon_polarity/train.jsonl"};
  o.read.text_columns = {"content"};
  o.read.label_column = "label";
  o.max_length = std::min(512, config.max_position_embeddings);
  const data::Prepared p = data::prepare(o, data::tokenizer_encoder(tokenizer, tok_dir, o.max_length));
  std::uniform_int_distribution<std::int64_t> row(0, static_cast<std::int64_t>(p.train.size()) - 1);
  long tokens = 0;
  for (int k = 0; k < count; k++) {
    std::vector<std::int64_t> rows;
    for (int i = 0; i < B; i++) rows.push_back(row(rng));
    // The peer takes padded (B, T) batches: pad each to its longest row.
    const data::LabeledBatch db = p.train.batch(rows);
    const PackedBatch& pb = db.tokens;
    const int T = pb.padded_length;
    HostBatch b{B, T, std::vector<std::int32_t>(static_cast<std::size_t>(B) * T, 0),
                std::vector<std::int32_t>(static_cast<std::size_t>(B) * T, 0), db.labels};
    for (int i = 0; i < B; i++)
      for (int t = 0; t < pb.length(i); t++) {
        b.ids[static_cast<std::size_t>(i) * T + t] = pb.input_ids[static_cast<std::size_t>(pb.cu_seqlens[i]) + t];
        b.mask[static_cast<std::size_t>(i) * T + t] = 1;
      }
    tokens += static_cast<long>(pb.tokens());
    add_batch(w, "amazon." + std::to_string(k), b);
  }
  w.write(out);
  std::fprintf(stderr, "wrote %d fixed %dx%d batches and %d Amazon batches of %d rows (mean %.1f real tokens per row) to %s\n",
               count, B, T, count, B, static_cast<double>(tokens) / (count * B), out.c_str());
  return 0;
}

int run(const std::string& model_dir, const std::string& batches_path, int threads, const std::string& dtype_name) {
  Model::set_num_threads(threads);
  const DType dtype = parse_compute_dtype(dtype_name);
  Model model = Model::load(model_dir);
  const SafeTensorsReader r(batches_path);
  nlohmann::json out;
  out["threads"] = threads;
  out["dtype"] = compute_dtype_name(dtype);
  {  // Same weights, same first batch, no dropout: the loss must agree with the peer's.
    const std::vector<HostBatch> fixed = read_batches(r, "fixed");
    model.set_dropout_enabled(false);
    Labels l;
    l.class_ids = fixed[0].labels.data();
    std::vector<float> logits = model.forward(fixed[0].view());
    out["parity_loss"] = model.loss(logits.data(), fixed[0].B, l);
    model.set_dropout_enabled(true);
  }
  model.set_compute_dtype(dtype);
  std::vector<train::ParamRef> refs;
  for (Parameter& p : model.parameters()) refs.push_back({p.name, p.data, p.grad, p.numel});
  train::AdamW optimizer(refs, train::AdamWOptions{0.9, 0.999, 1e-8, 0.01});
  model.set_dropout(0, 0);
  out["runs"] = nlohmann::json::array();
  for (const char* scenario : {"fixed", "amazon"}) {
    const std::vector<HostBatch> batches = read_batches(r, scenario);
    std::vector<double> wall, cpu;
    long tokens = 0;
    double flops = 0;  // of the real tokens (the padding is never computed)
    for (std::size_t k = 0; k < batches.size(); k++) {
      const auto t0 = std::chrono::steady_clock::now();
      const double c0 = process_cpu_seconds();
      model.zero_grad();
      Labels l;
      l.class_ids = batches[k].labels.data();
      model.forward_backward(batches[k].view(), l);
      optimizer.step(1e-5, train::clip_coefficient(optimizer.grad_norm(), 1.0));
      model.mark_weights_changed();
      if (k == 0) continue;  // warm-up: first touch of activations and optimizer state
      wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      cpu.push_back(process_cpu_seconds() - c0);
      tokens += static_cast<long>(batches[k].B) * batches[k].T;
      const PackedBatch packed = batches[k].view();
      for (int i = 0; i < packed.size(); i++) flops += 3.0 * bench::encoder_flops(model.config(), packed.length(i));
    }
    const double s = median(wall);
    out["runs"].push_back({{"scenario", scenario}, {"steps", wall.size()}, {"batch", batches[0].B},
                           {"mean_padded_tokens", static_cast<double>(tokens) / static_cast<double>(wall.size() * batches[0].B)},
                           {"ms", s * 1e3}, {"cpu_ms", median(cpu) * 1e3}, {"samples_per_s", batches[0].B / s},
                           {"gflops", flops / static_cast<double>(wall.size()) / s / 1e9}});
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

int main_impl(int argc, char** argv) {
  const std::string usage = "usage: bench_train_throughput batches MODEL_DIR OUT [--batch B] [--tokens T] [--count K]\n"
                            "       bench_train_throughput run MODEL_DIR BATCHES [--threads N] [--dtype fp32|bf16]\n";
  if (argc < 4) {
    std::fputs(usage.c_str(), stderr);
    return 2;
  }
  const std::string mode = argv[1];
  int B = 8, T = 128, count = 6, threads = 2;
  std::string dtype = "fp32";
  bench::parse_flags(argc, argv, 4, {{"--batch", {&B}}, {"--tokens", {&T}}, {"--count", {&count}}, {"--threads", {&threads}},
                                     {"--dtype", {.text = &dtype}}});
  if (mode == "batches") return write_batches(argv[2], argv[3], B, T, count);
  if (mode == "run") return run(argv[2], argv[3], threads, dtype);
  std::fputs(usage.c_str(), stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return main_impl(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_train_throughput: %s\n", e.what());
    return 1;
  }
}
