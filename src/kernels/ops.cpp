// The checked kernel layer (kernels/ops.h): shape, dtype and device checks, then the raw kernel.
//
// Dimensions: as in ops.h.
#include "kernels/ops.h"

#include <fmt/format.h>

#include "core/error.h"

namespace tuneserve {

namespace ops {
namespace {

// The checks of one op call: `op` names it in every error.
class Check {
 public:
  Check(const Backend& k, const char* op) : k_(k), op_(op) {}

  // `t` is a tensor of the backend's device, of `dtype`, rank dims.size() with these dims (-1: any).
  const Check& is(const Tensor& t, const char* name, DType dtype, std::initializer_list<std::int64_t> dims) const {
    if (t.empty()) fail("{}: '{}' is null", op_, name);
    if (t.device != k_.device) fail("{}: '{}' is {}, but the kernels run on {}", op_, name, t.describe(), k_.device.str());
    if (t.dtype != dtype) fail("{}: '{}' is {}, expected {}", op_, name, t.describe(), dtype_name(dtype));
    bool ok = t.rank == static_cast<int>(dims.size());
    int i = 0;
    for (const std::int64_t d : dims) {
      ok = ok && (d < 0 || (i < t.rank && t.dim(i) == d));
      ++i;
    }
    if (!ok) fail("{}: '{}' is {}, expected shape [{}]", op_, name, t.describe(), fmt::join(dims, ", "));
    if (t.row_stride && (t.rank != 2 || t.row_stride < t.dim(1)))
      fail("{}: '{}' is {}: a row stride needs 2 dims and at least as many elements as a row", op_, name, t.describe());
    return *this;
  }
  // As is(), but an empty tensor passes.
  const Check& optional(const Tensor& t, const char* name, DType dtype, std::initializer_list<std::int64_t> dims) const {
    return t.empty() ? *this : is(t, name, dtype, dims);
  }
  // A contiguous tensor of the backend's device and `dtype` with exactly `numel` elements.
  const Check& elements(const Tensor& t, const char* name, DType dtype, std::int64_t numel) const {
    if (t.empty()) fail("{}: '{}' is null", op_, name);
    if (t.device != k_.device) fail("{}: '{}' is {}, but the kernels run on {}", op_, name, t.describe(), k_.device.str());
    if (t.dtype != dtype) fail("{}: '{}' is {}, expected {}", op_, name, t.describe(), dtype_name(dtype));
    if (t.numel() != numel) fail("{}: '{}' is {}, expected {} elements", op_, name, t.describe(), numel);
    if (t.row_stride && t.row_stride != t.dim(1)) fail("{}: '{}' is {}, expected contiguous", op_, name, t.describe());
    return *this;
  }
  const Check& contiguous(const Tensor& t, const char* name) const {
    if (t.row_stride && t.row_stride != t.dim(1)) fail("{}: '{}' is {}, expected contiguous", op_, name, t.describe());
    return *this;
  }
  template <typename F>
  const F& entry(const F& f, const char* name) const {
    if (!f) fail("{}: the {} kernels have no {}", op_, k_.device.str(), name);
    return f;
  }

 private:
  const Backend& k_;
  const char* op_;
};

constexpr DType F32 = DType::F32, BF16 = DType::BF16, I32 = DType::I32;

template <typename T>
T* ptr(const Tensor& t) {
  return t.empty() ? nullptr : t.as<T>();
}
int as_int(std::int64_t v) { return static_cast<int>(v); }
std::size_t as_size(std::int64_t v) { return static_cast<std::size_t>(v); }

// Row stride to pass to a kernel: 0 when contiguous.
int stride_arg(const Tensor& t) { return t.row_stride && t.row_stride != t.dim(1) ? as_int(t.row_stride) : 0; }

}  // namespace

bool supports(const Backend& backend, DType dtype, std::string* why) {
  if (dtype == F32) return true;
  if (dtype != BF16) {
    if (why) *why = fmt::format("products in {} are not supported (fp32 or bf16)", dtype_name(dtype));
    return false;
  }
  std::string reason;
  const bool ok = backend.bf16_available(&reason);
  if (!ok && why) *why = reason;
  return ok;
}

void require(const Backend& backend, DType dtype, const std::string& what) {
  std::string why;
  if (!supports(backend, dtype, &why)) fail("{}: {}", what, why);
}

// ---- memory glue

void copy(const Backend& k, const Tensor& dst, const Tensor& src) {
  const Check c(k, "ops::copy");
  c.elements(dst, "dst", src.dtype, src.numel()).contiguous(src, "src");
  k.copy(dst.data, src.data, as_size(src.numel()) * dtype_size(src.dtype));
}

void zero(const Backend& k, const Tensor& dst) {
  Check(k, "ops::zero").contiguous(dst, "dst");
  if (dst.empty() || dst.device != k.device) fail("ops::zero: 'dst' is {}: not memory of {}", dst.describe(), k.device.str());
  k.zero(dst.data, as_size(dst.numel()) * dtype_size(dst.dtype));
}

void add(const Backend& k, const Tensor& a, const Tensor& b) {
  Check(k, "ops::add").elements(a, "a", F32, b.numel()).elements(b, "b", F32, a.numel());
  k.add(a.as<float>(), b.as<float>(), as_size(a.numel()));
}

void convert(const Backend& k, const Tensor& dst, const Tensor& src) {
  const Check c(k, "ops::convert");
  if (dst.dtype == BF16 && src.dtype == F32) {
    c.elements(dst, "dst", BF16, src.numel()).elements(src, "src", F32, dst.numel());
    c.entry(k.to_bf16, "bf16 conversion")(dst.as<Bf16>(), src.as<float>(), as_size(src.numel()));
  } else if (dst.dtype == F32 && src.dtype == BF16) {
    c.elements(dst, "dst", F32, src.numel()).elements(src, "src", BF16, dst.numel());
    c.entry(k.from_bf16, "bf16 conversion")(dst.as<float>(), src.as<Bf16>(), as_size(src.numel()));
  } else {
    fail("ops::convert: {} -> {}: only F32 <-> BF16", src.describe(), dst.describe());
  }
}

// ---- embeddings

void embedding_forward(const Backend& k, const Tensor& out, const Tensor& ids, const Tensor& pos, const Tensor& types,
                       const Tensor& wte, const Tensor& wpe, const Tensor& wtt) {
  const std::int64_t N = ids.dim(0), C = wte.dim(1);
  Check(k, "ops::embedding_forward")
      .is(ids, "ids", I32, {N})
      .is(pos, "pos", I32, {N})
      .optional(types, "types", I32, {N})
      .is(wte, "wte", F32, {-1, C})
      .is(wpe, "wpe", F32, {-1, C})
      .optional(wtt, "wtt", F32, {-1, C})
      .is(out, "out", F32, {N, C})
      .contiguous(out, "out");
  k.embedding_forward(out.as<float>(), ids.as<std::int32_t>(), pos.as<std::int32_t>(), ptr<std::int32_t>(types),
                      wte.as<float>(), wpe.as<float>(), ptr<float>(wtt), as_int(N), as_int(C));
}

void embedding_backward(const Backend& k, const Tensor& dwte, const Tensor& dwpe, const Tensor& dwtt,
                        const Tensor& dout, const Tensor& ids, const Tensor& pos, const Tensor& types) {
  const std::int64_t N = ids.dim(0), C = dwte.dim(1);
  Check(k, "ops::embedding_backward")
      .is(ids, "ids", I32, {N})
      .is(pos, "pos", I32, {N})
      .optional(types, "types", I32, {N})
      .is(dwte, "dwte", F32, {-1, C})
      .is(dwpe, "dwpe", F32, {-1, C})
      .optional(dwtt, "dwtt", F32, {-1, C})
      .is(dout, "dout", F32, {N, C})
      .contiguous(dout, "dout");
  k.embedding_backward(dwte.as<float>(), dwpe.as<float>(), ptr<float>(dwtt), dout.as<float>(), ids.as<std::int32_t>(),
                       pos.as<std::int32_t>(), ptr<std::int32_t>(types), as_int(N), as_int(C));
}

// ---- LayerNorm

void layernorm_forward(const Backend& k, const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& inp,
                       const Tensor& weight, const Tensor& bias, float eps) {
  const std::int64_t N = inp.dim(0), C = inp.dim(1);
  Check(k, "ops::layernorm_forward")
      .is(inp, "inp", F32, {N, C})
      .is(out, "out", F32, {N, C})
      .optional(mean, "mean", F32, {N})
      .optional(rstd, "rstd", F32, {N})
      .is(weight, "weight", F32, {C})
      .is(bias, "bias", F32, {C})
      .contiguous(inp, "inp")
      .contiguous(out, "out");
  k.layernorm_forward(out.as<float>(), ptr<float>(mean), ptr<float>(rstd), inp.as<float>(), weight.as<float>(),
                      bias.as<float>(), as_int(N), as_int(C), eps);
}

void residual_layernorm_forward(const Backend& k, const Tensor& out, const Tensor& res, const Tensor& mean,
                                const Tensor& rstd, const Tensor& a, const Tensor& b, const Tensor& weight,
                                const Tensor& bias, float eps, const Tensor& out16) {
  const char* op = "ops::residual_layernorm_forward";
  const std::int64_t N = a.dim(0), C = a.dim(1);
  const Check c(k, op);
  c.is(a, "a", F32, {N, C})
      .is(b, "b", F32, {N, C})
      .is(res, "res", F32, {N, C})
      .is(out, "out", F32, {N, C})
      .optional(mean, "mean", F32, {N})
      .optional(rstd, "rstd", F32, {N})
      .is(weight, "weight", F32, {C})
      .is(bias, "bias", F32, {C})
      .contiguous(a, "a")
      .contiguous(b, "b")
      .contiguous(res, "res")
      .contiguous(out, "out");
  if (out16.empty()) {
    k.residual_layernorm_forward(out.as<float>(), res.as<float>(), ptr<float>(mean), ptr<float>(rstd), a.as<float>(),
                                 b.as<float>(), weight.as<float>(), bias.as<float>(), as_int(N), as_int(C), eps);
    return;
  }
  c.is(out16, "out16", BF16, {N, C}).contiguous(out16, "out16");
  require(k, BF16, op);
  c.entry(k.residual_layernorm_forward_bf16, "LayerNorm with a bf16 output")(
      out.as<float>(), out16.as<Bf16>(), res.as<float>(), ptr<float>(mean), ptr<float>(rstd), a.as<float>(),
      b.as<float>(), weight.as<float>(), bias.as<float>(), as_int(N), as_int(C), eps);
}

void layernorm_backward(const Backend& k, const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                        const Tensor& dout, const Tensor& inp, const Tensor& weight, const Tensor& mean,
                        const Tensor& rstd) {
  const std::int64_t N = inp.dim(0), C = inp.dim(1);
  Check(k, "ops::layernorm_backward")
      .is(inp, "inp", F32, {N, C})
      .is(dout, "dout", F32, {N, C})
      .is(dinp, "dinp", F32, {N, C})
      .is(dweight, "dweight", F32, {C})
      .is(dbias, "dbias", F32, {C})
      .is(weight, "weight", F32, {C})
      .is(mean, "mean", F32, {N})
      .is(rstd, "rstd", F32, {N})
      .contiguous(inp, "inp")
      .contiguous(dout, "dout")
      .contiguous(dinp, "dinp");
  k.layernorm_backward(dinp.as<float>(), dweight.as<float>(), dbias.as<float>(), dout.as<float>(), inp.as<float>(),
                       weight.as<float>(), mean.as<float>(), rstd.as<float>(), as_int(N), as_int(C));
}

// ---- elementwise

void gelu_forward_cdf(const Backend& k, const Tensor& out, const Tensor& cdf, const Tensor& inp) {
  const std::int64_t n = inp.numel();
  Check(k, "ops::gelu_forward_cdf").elements(inp, "inp", F32, n).elements(out, "out", F32, n).elements(cdf, "cdf", F32, n);
  k.gelu_forward_cdf(out.as<float>(), cdf.as<float>(), inp.as<float>(), as_size(n));
}

void gelu_from_cdf(const Backend& k, const Tensor& out, const Tensor& inp, const Tensor& cdf) {
  const std::int64_t n = inp.numel();
  Check(k, "ops::gelu_from_cdf").elements(inp, "inp", F32, n).elements(out, "out", F32, n).elements(cdf, "cdf", F32, n);
  k.gelu_from_cdf(out.as<float>(), inp.as<float>(), cdf.as<float>(), as_size(n));
}

void gelu_backward_cdf(const Backend& k, const Tensor& dinp, const Tensor& inp, const Tensor& cdf, const Tensor& dout) {
  const std::int64_t n = inp.numel();
  Check(k, "ops::gelu_backward_cdf")
      .elements(inp, "inp", F32, n)
      .elements(cdf, "cdf", F32, n)
      .elements(dout, "dout", F32, n)
      .elements(dinp, "dinp", F32, n);
  k.gelu_backward_cdf(dinp.as<float>(), inp.as<float>(), cdf.as<float>(), dout.as<float>(), as_size(n));
}

void tanh_forward(const Backend& k, const Tensor& out, const Tensor& inp) {
  const std::int64_t n = inp.numel();
  Check(k, "ops::tanh_forward").elements(inp, "inp", F32, n).elements(out, "out", F32, n);
  k.tanh_forward(out.as<float>(), inp.as<float>(), as_size(n));
}

void tanh_backward(const Backend& k, const Tensor& dinp, const Tensor& out, const Tensor& dout) {
  const std::int64_t n = out.numel();
  Check(k, "ops::tanh_backward").elements(out, "out", F32, n).elements(dout, "dout", F32, n).elements(dinp, "dinp", F32, n);
  k.tanh_backward(dinp.as<float>(), out.as<float>(), dout.as<float>(), as_size(n));
}

void relu_forward(const Backend& k, const Tensor& out, const Tensor& inp) {
  const std::int64_t n = inp.numel();
  Check(k, "ops::relu_forward").elements(inp, "inp", F32, n).elements(out, "out", F32, n);
  k.relu_forward(out.as<float>(), inp.as<float>(), as_size(n));
}

void relu_backward(const Backend& k, const Tensor& dinp, const Tensor& inp, const Tensor& dout) {
  const std::int64_t n = inp.numel();
  Check(k, "ops::relu_backward").elements(inp, "inp", F32, n).elements(dout, "dout", F32, n).elements(dinp, "dinp", F32, n);
  k.relu_backward(dinp.as<float>(), inp.as<float>(), dout.as<float>(), as_size(n));
}

void dropout_forward(const Backend& k, const Tensor& out, const Tensor& inp, float p, const DropoutKey& key,
                     std::uint64_t index0) {
  const std::int64_t n = inp.numel();
  Check(k, "ops::dropout_forward").elements(inp, "inp", F32, n).elements(out, "out", F32, n);
  if (!(p >= 0.0f && p < 1.0f)) fail("ops::dropout_forward: probability {} outside [0, 1)", p);
  k.dropout_forward(out.as<float>(), inp.as<float>(), as_size(n), p, key, index0);
}

void dropout_backward(const Backend& k, const Tensor& dinp, const Tensor& dout, float p, const DropoutKey& key,
                      std::uint64_t index0) {
  const std::int64_t n = dout.numel();
  Check(k, "ops::dropout_backward").elements(dout, "dout", F32, n).elements(dinp, "dinp", F32, n);
  if (!(p >= 0.0f && p < 1.0f)) fail("ops::dropout_backward: probability {} outside [0, 1)", p);
  k.dropout_backward(dinp.as<float>(), dout.as<float>(), as_size(n), p, key, index0);
}

// ---- attention

namespace {
struct AttentionShape {
  std::int64_t B, T, C, Tq;
};
AttentionShape attention_shape(const Tensor& qkv, int NH, const AttentionRows& rows, const char* op) {
  if (qkv.rank != 3 || qkv.dim(2) % 3 != 0) fail("{}: 'qkv' is {}, expected [B, T, 3C]", op, qkv.describe());
  const std::int64_t B = qkv.dim(0), T = qkv.dim(1), C = qkv.dim(2) / 3;
  if (NH <= 0 || C % NH != 0) fail("{}: {} heads do not divide the hidden size {}", op, NH, C);
  const std::int64_t Tq = rows.queries ? rows.queries : T;
  if (Tq < 1 || Tq > T) fail("{}: {} query rows for {} tokens", op, Tq, T);
  return {B, T, C, Tq};
}
}  // namespace

void attention_forward(const Backend& k, const Tensor& out, const Tensor& att, const Tensor& qkv, const Tensor& mask,
                       int NH, float dropout_p, const DropoutKey& key, const AttentionRows& rows) {
  const char* op = "ops::attention_forward";
  const auto [B, T, C, Tq] = attention_shape(qkv, NH, rows, op);
  const Check c(k, op);
  c.is(qkv, "qkv", F32, {B, T, 3 * C}).optional(mask, "mask", I32, {B, T});
  if (out.dtype == BF16) {
    c.is(out, "out", BF16, {B, Tq, C});
    if (!att.empty() || dropout_p != 0.0f)
      fail("{}: a BF16 'out' is for inference: no 'att' and no dropout (got {}, p = {})", op, att.describe(),
           dropout_p);
    require(k, BF16, op);
    c.entry(k.attention_forward_bf16, "attention with a bf16 output")(out.as<Bf16>(), qkv.as<float>(),
                                                                      ptr<std::int32_t>(mask), as_int(B), as_int(T),
                                                                      as_int(C), NH, rows);
    return;
  }
  c.is(out, "out", F32, {B, Tq, C}).optional(att, "att", F32, {B, NH, Tq, T});
  k.attention_forward(out.as<float>(), ptr<float>(att), qkv.as<float>(), ptr<std::int32_t>(mask), as_int(B), as_int(T),
                      as_int(C), NH, dropout_p, key, rows);
}

void attention_backward(const Backend& k, const Tensor& dqkv, const Tensor& dout, const Tensor& qkv, const Tensor& att,
                        int NH, float dropout_p, const DropoutKey& key, const AttentionRows& rows) {
  const char* op = "ops::attention_backward";
  const auto [B, T, C, Tq] = attention_shape(qkv, NH, rows, op);
  Check(k, op)
      .is(qkv, "qkv", F32, {B, T, 3 * C})
      .is(dqkv, "dqkv", F32, {B, T, 3 * C})
      .is(dout, "dout", F32, {B, Tq, C})
      .is(att, "att", F32, {B, NH, Tq, T});
  k.attention_backward(dqkv.as<float>(), dout.as<float>(), qkv.as<float>(), att.as<float>(), as_int(B), as_int(T),
                       as_int(C), NH, dropout_p, key, rows);
}

// ---- linear

void linear_forward(const Backend& k, const Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias) {
  const char* op = "ops::linear_forward";
  const std::int64_t M = inp.dim(0), K = inp.dim(1), N = weight.dim(0);
  const DType t = inp.dtype;
  if (t != F32 && t != BF16) fail("{}: 'inp' is {}: products take F32 or BF16", op, inp.describe());
  const Check c(k, op);
  c.is(inp, "inp", t, {M, K}).is(weight, "weight", t, {N, K}).is(out, "out", F32, {M, N}).optional(bias, "bias", F32, {N});
  c.contiguous(inp, "inp").contiguous(weight, "weight");
  if (t == F32) {
    k.matmul_forward(out.as<float>(), inp.as<float>(), weight.as<float>(), ptr<float>(bias), as_int(M), as_int(K),
                     as_int(N), stride_arg(out));
  } else {
    require(k, BF16, op);
    c.entry(k.matmul_forward_bf16, "bf16 products")(out.as<float>(), inp.as<Bf16>(), weight.as<Bf16>(),
                                                    ptr<float>(bias), as_int(M), as_int(K), as_int(N), stride_arg(out));
  }
}

void linear_backward(const Backend& k, const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                     const Tensor& dout, const Tensor& inp, const Tensor& weight) {
  const char* op = "ops::linear_backward";
  const std::int64_t M = inp.dim(0), K = inp.dim(1), N = weight.dim(0);
  const DType t = inp.dtype;
  if (t != F32 && t != BF16) fail("{}: 'inp' is {}: products take F32 or BF16", op, inp.describe());
  const Check c(k, op);
  c.is(inp, "inp", t, {M, K})
      .is(weight, "weight", t, {N, K})
      .is(dout, "dout", F32, {M, N})
      .optional(dinp, "dinp", F32, {M, K})
      .is(dweight, "dweight", F32, {N, K})
      .optional(dbias, "dbias", F32, {N});
  c.contiguous(inp, "inp").contiguous(weight, "weight").contiguous(dweight, "dweight");
  if (!dinp.empty()) c.contiguous(dinp, "dinp");
  if (t == F32) {
    k.matmul_backward(ptr<float>(dinp), dweight.as<float>(), ptr<float>(dbias), dout.as<float>(), inp.as<float>(),
                      weight.as<float>(), as_int(M), as_int(K), as_int(N), stride_arg(dout));
  } else {
    require(k, BF16, op);
    c.entry(k.matmul_backward_bf16, "bf16 products")(ptr<float>(dinp), dweight.as<float>(), ptr<float>(dbias),
                                                     dout.as<float>(), inp.as<Bf16>(), weight.as<Bf16>(), as_int(M),
                                                     as_int(K), as_int(N), stride_arg(dout));
  }
}

std::unique_ptr<PreparedLinear> prepare_linear(const Backend& k, const Tensor& weight, const Tensor& bias,
                                               LinearActivation activation, DType dtype) {
  const char* op = "ops::prepare_linear";
  const std::int64_t N = weight.dim(0), K = weight.dim(1);
  Check(k, op).is(weight, "weight", F32, {N, K}).optional(bias, "bias", F32, {N}).contiguous(weight, "weight");
  require(k, dtype, op);
  return k.prepare_linear(weight.as<float>(), ptr<float>(bias), as_int(K), as_int(N), activation, dtype);
}

void prepared_forward(const PreparedLinear& layer, const Tensor& out, const Tensor& inp, std::int64_t rows) {
  const char* op = "ops::prepared_forward";
  const std::int64_t M = inp.dim(0);
  // fp32 operands, or bf16 ones in a layer whose products are bf16 (no conversion on the way).
  const bool bf16 = layer.dtype == BF16;
  const char* types = bf16 ? "F32 or BF16" : "F32";
  const auto type_ok = [&](const Tensor& x) { return x.dtype == F32 || (x.dtype == BF16 && bf16); };
  const auto strided = [](const Tensor& x) { return x.row_stride && x.row_stride != x.dim(1); };
  if (!type_ok(inp) || inp.rank != 2 || inp.dim(1) != layer.in_features || strided(inp))
    fail("{}: 'inp' is {}, expected contiguous {} [M, {}]", op, inp.describe(), types, layer.in_features);
  if (!type_ok(out) || out.rank != 2 || out.dim(0) != M || out.dim(1) != layer.out_features ||
      (out.row_stride && out.row_stride < out.dim(1)) || (out.dtype == BF16 && strided(out)))
    fail("{}: 'out' is {}, expected {} [{}, {}]{}", op, out.describe(), types, M, layer.out_features,
         bf16 ? " (BF16 only contiguous)" : "");
  if (out.device != inp.device) fail("{}: 'out' is {} but 'inp' is {}", op, out.describe(), inp.describe());
  if (rows > M) fail("{}: {} rows asked of tensors that hold {}", op, rows, M);
  layer.forward(out.data, out.dtype, inp.data, inp.dtype, as_int(rows < 0 ? M : rows), stride_arg(out), as_int(M));
}

// ---- losses

float cross_entropy_forward(const Backend& k, const Tensor& logits, const Tensor& targets) {
  const std::int64_t B = logits.dim(0), K = logits.dim(1);
  Check(k, "ops::cross_entropy_forward").is(logits, "logits", F32, {B, K}).is(targets, "targets", I32, {B});
  return k.cross_entropy_forward(logits.as<float>(), targets.as<std::int32_t>(), as_int(B), as_int(K));
}

void cross_entropy_backward(const Backend& k, const Tensor& dlogits, const Tensor& logits, const Tensor& targets,
                            float dloss) {
  const std::int64_t B = logits.dim(0), K = logits.dim(1);
  Check(k, "ops::cross_entropy_backward")
      .is(logits, "logits", F32, {B, K})
      .is(dlogits, "dlogits", F32, {B, K})
      .is(targets, "targets", I32, {B});
  k.cross_entropy_backward(dlogits.as<float>(), logits.as<float>(), targets.as<std::int32_t>(), as_int(B), as_int(K),
                           dloss);
}

float bce_with_logits_forward(const Backend& k, const Tensor& logits, const Tensor& targets) {
  const std::int64_t n = logits.numel();
  Check(k, "ops::bce_with_logits_forward").elements(logits, "logits", F32, n).elements(targets, "targets", F32, n);
  return k.bce_with_logits_forward(logits.as<float>(), targets.as<float>(), as_int(n));
}

void bce_with_logits_backward(const Backend& k, const Tensor& dlogits, const Tensor& logits, const Tensor& targets,
                              float dloss) {
  const std::int64_t n = logits.numel();
  Check(k, "ops::bce_with_logits_backward")
      .elements(logits, "logits", F32, n)
      .elements(targets, "targets", F32, n)
      .elements(dlogits, "dlogits", F32, n);
  k.bce_with_logits_backward(dlogits.as<float>(), logits.as<float>(), targets.as<float>(), as_int(n), dloss);
}

float mse_forward(const Backend& k, const Tensor& pred, const Tensor& targets) {
  const std::int64_t n = pred.numel();
  Check(k, "ops::mse_forward").elements(pred, "pred", F32, n).elements(targets, "targets", F32, n);
  return k.mse_forward(pred.as<float>(), targets.as<float>(), as_int(n));
}

void mse_backward(const Backend& k, const Tensor& dpred, const Tensor& pred, const Tensor& targets, float dloss) {
  const std::int64_t n = pred.numel();
  Check(k, "ops::mse_backward")
      .elements(pred, "pred", F32, n)
      .elements(targets, "targets", F32, n)
      .elements(dpred, "dpred", F32, n);
  k.mse_backward(dpred.as<float>(), pred.as<float>(), targets.as<float>(), as_int(n), dloss);
}

}  // namespace ops
}  // namespace tuneserve
