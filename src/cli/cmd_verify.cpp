// `tuneserve verify --model DIR --reference FILE.safetensors`: runs the model on the reference's
// inputs and compares every output the reference holds; exit 0 only when all are within tolerance.
//
// Reference keys (any subset; written by transformers, see README "Proving parity"):
//   input_ids, attention_mask, token_type_ids (B, T) ints; labels (B) ints or (B, K) floats
//   logits (B, K); hidden_states.i (B, T, C); loss (1); grad.<param name> (shape of the param)
//   train.lr / train.step_loss / train.grad_norm (S) and final.<param name>: S optimizer steps of
//   AdamW on the same batch at the given lrs (--weight-decay, --max-grad-norm as in the run)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

#include "checkpoint/safetensors.h"
#include "cli/command.h"
#include "core/error.h"
#include "model/model.h"
#include "storage/resolve.h"
#include "train/optimizer.h"

namespace tuneserve::cli {
namespace {

struct Options {
  std::string model;
  std::string revision = "main";
  std::string reference;
  int threads = 0;
  double atol = 1e-5, rtol = 1e-5;  // logits, hidden states, loss, trajectory
  double grad_tol = 1e-4;           // gradients: relative to the largest element of each tensor
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;
};

struct Comparison {
  int checked = 0;
  int failed = 0;

  // Passes when |got - want| <= tolerance(i) for every element; prints the worst ratio.
  void compare(const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
               const std::function<double(std::size_t)>& tolerance, const char* note = "") {
    ++checked;
    if (got.size() != want.size()) {
      ++failed;
      std::printf("%-60s FAIL  size %zu, reference %zu\n", what.c_str(), got.size(), want.size());
      return;
    }
    double max_abs = 0.0, max_rel = 0.0, worst = 0.0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      const double d = std::abs(static_cast<double>(got[i]) - want[i]);
      if (std::isnan(d)) {
        max_abs = worst = INFINITY;
        continue;
      }
      const double tol = tolerance(i);
      max_abs = std::max(max_abs, d);
      if (want[i] != 0.0f) max_rel = std::max(max_rel, d / std::abs(want[i]));
      worst = std::max(worst, tol > 0 ? d / tol : (d > 0 ? INFINITY : 0.0));
    }
    const bool ok = worst <= 1.0;
    failed += !ok;
    std::printf("%-60s %s  max_abs %.3e  max_rel %.3e  (%.2f of tolerance)%s\n", what.c_str(), ok ? "ok  " : "FAIL",
                max_abs, max_rel, worst, note);
  }

  // atol + rtol * |want| elementwise (logits, hidden states, loss, trajectory).
  void close(const std::string& what, const std::vector<float>& got, const std::vector<float>& want, double atol,
             double rtol) {
    compare(what, got, want, [&](std::size_t i) { return atol + rtol * std::abs(want[i]); });
  }

  // tol * the tensor's largest |element| (gradients), with an absolute floor of 1e-9: the key bias
  // gradient is analytically zero (softmax ignores a constant added to every score), so both sides
  // hold only rounding noise (~1e-12) there.
  void gradient(const std::string& what, const std::vector<float>& got, const std::vector<float>& want, double tol) {
    double max_ref = 0.0;
    for (float w : want) max_ref = std::max(max_ref, static_cast<double>(std::abs(w)));
    const double bound = std::max(tol * max_ref, 1e-9);
    compare(what, got, want, [&](std::size_t) { return bound; });
  }
};

std::vector<std::int32_t> ints(const SafeTensorsReader& r, const std::string& name) {
  const auto v = r.read_i64(name);
  std::vector<std::int32_t> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] < INT32_MIN || v[i] > INT32_MAX) fail("{}: {}[{}] = {} does not fit in int32", r.path(), name, i, v[i]);
    out[i] = static_cast<std::int32_t>(v[i]);
  }
  return out;
}

bool is_integer(DType d) { return d != DType::F32 && d != DType::F16 && d != DType::BF16 && d != DType::F64; }

int run(const Options& o) {
  if (o.threads > 0) Model::set_num_threads(o.threads);
  Model model = Model::load(storage::resolve_model(o.model, "", {o.revision}).model);
  const SafeTensorsReader ref(o.reference);
  if (!ref.contains("input_ids")) fail("{}: no 'input_ids' tensor: nothing to run the model on", o.reference);
  const TensorInfo& shape = ref.info("input_ids");
  if (shape.shape.size() != 2) fail("{}: 'input_ids' must be (B, T), found {}", o.reference, shape_string(shape.shape));
  const int B = static_cast<int>(shape.shape[0]), T = static_cast<int>(shape.shape[1]);
  const auto ids = ints(ref, "input_ids");
  std::vector<std::int32_t> mask, types;
  if (ref.contains("attention_mask")) mask = ints(ref, "attention_mask");
  if (ref.contains("token_type_ids")) types = ints(ref, "token_type_ids");
  if ((!mask.empty() && mask.size() != ids.size()) || (!types.empty() && types.size() != ids.size()))
    fail("{}: attention_mask / token_type_ids must have the shape of input_ids {}", o.reference,
         shape_string(shape.shape));
  const std::int32_t* mask_data = mask.empty() ? nullptr : mask.data();
  const std::int32_t* type_data = types.empty() ? nullptr : types.data();
  // Hidden states of every (B, T) position, padding included, as transformers returns them; the
  // training checks run the batch packed, as training does.
  const PackedBatch padded = PackedBatch::from_padded(B, T, ids.data(), mask_data, type_data, true);
  const PackedBatch batch = PackedBatch::from_padded(B, T, ids.data(), mask_data, type_data);
  std::printf("verify: %s (%s, %d layers) on %s: batch %d x %d\n", o.model.c_str(), arch_name(model.config().arch),
              model.config().num_layers, o.reference.c_str(), B, T);

  Comparison cmp;
  std::vector<std::vector<float>> hidden;
  const auto logits = model.forward(padded, {&hidden});
  if (ref.contains("logits")) cmp.close("logits", logits, ref.read_f32("logits"), o.atol, o.rtol);
  for (std::size_t i = 0; i < hidden.size(); ++i) {
    const std::string key = "hidden_states." + std::to_string(i);
    if (ref.contains(key)) cmp.close(key, hidden[i], ref.read_f32(key), o.atol, o.rtol);
  }

  if (ref.contains("labels")) {
    std::vector<std::int32_t> class_ids;
    std::vector<float> values;
    Labels labels;
    if (is_integer(ref.info("labels").dtype)) {
      class_ids = ints(ref, "labels");
      labels.class_ids = class_ids.data();
    } else {
      values = ref.read_f32("labels");
      labels.values = values.data();
    }
    model.set_dropout_enabled(false);  // a reference is made in eval-equivalent numerics (dropout 0)
    model.zero_grad();
    const float loss = model.forward_backward(batch, labels);
    if (ref.contains("loss")) cmp.close("loss", {loss}, ref.read_f32("loss"), o.atol, o.rtol);
    for (const Parameter& p : model.parameters()) {
      const std::string key = "grad." + p.name;
      if (ref.contains(key)) cmp.gradient(key, {p.grad, p.grad + p.numel}, ref.read_f32(key), o.grad_tol);
    }

    if (ref.contains("train.lr")) {
      const auto lrs = ref.read_f32("train.lr");
      std::vector<train::ParamRef> refs;
      for (Parameter& p : model.parameters()) refs.push_back({p.name, p.data, p.grad, p.numel});
      train::AdamW optimizer(refs, {0.9, 0.999, 1e-8, o.weight_decay});
      std::vector<float> step_loss, grad_norm;
      for (float lr : lrs) {
        model.zero_grad();
        step_loss.push_back(model.forward_backward(batch, labels));
        const double norm = optimizer.grad_norm();
        grad_norm.push_back(static_cast<float>(norm));
        optimizer.step(lr, train::clip_coefficient(norm, o.max_grad_norm));  // = clip_grad_norm_, then step
        model.mark_weights_changed();
      }
      if (ref.contains("train.step_loss"))
        cmp.close("train.step_loss", step_loss, ref.read_f32("train.step_loss"), o.atol, o.rtol);
      if (ref.contains("train.grad_norm"))
        cmp.close("train.grad_norm", grad_norm, ref.read_f32("train.grad_norm"), o.atol, o.rtol);
      for (const Parameter& p : model.parameters()) {
        const std::string key = "final." + p.name;
        if (!ref.contains(key)) continue;
        // Where the reference's step-0 gradient is below 1e-7, Adam's first update lr*g/(|g|+eps)
        // depends on the gradient's last digits (sums that cancel), which any other fp32 summation
        // order changes: those elements get lr/10 (1e-4 at the goldens' lr).
        const std::string g0 = "grad." + p.name;
        const auto want = ref.read_f32(key);
        const std::vector<float> grad0 = ref.contains(g0) ? ref.read_f32(g0) : std::vector<float>(want.size(), 1.0f);
        const double loose = 0.1 * *std::max_element(lrs.begin(), lrs.end());
        std::size_t relaxed = 0;  // elements that needed the looser bound
        for (std::size_t i = 0; i < grad0.size() && i < want.size() && i < p.numel; ++i)
          relaxed += std::abs(grad0[i]) < 1e-7f && std::abs(p.data[i] - want[i]) > o.atol + o.rtol * std::abs(want[i]);
        const std::string note =
            relaxed ? fmt::format("  [{} elements with near-zero step-0 gradient within {:.0e}]", relaxed, loose) : "";
        cmp.compare(key, {p.data, p.data + p.numel}, want,
                    [&](std::size_t i) {
                      if (i < grad0.size() && std::abs(grad0[i]) < 1e-7f) return loose;
                      return o.atol + o.rtol * std::abs(want[i]);
                    },
                    note.c_str());
      }
    }
  }
  if (cmp.checked == 0) fail("{}: holds none of logits, hidden_states.i, loss, grad.*, train.*: nothing to verify", o.reference);
  std::printf("verify: %d of %d outputs within tolerance: %s\n", cmp.checked - cmp.failed, cmp.checked,
              cmp.failed ? "FAILED" : "PASSED");
  return cmp.failed ? 1 : 0;
}

Registration registration{Command{
    "verify", "Check a model against a transformers reference file (logits, hidden states, loss, gradients)",
    [](CLI::App& app) -> std::function<int()> {
      auto o = std::make_shared<Options>();
      app.add_option("--model", o->model, "Model directory (config.json + weights), Hub id, s3:// URI or model.tar.gz")->required();
      app.add_option("--revision", o->revision, "Hub branch, tag or commit of --model/--tokenizer")->capture_default_str();
      app.add_option("--reference", o->reference, "safetensors file written by transformers (see README)")->required();
      app.add_option("--threads", o->threads, "CPU threads (default: all)");
      app.add_option("--atol", o->atol, "absolute tolerance for logits, hidden states, loss, trajectory")->capture_default_str();
      app.add_option("--rtol", o->rtol, "relative tolerance for logits, hidden states, loss, trajectory")->capture_default_str();
      app.add_option("--grad-tol", o->grad_tol, "gradient tolerance, relative to each tensor's largest element")->capture_default_str();
      app.add_option("--weight-decay", o->weight_decay, "AdamW weight decay of the reference run (train.* keys)")->capture_default_str();
      app.add_option("--max-grad-norm", o->max_grad_norm, "grad-norm clipping of the reference run (0 = off)")->capture_default_str();
      return [o] { return run(*o); };
    }}};

}  // namespace
}  // namespace tuneserve::cli
