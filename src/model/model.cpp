// BERT-family classifier on any Backend (CPU, CUDA): weights by Hugging Face name in one flat device
// buffer, a forward that is a straight list of kernel calls per layer, and a backward that is the
// same list reversed. Every kernel, copy and add goes through the model's Backend; the host only
// checks the PackedBatch, builds token inputs (uploaded per call) and receives logits, hidden states
// and the loss.
//
// Dimensions: B sequences, T padded length, M tokens in the batch (B*T padded, or the real ones packed),
// C hidden, NH heads, F ffn, L layers, V vocab, P positions, K labels.
//
// All three architectures are post-LayerNorm encoders with the same dataflow per layer:
//   qkv = x Wqkv^T + b;  a = attention(qkv);  r1 = x + drop(a Wo^T + b);  h = LN1(r1)
//   f = gelu(h W1^T + b1);  r2 = h + drop(f W2^T + b2);  y = LN2(r2)
// (DistilBERT has no dropout after the attention projection.) Heads differ only in which
// activation and where the dropouts sit (see HeadSpec).
#include "model/model.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <set>

#include "checkpoint/safetensors.h"
#include "core/error.h"
#include "core/rng.h"
#include "kernels/backend.h"
#include "kernels/cpu/loss.h"
#include "kernels/ops.h"
#include "model/weights.h"

namespace fs = std::filesystem;

namespace tuneserve {

namespace {

// One layer's activations. Training keeps L of them; inference reuses one. R rows after the
// attention: M, or B (each sequence's first token) in a pruned last layer.
struct LayerActs {
  float* x;         // (M, C) layer input (not owned: the previous layer's ln2 or the embeddings)
  float* qkv;       // (M, 3C); pruned last layer: Q columns written at the first tokens only
  float* att;       // softmax probabilities (training only), per attention call (B, NH, Tq, T)
  float* atty;      // (R, C) attention output before the projection
  float* ao;        // (R, C) attention projection (before dropout)
  float* res1;      // (R, C) x + drop(ao)
  float* ln1;       // (R, C)
  float* ln1_mean;  // (R)
  float* ln1_rstd;  // (R)
  float* fch;       // (R, F) before GELU
  float* fcg;       // (R, F) after GELU (training: one buffer for all layers, rebuilt in backward)
  float* cdf;       // (R, F) training: Phi(fch), so backward evaluates no erf
  float* fo;        // (R, C) second FFN linear (before dropout)
  float* res2;      // (R, C) ln1 + drop(fo)
  float* ln2;       // (R, C) layer output
  float* ln2_mean;  // (R)
  float* ln2_rstd;  // (R)
  // With bf16 products, this layer's product operands rounded once. Training: in forward, read again
  // by backward (dW = dout^T inp); fcg16 is shared by all layers like fcg (rebuilt in backward).
  // Inference: written by the kernel before each product (x16: by the previous layer's second
  // LayerNorm); fcg16 unused (fcg holds GELU's bf16 output).
  Bf16* x16;        // (M, C)
  Bf16* atty16;     // (R, C)
  Bf16* ln1_16;     // (R, C)
  Bf16* fcg16;      // (R, F)
};

// bf16 copies of one layer's weight matrices (training with bf16 products), rounded from the fp32
// master weights once per weight change.
struct LayerWeights16 {
  Bf16* qkv_w;       // (3C, C)
  Bf16* attn_out_w;  // (C, C)
  Bf16* fc_w;        // (F, C)
  Bf16* proj_w;      // (C, F)
};

// Reusable uninitialised device memory: repeated forwards reuse warm pages instead of faulting in
// and zeroing hundreds of MB each time. Every kernel writes its outputs before they are read.
class Arena {
 public:
  void* reserve(const Backend& backend, std::size_t bytes) {
    if (bytes > buffer_.bytes() || backend_ != &backend) {
      // Growing by a quarter at least: a server's passes bring slightly larger token totals one
      // after another, and each regrowth faults the whole buffer in again (measured at c=32 in the
      // server: passes of ~75 ms took 130-157 ms at each new largest total, in 4 KiB pages).
      const std::size_t grown = backend_ == &backend ? grown_from(buffer_.bytes()) : 0;
      buffer_ = DeviceBuffer();  // free first: device memory may not hold both
      buffer_ = DeviceBuffer(backend, std::max(bytes, grown));
      backend_ = &backend;
    }
    return buffer_.data();
  }
  std::size_t bytes() const { return buffer_.bytes(); }
  // What a regrowth from `bytes` reserves at least; so an arena that served passes of up to N bytes
  // holds at most grown_from(N).
  static std::size_t grown_from(std::size_t bytes) { return bytes + bytes / 4; }

 private:
  const Backend* backend_ = nullptr;
  DeviceBuffer buffer_;
};

struct Acts {
  // Token inputs on the device (upload_tokens): ids, pos, types (M) and, in the padded layout
  // only, the attention mask (B, T); null in the packed layout (every packed token is real).
  std::int32_t* tokens;
  const std::int32_t *ids, *pos, *types, *mask;
  float* emb;        // (M, C) word + position (+ type)
  float* emb_ln;     // (M, C)
  float* emb_mean;   // (M)
  float* emb_rstd;   // (M)
  float* emb_out;    // (M, C) after dropout
  std::vector<LayerActs> layers;
  float* last_x;     // (B, C) pruned last layer: its input at each first token (the residual)
  Bf16* last_x16;    // (B, C) its bf16 copy (training with bf16 products)
  float* last_q;     // (B, C) pruned last layer: Q of each first token
  float* cls_in;     // (B, C) hidden state of each row's first token
  float* head_a;     // (B, C) after the head's first dropout
  float* head_pre;   // (B, C) dense output
  float* head_act;   // (B, C) after tanh / relu
  float* head_b;     // (B, C) after the second dropout
  float* logits;     // (B, K)
  // Training only: the labels on the device and the loss gradient.
  std::int32_t* class_ids;  // (B) single-label targets
  float* targets;           // (B, K) multi-label / regression targets
  float* dlogits;           // (B, K)
};

// Dropout sites: one stream per (step, site) so every mask is independent and regenerable.
constexpr std::uint64_t kSiteEmbedding = 0, kSiteHeadA = 1, kSiteHeadB = 2;
std::uint64_t site_layer(int l, int which) { return 8 + static_cast<std::uint64_t>(l) * 4 + which; }

struct DropoutPlan {
  bool on = false;
  std::uint64_t seed = 0;
  std::uint64_t step = 0;
  DropoutKey key(std::uint64_t site) const { return {seed, (step << 20) | site}; }
};

// Where the dropouts and which activation the classification head has.
struct HeadSpec {
  float p_before_dense;  // RoBERTa drops the [CLS] state before its dense layer
  float p_after_act;
  bool tanh;             // BERT pooler / RoBERTa dense: tanh; DistilBERT pre_classifier: ReLU
};

HeadSpec head_spec(const ModelConfig& c) {
  switch (c.arch) {
    case Arch::DistilBert: return {0.0f, c.classifier_dropout, false};
    case Arch::Bert: return {0.0f, c.classifier_dropout, true};
    case Arch::Roberta: return {c.classifier_dropout, c.classifier_dropout, true};
  }
  return {0.0f, 0.0f, true};
}

// Which token rows the encoder runs and where they sit in the padded (B, T) batch. Every dropout
// mask and attention-probability mask is keyed by the padded position, so the packed layout draws
// the same bits as the padded one.
struct Layout {
  int B = 0, T = 0;
  int M = 0;                          // token rows run: B*T padded, or the real tokens packed
  // Rows the inference activations that prepared products read and write hold (>= M): the backend's
  // prepared_rows(M), so that those products run one of a few row counts. M in training.
  int held = 0;
  bool packed = false;                // sequence b at rows offsets[b] .. offsets[b] + lengths[b]
  std::vector<int> offsets, lengths;
  std::vector<int> out_rows;          // (B) the row the head reads of each sequence (PackedBatch::output_rows)
  // When every output row is its sequence's first token, after its K and V the last layer runs
  // only those B rows (Q, attention output, projection, LN1, FFN, LN2).
  bool prune_last = false;
  int first_seq = 0;                  // sequence 0's row in the padded batch the masks follow (PackedBatch::sequence_offset)

  bool pruned(int layer, int L) const { return prune_last && layer == L - 1; }
  // Where sequence b's token 0 sits in that padded batch (its first dropout index, in tokens).
  std::size_t padded_row(int b) const { return static_cast<std::size_t>(first_seq + b) * T; }
  std::size_t first_row(int b) const { return packed ? offsets[b] : static_cast<std::size_t>(b) * T; }
  bool outputs_are_first_tokens() const {
    for (int b = 0; b < B; ++b)
      if (static_cast<std::size_t>(out_rows[b]) != first_row(b)) return false;
    return true;
  }
};

// A run of `count` consecutive rows starting at `row` whose padded position starts at `padded_row`.
struct RowRun {
  std::size_t row, count, padded_row;
};

// The token rows as runs: one in the padded layout, one per sequence packed.
std::vector<RowRun> token_runs(const Layout& lay) {
  if (!lay.packed) return {{0, static_cast<std::size_t>(lay.M), lay.padded_row(0)}};
  std::vector<RowRun> runs;
  for (int b = 0; b < lay.B; ++b)
    runs.push_back({static_cast<std::size_t>(lay.offsets[b]), static_cast<std::size_t>(lay.lengths[b]), lay.padded_row(b)});
  return runs;
}

// The B first-token rows of a pruned layer (row b is sequence b's token 0).
std::vector<RowRun> first_token_runs(const Layout& lay) {
  std::vector<RowRun> runs;
  for (int b = 0; b < lay.B; ++b) runs.push_back({static_cast<std::size_t>(b), 1, lay.padded_row(b)});
  return runs;
}

// Dropout (forward or backward: the same mask product) over rows `width` wide.
void dropout_rows(const Backend& k, float* out, const float* inp, const std::vector<RowRun>& runs, int width, float p,
                  const DropoutKey& key) {
  for (const RowRun& r : runs) {
    const auto n = static_cast<std::int64_t>(r.count * width);
    ops::dropout_forward(k, Tensor(out + r.row * width, k.device, {n}), Tensor(inp + r.row * width, k.device, {n}), p,
                         key, static_cast<std::uint64_t>(r.padded_row) * width);
  }
}

// One attention kernel call: B rows of T tokens at qkv row `row`, output at row `out_row`,
// probabilities at `att`.
struct AttentionCall {
  int B, T;
  std::size_t row, out_row, att;
  const std::int32_t* mask;
  AttentionRows rows;
};

// Padded: one masked call. Packed: one call per sequence over its real tokens, its dropout indices
// those of its place in the padded batch. Pruned: queries are the first tokens only (out (B, C)).
// TODO(cuda speed): on a GPU the packed calls belong in one cuda::attention_varlen_* launch
// (cu_seqlens = offsets, dropout width T), which keeps no probabilities; B launches is the slow path.
std::vector<AttentionCall> attention_calls(const Layout& lay, const std::int32_t* mask, int NH, bool pruned,
                                           std::size_t* att_numel) {
  const int Tq = pruned ? 1 : 0;
  std::vector<AttentionCall> calls;
  if (!lay.packed) {
    calls.push_back({lay.B, lay.T, 0, 0, 0, mask, {Tq, lay.T, lay.padded_row(0) * NH * lay.T}});
    *att_numel = static_cast<std::size_t>(lay.B) * NH * (pruned ? 1 : lay.T) * lay.T;
    return calls;
  }
  std::size_t att = 0;
  for (int b = 0; b < lay.B; ++b) {
    const int len = lay.lengths[b];
    const std::size_t off = lay.offsets[b];
    const std::uint64_t key0 = static_cast<std::uint64_t>(lay.padded_row(b)) * NH * lay.T;
    calls.push_back({1, len, off, pruned ? static_cast<std::size_t>(b) : off, att, nullptr, {Tq, lay.T, key0}});
    att += static_cast<std::size_t>(NH) * (pruned ? 1 : len) * len;
  }
  *att_numel = att;
  return calls;
}

// Carves one device buffer into named slices (float, int32, bf16): sizes first, then pointers.
class Carver {
 public:
  template <typename T>
  void add(T** slot, std::size_t n) {
    items_.push_back({[slot](char* p) { *slot = reinterpret_cast<T*>(p); }, n * sizeof(T)});
  }
  std::size_t bytes() const {
    std::size_t total = 0;
    for (auto& it : items_) total += round(it.bytes);
    return total;
  }
  void allocate(Arena& arena, const Backend& backend) {
    char* base = static_cast<char*>(arena.reserve(backend, bytes()));
    std::size_t offset = 0;
    for (auto& it : items_) {
      it.set(base + offset);
      offset += round(it.bytes);
    }
  }

 private:
  static std::size_t round(std::size_t bytes) { return (bytes + 63) / 64 * 64; }  // 64-byte aligned slices
  struct Item {
    std::function<void(char*)> set;
    std::size_t bytes;
  };
  std::vector<Item> items_;
};

// Rows of each token input in Acts::tokens, rounded so that every input starts 64-byte aligned.
std::size_t token_stride(const Layout& lay) { return (static_cast<std::size_t>(lay.M) + 15) / 16 * 16; }

// The slices of one call's activations, not yet placed (allocate_acts places them). training: the
// activations backward reads; bf16: their product operands' bf16 copies too.
Carver plan_acts(Acts& a, const ModelConfig& c, const Layout& lay, bool training, bool bf16) {
  const std::size_t C = c.hidden_size, F = c.intermediate_size, Ms = lay.M, Bs = lay.B;
  const std::size_t Mh = training ? Ms : std::max(Ms, static_cast<std::size_t>(lay.held));
  Carver v;
  v.add(&a.tokens, 3 * token_stride(lay) + (lay.packed ? 0 : static_cast<std::size_t>(lay.B) * lay.T));
  v.add(&a.emb, Ms * C);
  v.add(&a.emb_ln, Mh * C);
  v.add(&a.emb_mean, Ms);
  v.add(&a.emb_rstd, Ms);
  if (training) v.add(&a.emb_out, Ms * C);  // inference: no dropout, emb_out == emb_ln
  a.layers.assign(c.num_layers, {});
  const int distinct = training ? c.num_layers : 1;
  for (int l = 0; l < distinct; ++l) {
    LayerActs& la = a.layers[l];
    // Inference shares one set of buffers, sized for the full layers (Mh rows where products run).
    const std::size_t R = training && lay.pruned(l, c.num_layers) ? Bs : Ms, Rh = training ? R : Mh;
    v.add(&la.qkv, Mh * 3 * C);
    if (training) {
      std::size_t att_numel = 0;
      attention_calls(lay, nullptr, c.num_heads, lay.pruned(l, c.num_layers), &att_numel);
      v.add(&la.att, att_numel);
    }
    v.add(&la.atty, Rh * C);
    v.add(&la.ao, Rh * C);
    if (training) v.add(&la.res1, R * C);  // inference: the residual sum overwrites ao in place
    v.add(&la.ln1, Rh * C);
    v.add(&la.ln1_mean, R);
    v.add(&la.ln1_rstd, R);
    if (training) {
      v.add(&la.fch, R * F);
      v.add(&la.cdf, R * F);
      if (l == 0) v.add(&la.fcg, R * F);  // the largest R: layer 0 is never pruned unless L == 1
    } else {
      v.add(&la.fcg, Rh * F);  // inference: GELU in place (fch == fcg)
    }
    v.add(&la.fo, Rh * C);
    if (training) v.add(&la.res2, R * C);
    v.add(&la.ln2, Rh * C);
    v.add(&la.ln2_mean, R);
    v.add(&la.ln2_rstd, R);
    if (bf16) {  // training: kept for backward; inference: the operands the kernels write (forward_layers)
      v.add(&la.x16, Mh * C);
      v.add(&la.atty16, Rh * C);
      v.add(&la.ln1_16, Rh * C);
      if (training && l == 0) v.add(&la.fcg16, R * F);  // inference: fcg holds GELU's bf16 output itself
    }
  }
  v.add(&a.last_x, Bs * C);
  if (bf16 && training) v.add(&a.last_x16, Bs * C);
  v.add(&a.last_q, Bs * C);
  v.add(&a.cls_in, Bs * C);
  v.add(&a.head_a, Bs * C);
  v.add(&a.head_pre, Bs * C);
  v.add(&a.head_act, Bs * C);
  v.add(&a.head_b, Bs * C);
  v.add(&a.logits, Bs * c.num_labels);
  if (training) {
    v.add(&a.class_ids, Bs);
    v.add(&a.targets, Bs * c.num_labels);
    v.add(&a.dlogits, Bs * c.num_labels);
  }
  return v;
}

void allocate_acts(Acts& a, Arena& arena, const Backend& backend, const ModelConfig& c, const Layout& lay,
                   bool training, bool bf16 = false) {
  plan_acts(a, c, lay, training, bf16).allocate(arena, backend);
  const int distinct = training ? c.num_layers : 1;
  if (!training) {
    a.emb_out = a.emb_ln;
    a.layers[0].res1 = a.layers[0].ao;
    a.layers[0].fch = a.layers[0].fcg;
    a.layers[0].res2 = a.layers[0].fo;
  }
  for (int l = 0; l < c.num_layers; ++l) {
    if (training) a.layers[l].fcg = a.layers[0].fcg;
    if (bf16 && training) a.layers[l].fcg16 = a.layers[0].fcg16;
    if (l >= distinct) {
      a.layers[l] = a.layers[0];
      a.layers[l].att = nullptr;
    }
    a.layers[l].x = l == 0 ? a.emb_out : a.layers[l - 1].ln2;
  }
  if (!training) a.layers[0].att = nullptr;
}

// Token-level inputs after validation, in the batch's layout: ids, positions, types (M) and, for a
// padded batch, which tokens are real (B, T).
struct Tokens {
  std::vector<std::int32_t> ids, pos, types, mask;
};

// Checks `batch` against the model (ids in [0, V), positions, type ids), computes the positions and
// lays the batch out: packed (each sequence one run of real tokens) or padded (B rows of T).
Tokens prepare_tokens(const ModelConfig& c, const PackedBatch& batch, Layout& lay) {
  batch.check();
  lay.B = batch.size();
  lay.T = batch.padded_length;
  lay.M = static_cast<int>(batch.tokens());
  lay.held = lay.M;
  lay.packed = !batch.padded();
  lay.offsets.assign(batch.cu_seqlens.begin(), batch.cu_seqlens.end() - 1);
  lay.lengths.resize(lay.B);
  for (int b = 0; b < lay.B; ++b) lay.lengths[b] = batch.length(b);
  lay.out_rows.assign(batch.output_rows.begin(), batch.output_rows.end());
  lay.prune_last = false;
  lay.first_seq = batch.sequence_offset;
  Tokens tk;
  tk.ids = batch.input_ids;
  tk.types = batch.token_type_ids;
  tk.mask = batch.attention_mask;
  tk.pos.resize(batch.tokens());
  for (int b = 0; b < lay.B; ++b) {
    int running = 0;  // RoBERTa: positions count non-pad tokens from padding_idx + 1
    for (int t = 0; t < lay.lengths[b]; ++t) {
      const std::size_t i = static_cast<std::size_t>(lay.offsets[b]) + t;
      const std::int32_t id = tk.ids[i];
      if (id < 0 || id >= c.vocab_size)
        fail("input_ids[{}][{}] = {} is outside the model's vocabulary [0, {})", b, t, id, c.vocab_size);
      if (c.arch == Arch::Roberta) {
        if (id != c.pad_token_id) ++running;
        tk.pos[i] = id != c.pad_token_id ? running + c.pad_token_id : c.pad_token_id;
      } else {
        tk.pos[i] = t;
      }
      if (tk.pos[i] >= c.max_position_embeddings)
        fail("sequence length {} exceeds the model's {} positions (max_position_embeddings{})", lay.lengths[b],
             c.arch == Arch::Roberta ? c.max_position_embeddings - c.pad_token_id - 1 : c.max_position_embeddings,
             c.arch == Arch::Roberta ? " - padding_idx - 1" : "");
      if (c.type_vocab_size > 0 && (tk.types[i] < 0 || tk.types[i] >= c.type_vocab_size))
        fail("token_type_ids[{}][{}] = {} is outside [0, {}) (type_vocab_size)", b, t, tk.types[i],
             c.type_vocab_size);
    }
  }
  return tk;
}

// Copies the token inputs of `lay` (tk in that layout) into a.tokens with one upload.
void upload_tokens(Acts& a, const Tokens& tk, const Layout& lay, const Backend& backend) {
  const std::size_t stride = token_stride(lay), M = static_cast<std::size_t>(lay.M);
  const std::size_t masked = lay.packed ? 0 : static_cast<std::size_t>(lay.B) * lay.T;
  std::vector<std::int32_t> host(3 * stride + masked, 0);
  std::copy_n(tk.ids.data(), M, host.data());
  std::copy_n(tk.pos.data(), M, host.data() + stride);
  std::copy_n(tk.types.data(), M, host.data() + 2 * stride);
  if (masked) std::copy_n(tk.mask.data(), masked, host.data() + 3 * stride);
  backend.upload(a.tokens, host.data(), host.size() * sizeof(std::int32_t));
  a.ids = a.tokens;
  a.pos = a.tokens + stride;
  a.types = a.tokens + 2 * stride;
  a.mask = masked ? a.tokens + 3 * stride : nullptr;
}

// Tiny models (tests, goldens) run on the calling thread: waking an OpenMP team per kernel costs more
// than the work, and much more when the cores are shared. The limit is per calling thread.
class SmallWorkThreadLimit {
 public:
  SmallWorkThreadLimit(const ModelConfig& c, std::size_t tokens) : saved_(omp_get_max_threads()) {
    const double macs_per_layer = static_cast<double>(tokens) * c.hidden_size * c.intermediate_size;
    if (macs_per_layer < 4e6 && saved_ > 1) omp_set_num_threads(1);
  }
  ~SmallWorkThreadLimit() { omp_set_num_threads(saved_); }
  SmallWorkThreadLimit(const SmallWorkThreadLimit&) = delete;
  SmallWorkThreadLimit& operator=(const SmallWorkThreadLimit&) = delete;

 private:
  int saved_;
};

}  // namespace

struct Model::Impl {
  ModelConfig config;
  Device device;
  const Backend* backend = &cpu_backend();  // device's table: every kernel, copy and add goes here
  ParamTable params;
  DropoutPlan dropout;
  bool dropout_enabled = true;
  EngineOptions engine;
  DType dtype = DType::F32;  // what the encoder's products compute in (set_compute_dtype)
  // Training with bf16 products: bf16 copies of the encoder's weight matrices, rounded again after
  // any weight change (stale), not per micro-batch.
  DeviceBuffer weights16_buffer;
  std::vector<LayerWeights16> weights16;
  bool weights16_stale = true;
  std::function<void(std::size_t)> gradient_ready;  // set_gradient_ready_hook
  // Inference weights prepared by the backend, built on first forward() after any weight change.
  mutable std::mutex pack_mutex;
  mutable std::shared_ptr<const PackedWeights> packed;
  // Inference activations: one arena per concurrent forward(), returned here after the call and
  // kept (warm) unless more than arena_limit would then exist.
  mutable std::mutex arena_mutex;
  mutable std::vector<std::unique_ptr<Arena>> free_arenas;
  mutable std::size_t arenas_out = 0;  // taken by forward() calls running now
  mutable std::size_t arena_limit = SIZE_MAX;
  // Training activations and gradient scratch, kept between steps.
  Acts train_acts;
  Arena train_arena;
  Arena grad_arena;

  // The model's device and its table (backend_for checks that the device is usable).
  void bind_device(const Device& d) {
    backend = &backend_for(d);
    device = d;
  }
  std::shared_ptr<const PackedWeights> packed_weights() const {
    std::lock_guard<std::mutex> lock(pack_mutex);
    if (!packed) packed = std::make_shared<PackedWeights>(params.w, config, *backend, dtype);
    return packed;
  }
  std::unique_ptr<Arena> take_arena() const {
    std::lock_guard<std::mutex> lock(arena_mutex);
    ++arenas_out;
    if (free_arenas.empty()) return std::make_unique<Arena>();
    std::unique_ptr<Arena> arena = std::move(free_arenas.back());
    free_arenas.pop_back();
    return arena;
  }
  void return_arena(std::unique_ptr<Arena> arena) const {
    std::lock_guard<std::mutex> lock(arena_mutex);
    --arenas_out;
    if (free_arenas.size() + arenas_out < arena_limit) free_arenas.push_back(std::move(arena));
  }
  void invalidate_packed() {
    std::lock_guard<std::mutex> lock(pack_mutex);
    packed.reset();
  }
  // The weights changed (optimizer step, restored checkpoint, caller writes): repack and reround.
  void weights_changed() {
    invalidate_packed();
    weights16_stale = true;
  }
  // The bf16 weight copies for this step's products (allocated once, rounded when stale).
  const std::vector<LayerWeights16>& round_weights();

  // `w16`: the bf16 weight copies when training with bf16 products, else null.
  void forward_layers(Acts& a, const Layout& lay, const PackedWeights* pw, const DropoutPlan& drop,
                      std::vector<std::vector<float>>* hidden, const std::vector<LayerWeights16>* w16,
                      const std::function<bool()>& stop = {}) const;
  void backward(Acts& a, const Layout& lay, const float* dlogits, const DropoutPlan& drop,
                const std::vector<LayerWeights16>* w16);
};

const std::vector<LayerWeights16>& Model::Impl::round_weights() {
  const Backend& k = *backend;
  const std::size_t C = config.hidden_size, F = config.intermediate_size, L = config.num_layers;
  const std::size_t per_layer = 4 * C * C + 2 * C * F;  // qkv 3C^2 + out C^2 + fc FC + proj CF
  if (weights16.size() != L) {
    weights16_buffer = DeviceBuffer(k, L * per_layer * sizeof(Bf16));
    weights16.resize(L);
    Bf16* p = weights16_buffer.as<Bf16>();
    for (LayerWeights16& lw : weights16) {
      lw.qkv_w = p;
      lw.attn_out_w = lw.qkv_w + 3 * C * C;
      lw.fc_w = lw.attn_out_w + C * C;
      lw.proj_w = lw.fc_w + F * C;
      p += per_layer;
    }
    weights16_stale = true;
  }
  if (weights16_stale) {
    const auto C64 = static_cast<std::int64_t>(C), F64 = static_cast<std::int64_t>(F);
    for (std::size_t l = 0; l < L; ++l) {
      const LayerWeights& lw = params.w.layers[l];
      const LayerWeights16& l16 = weights16[l];
      auto round = [&](Bf16* dst, const float* src, std::int64_t rows, std::int64_t cols) {
        ops::convert(k, Tensor(dst, k.device, {rows, cols}), Tensor(src, k.device, {rows, cols}));
      };
      round(l16.qkv_w, lw.qkv_w, 3 * C64, C64);
      round(l16.attn_out_w, lw.attn_out_w, C64, C64);
      round(l16.fc_w, lw.fc_w, F64, C64);
      round(l16.proj_w, lw.proj_w, C64, F64);
    }
    weights16_stale = false;
  }
  return weights16;
}

// ---------------------------------------------------------------------------------------------
// forward

void Model::Impl::forward_layers(Acts& a, const Layout& lay, const PackedWeights* pw, const DropoutPlan& drop,
                                 std::vector<std::vector<float>>* hidden,
                                 const std::vector<LayerWeights16>* w16, const std::function<bool()>& stop) const {
  const Backend& k = *backend;
  const ModelConfig& c = config;
  const Weights& w = params.w;
  const int C = c.hidden_size, F = c.intermediate_size, NH = c.num_heads, K = c.num_labels, L = c.num_layers;
  const int B = lay.B, M = lay.M;
  const std::size_t row_bytes = sizeof(float) * C;
  const float p_hidden = drop.on ? c.hidden_dropout : 0.0f;
  const float p_attn = drop.on ? c.attention_dropout : 0.0f;
  const std::vector<RowRun> tokens = token_runs(lay), firsts = first_token_runs(lay);
  const auto t = [&k](auto* p, std::initializer_list<std::int64_t> dims) { return Tensor(p, k.device, dims); };
  auto save_hidden = [&](const float* h) {
    if (!hidden) return;
    hidden->emplace_back(static_cast<std::size_t>(M) * C);
    k.download(hidden->back().data(), h, hidden->back().size() * sizeof(float));
  };
  // out (rows, n) = inp (rows, in) W^T + b (rows of out `stride` apart, 0: n): the prepared layer when
  // there is one (inference; out and inp hold `held` rows; it reads `ready16` instead of inp when given,
  // inp already rounded to its bf16 operand), else fp32, or bf16 with inp rounded into inp16 (kept for
  // backward).
  auto linear = [&](float* out, const float* inp, Bf16* inp16, int rows, int held, const float* weight,
                    const Bf16* weight16, const float* bias, const PreparedLinear* packed, int in, int n,
                    int stride = 0, const Bf16* ready16 = nullptr) {
    if (packed) {
      const Tensor o = stride ? t(out, {held, n}).strided(stride) : t(out, {held, n});
      ops::prepared_forward(*packed, o, ready16 ? t(ready16, {held, in}) : t(inp, {held, in}), rows);
      return;
    }
    const Tensor o = stride ? t(out, {rows, n}).strided(stride) : t(out, {rows, n});
    if (weight16) {
      ops::convert(k, t(inp16, {rows, in}), t(inp, {rows, in}));
      ops::linear_forward(k, o, t(inp16, {rows, in}), t(weight16, {n, in}), t(bias, {n}));
    } else {
      ops::linear_forward(k, o, t(inp, {rows, in}), t(weight, {n, in}), t(bias, {n}));
    }
  };
  auto dropout = [&](float* out, const float* inp, const std::vector<RowRun>& runs, float p, const DropoutKey& key) {
    dropout_rows(k, out, inp, runs, C, p, key);
  };

  // Embeddings (the caller uploaded ids/pos/types in the layout being run).
  ops::embedding_forward(k, t(a.emb, {M, C}), t(a.ids, {M}), t(a.pos, {M}), t(a.types, {M}), t(w.wte, {c.vocab_size, C}),
                         t(w.wpe, {c.max_position_embeddings, C}),
                         w.wtt ? t(w.wtt, {c.type_vocab_size, C}) : Tensor());
  ops::layernorm_forward(k, t(a.emb_ln, {M, C}), t(a.emb_mean, {M}), t(a.emb_rstd, {M}), t(a.emb, {M, C}),
                         t(w.emb_ln_w, {C}), t(w.emb_ln_b, {C}), c.layer_norm_eps);
  dropout(a.emb_out, a.emb_ln, tokens, p_hidden, drop.key(kSiteEmbedding));
  save_hidden(a.emb_out);

  for (int l = 0; l < L; ++l) {
    if (stop && stop()) throw ForwardStopped(fmt::format("forward pass stopped before layer {} of {}", l, L));
    const LayerWeights& lw = w.layers[l];
    const LayerWeights16* l16 = w16 ? &(*w16)[l] : nullptr;
    const LayerActs& la = a.layers[l];
    const PackedLayer* pl = pw ? &pw->layers[l] : nullptr;
    const bool pruned = lay.pruned(l, L);
    const int R = pruned ? B : M;  // rows after the attention
    const int Rh = pruned ? B : lay.held;  // the rows their buffers hold
    const std::vector<RowRun>& runs = pruned ? firsts : tokens;
    const float* x = la.x;  // the residual input of the rows after the attention
    // Inference with bf16 products: the kernels before each product also write its bf16 operand (the
    // LayerNorms, the attention), so no product converts its input. The layer's input arrives so from
    // the previous layer's second LayerNorm (x16); layer 0's products round the embeddings themselves.
    const bool ops16 = pl && pl->attn_out->dtype == DType::BF16;
    const Bf16* x16 = ops16 && l > 0 ? la.x16 : nullptr;
    if (pruned) {
      // K and V of every token (columns C.. of each qkv row); Q of the first tokens only. The
      // other rows' Q columns stay unwritten: the attention reads queries of the first tokens only.
      // TODO(cuda speed): one gather / scatter kernel instead of B row copies each way.
      const std::size_t CC = static_cast<std::size_t>(C) * C;
      for (int b = 0; b < B; ++b)
        k.copy(a.last_x + static_cast<std::size_t>(b) * C, la.x + lay.first_row(b) * C, row_bytes);
      x = a.last_x;
      linear(la.qkv + C, la.x, la.x16, M, lay.held, lw.qkv_w + CC, l16 ? l16->qkv_w + CC : nullptr, lw.qkv_b + C,
             pl ? pl->kv.get() : nullptr, C, 2 * C, 3 * C, x16);
      linear(a.last_q, a.last_x, a.last_x16, B, B, lw.qkv_w, l16 ? l16->qkv_w : nullptr, lw.qkv_b,
             pl ? pl->q.get() : nullptr, C, C);
      for (int b = 0; b < B; ++b)
        k.copy(la.qkv + lay.first_row(b) * 3 * C, a.last_q + static_cast<std::size_t>(b) * C, row_bytes);
    } else {
      linear(la.qkv, la.x, la.x16, M, lay.held, lw.qkv_w, l16 ? l16->qkv_w : nullptr, lw.qkv_b, pl ? pl->qkv.get() : nullptr, C,
             3 * C, 0, x16);
    }
    std::size_t att_numel = 0;
    for (const AttentionCall& call : attention_calls(lay, a.mask, NH, pruned, &att_numel)) {
      const int Tq = call.rows.queries ? call.rows.queries : call.T;
      ops::attention_forward(k,
                             ops16 ? t(la.atty16 + call.out_row * C, {call.B, Tq, C})
                                   : t(la.atty + call.out_row * C, {call.B, Tq, C}),
                             la.att ? t(la.att + call.att, {call.B, NH, Tq, call.T}) : Tensor(),
                             t(la.qkv + call.row * 3 * C, {call.B, call.T, 3 * C}),
                             call.mask ? t(call.mask, {call.B, call.T}) : Tensor(), NH, p_attn,
                             drop.key(site_layer(l, 0)), call.rows);
    }
    linear(la.ao, la.atty, la.atty16, R, Rh, lw.attn_out_w, l16 ? l16->attn_out_w : nullptr, lw.attn_out_b,
           pl ? pl->attn_out.get() : nullptr, C, C, 0, ops16 ? la.atty16 : nullptr);
    const float p_ao = c.arch == Arch::DistilBert ? 0.0f : p_hidden;
    dropout(la.res1, la.ao, runs, p_ao, drop.key(site_layer(l, 1)));
    ops::residual_layernorm_forward(k, t(la.ln1, {R, C}), t(la.res1, {R, C}), t(la.ln1_mean, {R}), t(la.ln1_rstd, {R}),
                                    t(la.res1, {R, C}), t(x, {R, C}), t(lw.ln1_w, {C}), t(lw.ln1_b, {C}),
                                    c.layer_norm_eps, ops16 ? t(la.ln1_16, {R, C}) : Tensor());
    if (pl) {
      // GELU fused (fch not needed). With bf16 products its output is stored as the bf16 operand the
      // next product reads (in the first half of the fp32 buffer): the values that product would round
      // it to, without the conversion pass, in half the memory traffic.
      const Tensor fcg = pl->fc_gelu->dtype == DType::BF16 ? t(reinterpret_cast<Bf16*>(la.fcg), {Rh, F})
                                                           : t(la.fcg, {Rh, F});
      ops::prepared_forward(*pl->fc_gelu, fcg, ops16 ? t(la.ln1_16, {Rh, C}) : t(la.ln1, {Rh, C}), R);
      ops::prepared_forward(*pl->proj, t(la.fo, {Rh, C}), fcg, R);
    } else {
      linear(la.fch, la.ln1, la.ln1_16, R, R, lw.fc_w, l16 ? l16->fc_w : nullptr, lw.fc_b, nullptr, C, F);
      ops::gelu_forward_cdf(k, t(la.fcg, {R, F}), t(la.cdf, {R, F}), t(la.fch, {R, F}));
      linear(la.fo, la.fcg, la.fcg16, R, R, lw.proj_w, l16 ? l16->proj_w : nullptr, lw.proj_b, nullptr, F, C);
    }
    dropout(la.res2, la.fo, runs, p_hidden, drop.key(site_layer(l, 2)));
    ops::residual_layernorm_forward(k, t(la.ln2, {R, C}), t(la.res2, {R, C}), t(la.ln2_mean, {R}), t(la.ln2_rstd, {R}),
                                    t(la.res2, {R, C}), t(la.ln1, {R, C}), t(lw.ln2_w, {C}), t(lw.ln2_b, {C}),
                                    c.layer_norm_eps, ops16 && l + 1 < L ? t(la.x16, {R, C}) : Tensor());
    if (!pruned) save_hidden(la.ln2);  // the caller asked for no pruning when it wants hidden states
  }

  // Head on each sequence's output row (fp32 products: B rows, negligible work).
  const float* last = a.layers[L - 1].ln2;
  const bool pruned_last = lay.pruned(L - 1, L);
  for (int b = 0; b < B; ++b) {
    const std::size_t row = pruned_last ? static_cast<std::size_t>(b) : static_cast<std::size_t>(lay.out_rows[b]);
    k.copy(a.cls_in + static_cast<std::size_t>(b) * C, last + row * C, row_bytes);
  }
  const HeadSpec hs = head_spec(c);
  const std::uint64_t head_key0 = static_cast<std::uint64_t>(lay.first_seq) * C;  // row b draws row first_seq + b's bits
  const std::int64_t BC = static_cast<std::int64_t>(B) * C;
  ops::dropout_forward(k, t(a.head_a, {BC}), t(a.cls_in, {BC}), drop.on ? hs.p_before_dense : 0.0f,
                       drop.key(kSiteHeadA), head_key0);
  ops::linear_forward(k, t(a.head_pre, {B, C}), t(a.head_a, {B, C}), t(w.head_w, {C, C}), t(w.head_b, {C}));
  if (hs.tanh) ops::tanh_forward(k, t(a.head_act, {BC}), t(a.head_pre, {BC}));
  else ops::relu_forward(k, t(a.head_act, {BC}), t(a.head_pre, {BC}));
  ops::dropout_forward(k, t(a.head_b, {BC}), t(a.head_act, {BC}), drop.on ? hs.p_after_act : 0.0f,
                       drop.key(kSiteHeadB), head_key0);
  ops::linear_forward(k, t(a.logits, {B, K}), t(a.head_b, {B, C}), t(w.cls_w, {K, C}), t(w.cls_b, {K}));
}

std::vector<float> Model::forward(const PackedBatch& batch, const ForwardOptions& options) const {
  const Impl& m = *impl_;
  const ModelConfig& c = m.config;
  Layout lay;
  const Tokens tk = prepare_tokens(c, batch, lay);
  // Without hidden states asked for, the last layer runs only the rows the head reads.
  lay.prune_last = options.hidden_states == nullptr && m.engine.prune_last_layer && lay.outputs_are_first_tokens();
  require_device(m.device);  // a GPU: make it current on this thread
  const SmallWorkThreadLimit limit(c, static_cast<std::size_t>(lay.M));
  // Activations per call from a pool, so concurrent forwards never share them; given back even
  // when the pass throws (ForwardStopped).
  struct Lease {
    const Impl& m;
    std::unique_ptr<Arena> arena;
    ~Lease() { m.return_arena(std::move(arena)); }
  } lease{m, m.take_arena()};
  Arena* arena = lease.arena.get();
  lay.held = m.backend->prepared_rows(lay.M);
  Acts acts;
  const auto pw = m.packed_weights();
  // Products in bf16: the kernels before them write their bf16 operands too (forward_layers).
  const bool bf16 = pw->layers.front().attn_out->dtype == DType::BF16;
  allocate_acts(acts, *arena, *m.backend, c, lay, false, bf16);
  // The rows past M that the products read hold zeros: any values would do (no real row reads them),
  // but zeros keep what the arena held before (int32 ids, which read as denormals) out of the products.
  if (lay.held > lay.M) {
    const LayerActs& la = acts.layers[0];
    const std::size_t row = static_cast<std::size_t>(lay.M) * c.hidden_size * sizeof(float),
                      pad = static_cast<std::size_t>(lay.held - lay.M) * c.hidden_size * sizeof(float);
    for (float* buf : {acts.emb_ln, la.atty, la.ln1, la.ln2}) m.backend->zero(reinterpret_cast<char*>(buf) + row, pad);
    if (bf16)
      for (Bf16* buf : {la.x16, la.atty16, la.ln1_16}) m.backend->zero(reinterpret_cast<char*>(buf) + row / 2, pad / 2);
  }
  upload_tokens(acts, tk, lay, *m.backend);
  if (options.hidden_states) options.hidden_states->clear();
  m.forward_layers(acts, lay, pw.get(), DropoutPlan{}, options.hidden_states, nullptr, options.stop);
  std::vector<float> logits(static_cast<std::size_t>(lay.B) * c.num_labels);
  m.backend->download(logits.data(), acts.logits, logits.size() * sizeof(float));
  return logits;
}

std::size_t Model::inference_bytes(int tokens, int longest) const {
  // The packed layout forward() runs when no hidden states are asked for, filled with sequences of
  // `longest` tokens (attention grows with the square of a sequence's length: the worst case).
  Layout lay;
  longest = std::max(1, std::min(longest, tokens));
  for (int left = std::max(1, tokens); left > 0; left -= longest) {
    lay.offsets.push_back(lay.M);
    lay.lengths.push_back(std::min(left, longest));
    lay.M += lay.lengths.back();
  }
  lay.B = static_cast<int>(lay.lengths.size());
  lay.T = longest;
  lay.packed = true;
  lay.out_rows = lay.offsets;
  lay.prune_last = impl_->engine.prune_last_layer;
  lay.held = impl_->backend->prepared_rows(lay.M);
  Acts acts;
  // An arena regrows by at least a quarter (Arena::reserve): one that served passes of up to this
  // size may hold up to a quarter more.
  return Arena::grown_from(plan_acts(acts, impl_->config, lay, false, impl_->dtype == DType::BF16).bytes());
}

std::size_t Model::arena_bytes() const {
  std::lock_guard<std::mutex> lock(impl_->arena_mutex);
  std::size_t bytes = 0;
  for (const auto& arena : impl_->free_arenas) bytes += arena->bytes();
  return bytes;
}

void Model::prepare_inference() const { impl_->packed_weights(); }

bool Model::inference_prepared() const {
  std::lock_guard<std::mutex> lock(impl_->pack_mutex);
  return impl_->packed != nullptr;
}

void Model::set_concurrent_forwards(std::size_t n) const {
  const Impl& m = *impl_;
  std::vector<std::unique_ptr<Arena>> freed;  // released outside the lock
  std::lock_guard<std::mutex> lock(m.arena_mutex);
  m.arena_limit = std::max<std::size_t>(n, 1);
  while (!m.free_arenas.empty() && m.free_arenas.size() + m.arenas_out > m.arena_limit) {
    freed.push_back(std::move(m.free_arenas.back()));
    m.free_arenas.pop_back();
  }
}

// ---------------------------------------------------------------------------------------------
// losses

namespace {
enum class Problem { SingleLabel, MultiLabel, Regression };

Problem problem_of(const ModelConfig& c, const Labels& labels) {
  if (c.problem_type == "regression") return Problem::Regression;
  if (c.problem_type == "multi_label_classification") return Problem::MultiLabel;
  if (c.problem_type == "single_label_classification") return Problem::SingleLabel;
  if (c.num_labels == 1) return Problem::Regression;
  return labels.class_ids ? Problem::SingleLabel : Problem::MultiLabel;
}

void require_labels(const ModelConfig& c, Problem p, const Labels& labels) {
  if (p == Problem::SingleLabel && !labels.class_ids)
    fail("single-label classification needs integer class ids (Labels::class_ids)");
  if (p != Problem::SingleLabel && !labels.values)
    fail("{} needs float targets (Labels::values, B x {})",
         p == Problem::Regression ? "regression" : "multi-label classification", c.num_labels);
}
}  // namespace

// Host logits and labels: the CPU kernels, whatever the model's device.
float Model::loss(const float* logits, int B, const Labels& labels) const {
  const ModelConfig& c = impl_->config;
  const Problem p = problem_of(c, labels);
  require_labels(c, p, labels);
  const int K = c.num_labels;
  switch (p) {
    case Problem::SingleLabel: return cross_entropy_forward(logits, labels.class_ids, B, K);
    case Problem::MultiLabel: return bce_with_logits_forward(logits, labels.values, B * K);
    case Problem::Regression: return mse_forward(logits, labels.values, B * K);
  }
  return 0.0f;
}

// ---------------------------------------------------------------------------------------------
// backward

void Model::Impl::backward(Acts& a, const Layout& lay, const float* dlogits, const DropoutPlan& drop,
                           const std::vector<LayerWeights16>* w16) {
  const Backend& k = *backend;
  const ModelConfig& c = config;
  const Weights& w = params.w;
  const Weights& g = params.g;
  const int C = c.hidden_size, F = c.intermediate_size, NH = c.num_heads, K = c.num_labels, L = c.num_layers;
  const int B = lay.B, M = lay.M;
  const std::size_t MC = static_cast<std::size_t>(M) * C, MF = static_cast<std::size_t>(M) * F;
  const std::size_t BC = static_cast<std::size_t>(B) * C;
  const std::size_t row_bytes = sizeof(float) * C;
  const float p_hidden = drop.on ? c.hidden_dropout : 0.0f;
  const float p_attn = drop.on ? c.attention_dropout : 0.0f;
  const std::vector<RowRun> tokens = token_runs(lay), firsts = first_token_runs(lay);
  const auto t = [&k](auto* p, std::initializer_list<std::int64_t> dims) { return Tensor(p, k.device, dims); };
  auto dropout = [&](float* out, const float* inp, const std::vector<RowRun>& runs, float p, const DropoutKey& key) {
    dropout_rows(k, out, inp, runs, C, p, key);
  };
  // The backward of out = inp W^T + b over `rows` rows (dout rows `stride` apart, 0: n): fp32, or
  // with the bf16 operands forward kept (inp16, weight16).
  auto linear_backward = [&](float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                             const Bf16* inp16, const float* weight, const Bf16* weight16, int rows, int in, int n,
                             int stride = 0) {
    const Tensor d = stride ? t(dout, {rows, n}).strided(stride) : t(dout, {rows, n});
    const Tensor x = weight16 ? t(inp16, {rows, in}) : t(inp, {rows, in});
    const Tensor wt = weight16 ? t(weight16, {n, in}) : t(weight, {n, in});
    ops::linear_backward(k, t(dinp, {rows, in}), t(dweight, {n, in}), t(dbias, {n}), d, x, wt);
  };
  const std::int64_t BC64 = static_cast<std::int64_t>(BC);
  // Tells the data-parallel hook that every gradient from `first` to the buffer's end is final.
  auto ready = [&](const float* first) {
    if (gradient_ready) gradient_ready(static_cast<std::size_t>(first - params.grads.as<float>()));
  };

  // Scratch: gradient of the current layer output, two (M, C), one (M, F) x2, one (M, 3C), head (B, C) x2
  // (reused for the Q path of a pruned last layer).
  Carver v;
  float *dx, *d1, *d2, *df1, *df2, *dqkv, *dh1, *dh2;
  v.add(&dx, MC);
  v.add(&d1, MC);
  v.add(&d2, MC);
  v.add(&df1, MF);
  v.add(&df2, MF);
  v.add(&dqkv, MC * 3);
  v.add(&dh1, BC);
  v.add(&dh2, BC);
  v.allocate(grad_arena, k);

  // Head, reversed (fp32 products).
  const HeadSpec hs = head_spec(c);
  const std::uint64_t head_key0 = static_cast<std::uint64_t>(lay.first_seq) * C;  // row b draws row first_seq + b's bits
  linear_backward(dh1, g.cls_w, g.cls_b, dlogits, a.head_b, nullptr, w.cls_w, nullptr, B, C, K);
  ops::dropout_backward(k, t(dh1, {BC64}), t(dh1, {BC64}), drop.on ? hs.p_after_act : 0.0f, drop.key(kSiteHeadB), head_key0);
  if (hs.tanh) ops::tanh_backward(k, t(dh1, {BC64}), t(a.head_act, {BC64}), t(dh1, {BC64}));
  else ops::relu_backward(k, t(dh1, {BC64}), t(a.head_pre, {BC64}), t(dh1, {BC64}));
  linear_backward(dh2, g.head_w, g.head_b, dh1, a.head_a, nullptr, w.head_w, nullptr, B, C, C);
  ops::dropout_backward(k, t(dh2, {BC64}), t(dh2, {BC64}), drop.on ? hs.p_before_dense : 0.0f, drop.key(kSiteHeadA),
                        head_key0);
  ready(g.head_w);  // the head is the last block of the buffer
  // dx: gradient of the last layer's output, (B, C) when it ran the first tokens only, else (M, C)
  // with the head's gradient on each output row.
  if (lay.pruned(L - 1, L)) {
    k.copy(dx, dh2, sizeof(float) * BC);
  } else {
    k.zero(dx, sizeof(float) * MC);
    for (int b = 0; b < B; ++b)
      k.copy(dx + static_cast<std::size_t>(lay.out_rows[b]) * C, dh2 + static_cast<std::size_t>(b) * C, row_bytes);
  }

  for (int l = L - 1; l >= 0; --l) {
    const LayerWeights& lw = w.layers[l];
    const LayerWeights& lg = g.layers[l];
    const LayerWeights16* l16 = w16 ? &(*w16)[l] : nullptr;
    const LayerActs& la = a.layers[l];
    const bool pruned = lay.pruned(l, L);
    const int R = pruned ? B : M;
    const std::vector<RowRun>& runs = pruned ? firsts : tokens;
    // y = LN2(r2), r2 = ln1 + drop(fo)
    ops::layernorm_backward(k, t(d1, {R, C}), t(lg.ln2_w, {C}), t(lg.ln2_b, {C}), t(dx, {R, C}), t(la.res2, {R, C}),
                            t(lw.ln2_w, {C}), t(la.ln2_mean, {R}), t(la.ln2_rstd, {R}));
    dropout(d2, d1, runs, p_hidden, drop.key(site_layer(l, 2)));
    // This layer's GELU output again (and, for bf16 products, its rounding: the same bits forward used).
    ops::gelu_from_cdf(k, t(df1, {R, F}), t(la.fch, {R, F}), t(la.cdf, {R, F}));
    if (l16) ops::convert(k, t(la.fcg16, {R, F}), t(df1, {R, F}));
    linear_backward(df2, lg.proj_w, lg.proj_b, d2, df1, la.fcg16, lw.proj_w, l16 ? l16->proj_w : nullptr, R, F, C);
    ops::gelu_backward_cdf(k, t(df1, {R, F}), t(la.fch, {R, F}), t(la.cdf, {R, F}), t(df2, {R, F}));
    linear_backward(d2, lg.fc_w, lg.fc_b, df1, la.ln1, la.ln1_16, lw.fc_w, l16 ? l16->fc_w : nullptr, R, C, F);
    ops::add(k, t(d1, {R, C}), t(d2, {R, C}));  // residual into ln1
    // ln1 = LN1(r1), r1 = x + drop(ao)
    ops::layernorm_backward(k, t(dx, {R, C}), t(lg.ln1_w, {C}), t(lg.ln1_b, {C}), t(d1, {R, C}), t(la.res1, {R, C}),
                            t(lw.ln1_w, {C}), t(la.ln1_mean, {R}), t(la.ln1_rstd, {R}));
    const float p_ao = c.arch == Arch::DistilBert ? 0.0f : p_hidden;
    dropout(d2, dx, runs, p_ao, drop.key(site_layer(l, 1)));
    linear_backward(d1, lg.attn_out_w, lg.attn_out_b, d2, la.atty, la.atty16, lw.attn_out_w,
                    l16 ? l16->attn_out_w : nullptr, R, C, C);
    std::size_t att_numel = 0;
    for (const AttentionCall& call : attention_calls(lay, a.mask, NH, pruned, &att_numel)) {
      const int Tq = call.rows.queries ? call.rows.queries : call.T;
      ops::attention_backward(k, t(dqkv + call.row * 3 * C, {call.B, call.T, 3 * C}), t(d1 + call.out_row * C, {call.B, Tq, C}),
                              t(la.qkv + call.row * 3 * C, {call.B, call.T, 3 * C}),
                              t(la.att + call.att, {call.B, NH, Tq, call.T}), NH, p_attn, drop.key(site_layer(l, 0)),
                              call.rows);
    }
    if (pruned) {
      // K, V of every token; Q of the first tokens (dq is zero elsewhere). Then the Q path and the
      // residual into the first tokens of x; the result becomes dx (M, C).
      const std::size_t CC = static_cast<std::size_t>(C) * C;
      linear_backward(d2, lg.qkv_w + CC, lg.qkv_b + C, dqkv + C, la.x, la.x16, lw.qkv_w + CC,
                      l16 ? l16->qkv_w + CC : nullptr, M, C, 2 * C, 3 * C);
      for (int b = 0; b < B; ++b)
        k.copy(dh1 + static_cast<std::size_t>(b) * C, dqkv + lay.first_row(b) * 3 * C, row_bytes);
      linear_backward(dh2, lg.qkv_w, lg.qkv_b, dh1, a.last_x, a.last_x16, lw.qkv_w, l16 ? l16->qkv_w : nullptr, B, C,
                      C);
      ops::add(k, t(dh2, {BC64}), t(dx, {BC64}));  // Q path + residual of each first token (dx is (B, C) here)
      for (int b = 0; b < B; ++b)
        ops::add(k, t(d2 + lay.first_row(b) * C, {C}), t(dh2 + static_cast<std::size_t>(b) * C, {C}));
      std::swap(dx, d2);
    } else {
      linear_backward(d2, lg.qkv_w, lg.qkv_b, dqkv, la.x, la.x16, lw.qkv_w, l16 ? l16->qkv_w : nullptr, M, C, 3 * C);
      ops::add(k, t(dx, {M, C}), t(d2, {M, C}));  // residual into x
    }
    ready(lg.qkv_w);  // layer l's block starts at its fused QKV weight
  }

  // Embeddings.
  dropout(d1, dx, tokens, p_hidden, drop.key(kSiteEmbedding));
  ops::layernorm_backward(k, t(d2, {M, C}), t(g.emb_ln_w, {C}), t(g.emb_ln_b, {C}), t(d1, {M, C}), t(a.emb, {M, C}),
                          t(w.emb_ln_w, {C}), t(a.emb_mean, {M}), t(a.emb_rstd, {M}));
  ready(g.emb_ln_w);
  ops::embedding_backward(k, t(g.wte, {c.vocab_size, C}), t(g.wpe, {c.max_position_embeddings, C}),
                          g.wtt ? t(g.wtt, {c.type_vocab_size, C}) : Tensor(), t(d2, {M, C}), t(a.ids, {M}),
                          t(a.pos, {M}), t(a.types, {M}));
  ready(g.wte);
}

float Model::forward_backward(const PackedBatch& batch, const Labels& labels, float grad_scale,
                              std::vector<float>* logits) {
  Impl& m = *impl_;
  const Backend& k = *m.backend;
  const ModelConfig& c = m.config;
  m.invalidate_packed();  // the optimizer will change the weights after this step
  Layout lay;
  const Tokens tk = prepare_tokens(c, batch, lay);
  const int B = lay.B, K = c.num_labels;
  const std::size_t BK = static_cast<std::size_t>(B) * K;
  const Problem p = problem_of(c, labels);
  require_labels(c, p, labels);
  // A packed batch costs its real tokens, not B x longest; the last layer runs the output rows only.
  lay.prune_last = m.engine.prune_last_layer && lay.outputs_are_first_tokens();

  DropoutPlan drop = m.dropout;
  drop.on = m.dropout_enabled;
  ++m.dropout.step;  // each training forward consumes one step of the stream

  require_device(m.device);  // a GPU: make it current on this thread
  const SmallWorkThreadLimit limit(c, static_cast<std::size_t>(lay.M));
  // TODO(cuda speed): a CUDA graph of the whole step per (B, T) shape plugs in below, behind the Backend.
  const bool bf16 = m.dtype == DType::BF16;
  const std::vector<LayerWeights16>* w16 = bf16 ? &m.round_weights() : nullptr;
  Acts& a = m.train_acts;
  allocate_acts(a, m.train_arena, k, c, lay, true, bf16);
  upload_tokens(a, tk, lay, k);
  if (p == Problem::SingleLabel) k.upload(a.class_ids, labels.class_ids, static_cast<std::size_t>(B) * sizeof(std::int32_t));
  else k.upload(a.targets, labels.values, BK * sizeof(float));

  m.forward_layers(a, lay, nullptr, drop, nullptr, w16);
  const float* out = a.logits;
  float* dlogits = a.dlogits;
  const std::int32_t* class_ids = a.class_ids;
  const float* targets = a.targets;
  if (logits) {
    logits->resize(BK);
    k.download(logits->data(), out, BK * sizeof(float));
  }

  const Tensor out_t(out, k.device, {B, K}), dlogits_t(dlogits, k.device, {B, K});
  float value = 0.0f;
  switch (p) {
    case Problem::SingleLabel: {
      const Tensor ids(class_ids, k.device, {B});
      value = ops::cross_entropy_forward(k, out_t, ids);
      ops::cross_entropy_backward(k, dlogits_t, out_t, ids, grad_scale);
      break;
    }
    case Problem::MultiLabel: {
      const Tensor y(targets, k.device, {B, K});
      value = ops::bce_with_logits_forward(k, out_t, y);
      ops::bce_with_logits_backward(k, dlogits_t, out_t, y, grad_scale);
      break;
    }
    case Problem::Regression: {
      const Tensor y(targets, k.device, {B, K});
      value = ops::mse_forward(k, out_t, y);
      ops::mse_backward(k, dlogits_t, out_t, y, grad_scale);
      break;
    }
  }
  m.backward(a, lay, dlogits, drop, w16);
  return value;
}

// ---------------------------------------------------------------------------------------------
// object plumbing, loading, saving

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

const ModelConfig& Model::config() const { return impl_->config; }
const Device& Model::device() const { return impl_->device; }
ModelConfig& Model::mutable_config() { return impl_->config; }

void Model::set_num_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}

void Model::release_threads() { omp_pause_resource_all(omp_pause_soft); }

std::vector<Parameter>& Model::parameters() {
  impl_->weights_changed();  // the caller may write through Parameter::data
  return impl_->params.list;
}

void Model::zero_grad() {
  const ParamTable& t = impl_->params;
  require_device(impl_->device);  // a GPU: its memory is zeroed from this thread
  if (t.backend) t.backend->zero(t.grads.data(), t.total * sizeof(float));
}

void Model::set_dropout(std::uint64_t seed, std::uint64_t offset) {
  impl_->dropout.seed = seed;
  impl_->dropout.step = offset;
}
std::uint64_t Model::dropout_offset() const { return impl_->dropout.step; }
void Model::set_dropout_enabled(bool enabled) { impl_->dropout_enabled = enabled; }
void Model::set_engine_options(const EngineOptions& options) { impl_->engine = options; }
const EngineOptions& Model::engine_options() const { return impl_->engine; }
void Model::mark_weights_changed() { impl_->weights_changed(); }

void Model::set_compute_dtype(DType dtype) {
  ops::require(*impl_->backend, dtype, fmt::format("compute dtype {}", compute_dtype_name(dtype)));
  impl_->dtype = dtype;
  impl_->weights_changed();
}
DType Model::compute_dtype() const { return impl_->dtype; }

GradientBuffer Model::gradient_buffer() {
  const ParamTable& t = impl_->params;
  const ModelConfig& c = impl_->config;
  return {t.grads.as<float>(), t.total, static_cast<std::size_t>(c.vocab_size), static_cast<std::size_t>(c.hidden_size)};
}
void Model::set_gradient_ready_hook(std::function<void(std::size_t)> hook) { impl_->gradient_ready = std::move(hook); }

Model Model::from_config(const ModelConfig& config, std::uint64_t init_seed, const Device& device) {
  Model model;
  Impl& m = *model.impl_;
  m.bind_device(device);
  m.config = config;
  build_param_table(m.params, config, *m.backend);
  upload_parameters(m.params, init_all_parameters(m.params, config, init_seed));
  return model;
}

Model Model::load(const std::string& dir, LoadReport* report, const LoadOptions& options) {
  Model model;
  Impl& m = *model.impl_;
  m.bind_device(options.device);
  ModelConfig config = load_config(dir);
  if (!options.labels.empty()) set_labels(config, options.labels);
  if (!options.problem_type.empty()) config.problem_type = options.problem_type;
  if (config.architectures.empty() || config.architectures[0] != config.sequence_classification_class())
    config.architectures = {config.sequence_classification_class()};
  m.config = config;
  ops::require(*m.backend, options.dtype, fmt::format("{}: compute dtype {}", dir, compute_dtype_name(options.dtype)));
  m.dtype = options.dtype;
  LoadReport local;
  upload_parameters(m.params, load_parameters(m.params, config, dir, *m.backend, options, report ? *report : local));
  return model;
}

void Model::save(const std::string& dir) const {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("{}: cannot create directory: {}", dir, ec.message());
  require_device(impl_->device);  // a GPU: the weights are downloaded from this thread
  save_parameters(impl_->params, (fs::path(dir) / "model.safetensors").string());
  save_config(impl_->config, (fs::path(dir) / "config.json").string());
}

}  // namespace tuneserve
