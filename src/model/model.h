// A BERT-family sequence classifier (DistilBERT, BERT, RoBERTa) loaded from a Hugging Face
// directory: eval forward (logits), training forward+backward (loss, every parameter gradient), save.
//
// Dimensions: B sequences in a batch, M tokens in it (core/packed_batch.h), C hidden, NH heads,
// HS head size, L layers, F ffn size, V vocab, P max positions, K num_labels.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/config.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/packed_batch.h"

namespace tuneserve {

// Labels by problem type (see ModelConfig::problem_type; when it is empty transformers infers:
// num_labels == 1 -> regression, integer class ids -> single label, else multi label).
struct Labels {
  const std::int32_t* class_ids = nullptr;  // (B) single_label_classification
  const float* values = nullptr;            // (B, K): multi_label (0/1 targets) or regression (K = 1)
};

// One trainable tensor under its Hugging Face name (e.g. "distilbert.transformer.layer.0.ffn.lin1.weight").
// data and grad are memory of the model's device (Model::device()): host memory for "cpu", GPU memory
// for "cuda" — there, read and write them only through backend_for(model.device()) (kernels/backend.h:
// upload, download, the optimizer entries), never by dereferencing on the host.
struct Parameter {
  std::string name;
  std::vector<std::int64_t> shape;
  float* data = nullptr;   // numel floats, on the model's device
  float* grad = nullptr;   // numel floats, on the model's device; backward accumulates (+=) into it
  std::size_t numel = 0;
  bool weight_decay = true;  // false for biases and LayerNorm weights (Trainer's rule)
};

// What load() did besides a one-to-one name match.
struct LoadReport {
  std::vector<std::string> ignored;      // tensors in the file the classifier does not use (MLM heads...)
  std::vector<std::string> initialized;  // tensors absent from the file, initialised as transformers does
  std::vector<std::string> renamed;      // "file name -> HF name" (legacy gamma/beta, missing prefix)
};

struct ForwardOptions {
  // When set, filled with L+1 tensors (M, C), one row per token of the batch (B x T for a batch kept
  // padded, as transformers returns them): embeddings output, then each layer's output
  // (transformers' `hidden_states`).
  std::vector<std::vector<float>>* hidden_states = nullptr;
  // Polled before each layer: true abandons the pass (forward throws ForwardStopped), so a server
  // stops computing a batch whose every request has timed out or gone.
  std::function<bool()> stop = {};
};

// What forward() throws when ForwardOptions::stop asked it to stop.
class ForwardStopped : public Error {
 public:
  using Error::Error;
};

// Work forward() and forward_backward() skip without changing results beyond float reassociation.
// On by default; off runs the full reference path (tests compare the two, benchmarks time them).
// (Padding is the batch's business: a packed batch runs its real tokens only, end to end, and a
// padded one (PackedBatch::from_padded) the full (B, T) layout; dropout masks are keyed by padded
// position, so both draw the same masks.)
struct EngineOptions {
  // Every classification head reads only its output row (token 0) of each sequence from the last
  // layer, so that layer runs Q, attention output, projection, LN1, FFN and LN2 for those B rows
  // (K and V for all tokens). forward() never prunes when hidden states are requested.
  bool prune_last_layer = true;
};

// The flat gradient buffer (memory of the model's device): the word embeddings' (V, C) rows come
// first, the classification head last; backward fills it from the end towards the start.
struct GradientBuffer {
  float* data = nullptr;          // (total)
  std::size_t total = 0;
  std::size_t word_rows = 0;      // V: rows of the word embeddings at data[0 .. V*C)
  std::size_t width = 0;          // C
};

struct LoadOptions {
  std::uint64_t init_seed = 42;       // for tensors absent from the file (a new classification head)
  std::vector<std::string> labels;    // non-empty: use these label names (num_labels) instead of the config's
  std::string problem_type;           // non-empty: override the config's problem_type
  Device device;                      // where the weights live and the kernels run (see Parameter)
  DType dtype = DType::F32;           // what the products compute in (Model::set_compute_dtype)

  bool check_finite = true;           // refuse a checkpoint holding NaN or Inf (it would answer NaN)
  // With `labels`: a classifier tensor of another shape than the new num_labels gives is created
  // anew (and reported as initialised) instead of being an error, as transformers'
  // from_pretrained(num_labels=K, ignore_mismatched_sizes=True) does when fine-tuning on a new task.
  bool new_head_on_mismatch = false;
};

class Model {
 public:
  // Loads `dir`/config.json and `dir`/model.safetensors (or model.safetensors.index.json shards).
  // Tensors absent from the file that transformers would create (classification head, pooler) are
  // initialised normal(0, initializer_range) / zero bias and listed in the report.
  static Model load(const std::string& dir, LoadReport* report = nullptr, const LoadOptions& options = {});
  // Random weights as transformers initialises them (for benchmarks and tests), on `device`.
  static Model from_config(const ModelConfig& config, std::uint64_t init_seed = 42, const Device& device = {});

  Model();
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  const ModelConfig& config() const;
  // Where the weights live and forward/backward run (LoadOptions::device).
  const Device& device() const;
  // For label names / label2id / problem_type edits only: num_labels must not change (the head's
  // shape is fixed at load; pass LoadOptions::labels instead).
  ModelConfig& mutable_config();

  // OpenMP/oneDNN threads used by forward/backward on the calling thread (OpenMP keeps the count
  // per thread: threads started later get the runtime default, all cores).
  static void set_num_threads(int n);
  // Ends the OpenMP threads that the calling thread's parallel regions started (its next region
  // starts them again). libgomp counts them all, process-wide, and once there are more than CPUs
  // its threads spin only ~100 times at a barrier before sleeping in the kernel: a server's batch
  // worker then slept and woke at most barriers of its forward pass, because the thread that
  // loaded the model kept its idle team.
  static void release_threads();

  // Eval-mode forward: logits (B, K) on the host (the batch is host memory too; it is uploaded per
  // call). Throws Error for ids outside [0, V), a sequence longer than the positions, etc.
  // Safe to call from several threads at once (activations are per call).
  std::vector<float> forward(const PackedBatch& batch, const ForwardOptions& options = {}) const;

  // Packs the inference weights now (in compute_dtype()), as the first forward() after a weight
  // change would: a server does it at load, so its first request does not pay it (~0.4 s for
  // distilbert-base in bf16 on 2 cores).
  void prepare_inference() const;
  bool inference_prepared() const;  // packed, and no weight change since

  // The activation memory (bytes) one forward() of `tokens` real tokens in all, in sequences of at
  // most `longest` tokens, takes at most, for sizing how many passes may run at once: what its arena
  // may hold after passes of up to that size, growth included.
  std::size_t inference_bytes(int tokens, int longest) const;
  // The activation memory the arenas kept between forward() calls hold now.
  std::size_t arena_bytes() const;
  // From now on at most `n` forward() calls run at once: activation memory kept warm for more (one
  // arena per concurrent call, as large as its largest batch) is freed, now and as calls end.
  void set_concurrent_forwards(std::size_t n) const;

  // Loss as transformers computes it for host `logits` (B, K) and host labels, on the CPU whatever
  // the device: mean cross-entropy, mean BCE-with-logits, or mean squared error, chosen by
  // problem_type (or inferred from which label field is set).
  float loss(const float* logits, int B, const Labels& labels) const;

  // ---- training ----
  std::vector<Parameter>& parameters();
  void zero_grad();
  // Training-mode forward (dropout on unless disabled) + backward. Gradients of loss*grad_scale
  // are ADDED to each Parameter::grad. Returns the (unscaled) loss; logits (host) written if non-null.
  // Batch and labels are host memory.
  float forward_backward(const PackedBatch& batch, const Labels& labels, float grad_scale = 1.0f,
                         std::vector<float>* logits = nullptr);
  // Dropout stream: a counter-based RNG keyed by seed; each forward_backward consumes one
  // offset, so restoring (seed, offset) resumes the exact stream.
  void set_dropout(std::uint64_t seed, std::uint64_t offset = 0);
  std::uint64_t dropout_offset() const;
  void set_dropout_enabled(bool enabled);  // false: training forward without dropout
  // Not while another call on this model runs.
  void set_engine_options(const EngineOptions& options);
  const EngineOptions& engine_options() const;
  // Call after changing Parameter::data outside forward_backward (optimizer step, restoring a
  // checkpoint), so the next forward() repacks its inference weights (and bf16 training rounds its
  // weight copies again).
  void mark_weights_changed();

  // What the encoder's matrix products compute in: F32 (default), or BF16 operands with fp32
  // accumulation. forward(): the weights are packed once as bf16. forward_backward(): mixed
  // precision, as torch.autocast does it: the fp32 parameters stay the master weights (saved,
  // updated by the optimizer), their bf16 copies are rounded once per weight change, activations
  // are rounded per product, and gradients come out fp32. Embeddings, LayerNorm, softmax, GELU,
  // the classification head and the loss stay fp32. Error when the device has no bf16 products
  // (a CPU without AVX512-BF16). Not while another call on this model runs.
  void set_compute_dtype(DType dtype);
  DType compute_dtype() const;

  // ---- data-parallel training (train/distributed.h sums gradients across ranks while backward runs)
  // Every Parameter::grad lies in this one buffer, in parameters() order.
  GradientBuffer gradient_buffer();
  // Called during forward_backward's backward each time more gradients are final: floats [from,
  // total) of gradient_buffer() do not change again in this call (on a GPU: the kernels that write
  // them are queued on the device's stream). `from` decreases call by call (the head, each layer from
  // the last, the embedding LayerNorm) and is 0 at the end. An empty function removes the hook.
  void set_gradient_ready_hook(std::function<void(std::size_t from)> hook);

  // Writes dir/config.json and dir/model.safetensors under transformers' names (weights downloaded
  // from the device).
  void save(const std::string& dir) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tuneserve
