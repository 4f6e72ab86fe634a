// Attention on CPU, one (batch, head) pair per OpenMP task. Scores are computed against a
// transposed copy of K so the inner loop runs over keys in SIMD lanes with no horizontal sums.
#include "kernels/cpu/attention.h"

#include <immintrin.h>

#include <bit>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/isa.h"

#define TUNESERVE_ISA_FILE "kernels/cpu/attention.cpp"
#include "kernels/cpu/isa_passes.h"

namespace tuneserve {
TUNESERVE_ISA_BEGIN

namespace {
inline std::size_t idx3(int b, int t, int T, int width) {
  return (static_cast<std::size_t>(b) * T + t) * width;
}
// Small problems run on the calling thread: waking a team costs more than the work.
inline bool parallel_worthwhile(int B, int NH, int Tq, int T, int HS) {
  return B * NH > 1 && static_cast<std::size_t>(B) * NH * Tq * T * HS > (1u << 16);
}

// AttentionRows with its defaults resolved and checked.
struct Rows {
  int Tq;                  // query rows per sequence
  std::size_t key_T;       // dropout index row stride
  std::uint64_t key_offset;
  // Dropout index of probability (b, h, 0, 0).
  std::uint64_t key0(int b, int h, int NH) const {
    return key_offset + (static_cast<std::uint64_t>(b) * NH + h) * key_T * key_T;
  }
};

Rows resolve(const AttentionRows& r, int T) {
  const int Tq = r.queries > 0 ? std::min(r.queries, T) : T;
  const std::size_t key_T = r.key_T > 0 ? static_cast<std::size_t>(std::max(r.key_T, T)) : static_cast<std::size_t>(T);
  return {Tq, key_T, r.key_offset};
}

// The fast paths' keys per sequence b: row(b) (Tp) holds 1 for keys to attend to, 0 for masked keys
// and the padding up to Tp; any[b] says whether there is one.
struct KeyMask {
  KeyMask(const std::int32_t* mask, int B, int T, int Tp)
      : keys(static_cast<std::size_t>(B) * Tp, 0.0f), any(B, 0), Tp(Tp) {
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < T; ++t) {
        const bool on = !mask || mask[static_cast<std::size_t>(b) * T + t];
        keys[static_cast<std::size_t>(b) * Tp + t] = on ? 1.0f : 0.0f;
        any[b] |= on;
      }
  }
  const float* row(int b) const { return keys.data() + static_cast<std::size_t>(b) * Tp; }
  std::vector<float> keys;
  std::vector<char> any;
  int Tp;
};
}  // namespace

// Any head size: the reference the fast path is tested against.
void attention_forward_generic(float* out, float* att, const float* qkv, const std::int32_t* mask, int B, int T,
                               int C, int NH, float dropout_p, const DropoutKey& key, const AttentionRows& rows) {
  TUNESERVE_ISA_DISPATCH(attention_forward_generic, out, att, qkv, mask, B, T, C, NH, dropout_p, key, rows);
  const int HS = C / NH;
  const int C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const Rows q_rows = resolve(rows, T);
  const int Tq = q_rows.Tq;
#pragma omp parallel if (parallel_worthwhile(B, NH, Tq, T, HS))
  {
    std::vector<float> kt(static_cast<std::size_t>(HS) * T);  // K^T of one head (HS, T)
    std::vector<float> scratch(att ? 0 : T);
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < B; ++b) {
      for (int h = 0; h < NH; ++h) {
        for (int t2 = 0; t2 < T; ++t2) {
          const float* k = qkv + idx3(b, t2, T, C3) + C + h * HS;
          for (int d = 0; d < HS; ++d) kt[static_cast<std::size_t>(d) * T + t2] = k[d];
        }
        const std::int32_t* m = mask ? mask + static_cast<std::size_t>(b) * T : nullptr;
        bool any_key = true;
        if (m) {
          any_key = false;
          for (int t2 = 0; t2 < T; ++t2) any_key |= m[t2] != 0;
        }
        for (int t = 0; t < Tq; ++t) {
          const float* q = qkv + idx3(b, t, T, C3) + h * HS;
          float* row = att ? att + ((static_cast<std::size_t>(b) * NH + h) * Tq + t) * T : scratch.data();
          for (int t2 = 0; t2 < T; ++t2) row[t2] = 0.0f;
          for (int d = 0; d < HS; ++d) {
            const float qd = q[d] * scale;
            const float* kd = kt.data() + static_cast<std::size_t>(d) * T;
#pragma omp simd
            for (int t2 = 0; t2 < T; ++t2) row[t2] += qd * kd[t2];
          }
          if (!any_key) {
            for (int t2 = 0; t2 < T; ++t2) row[t2] = 1.0f / static_cast<float>(T);
          } else {
            float maxv = -std::numeric_limits<float>::infinity();
            for (int t2 = 0; t2 < T; ++t2)
              if ((!m || m[t2]) && row[t2] > maxv) maxv = row[t2];
            float sum = 0.0f;
            for (int t2 = 0; t2 < T; ++t2) {
              const float e = (!m || m[t2]) ? std::exp(row[t2] - maxv) : 0.0f;
              row[t2] = e;
              sum += e;
            }
            const float inv = 1.0f / sum;
            for (int t2 = 0; t2 < T; ++t2) row[t2] *= inv;
          }
          float* o = out + idx3(b, t, Tq, C) + h * HS;
          for (int d = 0; d < HS; ++d) o[d] = 0.0f;
          const std::uint64_t row_index = q_rows.key0(b, h, NH) + t * q_rows.key_T;
          for (int t2 = 0; t2 < T; ++t2) {
            float p = row[t2];
            if (p == 0.0f) continue;
            if (dropout_p > 0.0f) p *= dropout_scale(key, row_index + t2, dropout_p);
            const float* v = qkv + idx3(b, t2, T, C3) + 2 * C + h * HS;
#pragma omp simd
            for (int d = 0; d < HS; ++d) o[d] += p * v[d];
          }
        }
      }
    }
  }
}

namespace {

// GCC/Clang vector extensions: 16 floats, lowered to AVX-512, AVX2 or SSE by the compiler. The
// AVX2 pass passes them in pairs of registers, an ABI no caller outside this file sees.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v16 __attribute__((vector_size(64)));
typedef std::int32_t v16i __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4), may_alias));  // unaligned access

inline v16 load(const float* p) { return *reinterpret_cast<const v16u*>(p); }
inline void store(float* p, v16 v) { *reinterpret_cast<v16u*>(p) = v; }
// p[0..16) = v rounded to bf16 (round_to_bf16).
inline void store(Bf16* p, v16 v) {
  for (int i = 0; i < 16; ++i) p[i] = round_to_bf16(v[i]);
}
inline v16 splat(float x) { return v16{} + x; }

// exp(x) for x <= 0 (scores minus their max), Cephes' expf: range reduction by ln 2 in two parts,
// degree-6 polynomial; within 2 ulp of std::exp over the range softmax uses. Lanes of masked keys
// and of the padding past T (multiplied by 0 afterwards) can lie far above the row's max: they are
// clamped to 0, since from x ~ 87.3 the exponent bits overflow to inf and inf * 0 is NaN (a training
// run whose scores drifted that far negative turned every weight NaN).
inline v16 exp_nonpositive(v16 x) {
  x = x < splat(-87.0f) ? splat(-87.0f) : x;
  x = x > splat(0.0f) ? splat(0.0f) : x;
  const v16 magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const v16 nm = x * splat(1.44269504088896341f) + magic;
  const v16 n = nm - magic;
  v16 r = x - n * splat(0.693359375f);
  r = r - n * splat(-2.12194440e-4f);
  v16 p = splat(1.9875691500e-4f);
  p = p * r + splat(1.3981999507e-3f);
  p = p * r + splat(8.3334519073e-3f);
  p = p * r + splat(4.1665795894e-2f);
  p = p * r + splat(1.6666665459e-1f);
  p = p * r + splat(5.0000001201e-1f);
  p = p * r * r + r + splat(1.0f);
  const v16i bits = (std::bit_cast<v16i>(nm) - std::bit_cast<v16i>(magic) + 127) << 23;
  return p * std::bit_cast<v16>(bits);
}

// Register-blocked building blocks for one (batch, head) with HS a multiple of 16. Rows of Q, K,
// V, dO live at `row_stride` apart; key tiles are padded to Tp (a multiple of 64) with zeros.

// One step of a 16 x 16 transpose in registers (Eklundh's): rows a = r[i] and b = r[i + S] (i with
// bit S clear) swap their off-diagonal S x S blocks. Steps S = 8, 4, 2, 1 transpose the whole block.
template <int S, std::size_t... J>
inline void swap_blocks(v16& a, v16& b, std::index_sequence<J...>) {
  const v16 lo = __builtin_shufflevector(a, b, ((J & S) ? 16 + J - S : J)...);
  const v16 hi = __builtin_shufflevector(a, b, ((J & S) ? 16 + J : J + S)...);
  a = lo;
  b = hi;
}
template <int S>
inline void transpose_step(v16 r[16]) {
  for (int i = 0; i < 16; ++i)
    if (!(i & S)) swap_blocks<S>(r[i], r[i + S], std::make_index_sequence<16>{});
}

// tile (HS, Tp) = rows^T: row t2 of `base` becomes column t2, columns T..Tp zero. By blocks of 16
// rows x 16 columns transposed in registers: element by element (a scalar store per element, each
// to another row of the tile) it took a third of the attention's time at 8 x 128.
void transpose_rows(float* tile, const float* base, std::size_t row_stride, int T, int Tp, int HS) {
  for (int t0 = 0; t0 < Tp; t0 += 16) {
    for (int d0 = 0; d0 < HS; d0 += 16) {
      v16 r[16];
      for (int i = 0; i < 16; ++i) r[i] = t0 + i < T ? load(base + (t0 + i) * row_stride + d0) : v16{};
      transpose_step<8>(r);
      transpose_step<4>(r);
      transpose_step<2>(r);
      transpose_step<1>(r);
      for (int i = 0; i < 16; ++i) store(tile + static_cast<std::size_t>(d0 + i) * Tp + t0, r[i]);
    }
  }
}

// out (4, Tp) = scale * rows[r] . tile[:, t2]  (scores, or dO V^T)
void block_times_tile(float* out, const float* const rows[4], const float* tile, int Tp, int HS, float scale) {
  for (int j = 0; j < Tp; j += 64) {
    v16 acc[4][4] = {};
    for (int d = 0; d < HS; ++d) {
      const float* td = tile + static_cast<std::size_t>(d) * Tp + j;
      const v16 k0 = load(td), k1 = load(td + 16), k2 = load(td + 32), k3 = load(td + 48);
      for (int r = 0; r < 4; ++r) {
        const v16 qb = splat(rows[r][d] * scale);
        acc[r][0] += qb * k0;
        acc[r][1] += qb * k1;
        acc[r][2] += qb * k2;
        acc[r][3] += qb * k3;
      }
    }
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 4; ++c) store(out + static_cast<std::size_t>(r) * Tp + j + 16 * c, acc[r][c]);
  }
}

// The column loops below take NV (1..4 vectors of 16) as a template argument so the accumulators
// stay in registers: with a run-time count GCC kept them in memory and copied them with memcpy,
// which took a third of the attention time.

// Columns c0 .. c0 + 16*NV of weights_times_rows. Out: float, or Bf16 (rounded; not accumulate).
template <int NV, typename Out>
void weights_times_rows_cols(Out* out, std::size_t out_stride, int valid, const float* w, int Tp, const float* src,
                             std::size_t src_stride, int T, bool accumulate) {
  v16 acc[4][NV] = {};
  for (int t2 = 0; t2 < T; ++t2) {
    const float* v = src + static_cast<std::size_t>(t2) * src_stride;
    v16 vv[NV];
    for (int c = 0; c < NV; ++c) vv[c] = load(v + 16 * c);
    for (int r = 0; r < 4; ++r) {
      const v16 pb = splat(w[static_cast<std::size_t>(r) * Tp + t2]);
      for (int c = 0; c < NV; ++c) acc[r][c] += pb * vv[c];
    }
  }
  for (int r = 0; r < valid; ++r)
    for (int c = 0; c < NV; ++c) {
      Out* o = out + static_cast<std::size_t>(r) * out_stride + 16 * c;
      if constexpr (std::is_same_v<Out, float>) store(o, accumulate ? load(o) + acc[r][c] : acc[r][c]);
      else store(o, acc[r][c]);
    }
}

// out row r (r < valid) = (accumulate ? out : 0) + sum_t2 w[r][t2] * src[t2]   (P V, or dS K)
template <typename Out>
void weights_times_rows(Out* out, std::size_t out_stride, int valid, const float* w, int Tp, const float* src,
                        std::size_t src_stride, int T, int HS, bool accumulate) {
  for (int c0 = 0; c0 < HS; c0 += 64) {
    switch (std::min(4, (HS - c0) / 16)) {
      case 4: weights_times_rows_cols<4>(out + c0, out_stride, valid, w, Tp, src + c0, src_stride, T, accumulate); break;
      case 3: weights_times_rows_cols<3>(out + c0, out_stride, valid, w, Tp, src + c0, src_stride, T, accumulate); break;
      case 2: weights_times_rows_cols<2>(out + c0, out_stride, valid, w, Tp, src + c0, src_stride, T, accumulate); break;
      default: weights_times_rows_cols<1>(out + c0, out_stride, valid, w, Tp, src + c0, src_stride, T, accumulate);
    }
  }
}

// Columns c0 .. c0 + 16*NV of accumulate_outer (rows already offset by c0).
template <int NV>
void accumulate_outer_cols(float* dst, std::size_t dst_stride, const float* w, int Tp, const float* const rows[4],
                           int c0, int valid, int T) {
  v16 rv[4][NV] = {};
  for (int r = 0; r < valid; ++r)
    for (int c = 0; c < NV; ++c) rv[r][c] = load(rows[r] + c0 + 16 * c);
  for (int t2 = 0; t2 < T; ++t2) {
    float* o = dst + static_cast<std::size_t>(t2) * dst_stride + c0;
    v16 acc[NV];
    for (int c = 0; c < NV; ++c) acc[c] = load(o + 16 * c);
    for (int r = 0; r < 4; ++r) {
      const v16 wb = splat(w[static_cast<std::size_t>(r) * Tp + t2]);
      for (int c = 0; c < NV; ++c) acc[c] += wb * rv[r][c];
    }
    for (int c = 0; c < NV; ++c) store(o + 16 * c, acc[c]);
  }
}

// dst[t2] += sum_{r < valid} w[r][t2] * rows[r]   (dV += P^T dO, dK += dS^T Q)
void accumulate_outer(float* dst, std::size_t dst_stride, const float* w, int Tp, const float* const rows[4],
                      int valid, int T, int HS) {
  for (int c0 = 0; c0 < HS; c0 += 64) {
    switch (std::min(4, (HS - c0) / 16)) {
      case 4: accumulate_outer_cols<4>(dst, dst_stride, w, Tp, rows, c0, valid, T); break;
      case 3: accumulate_outer_cols<3>(dst, dst_stride, w, Tp, rows, c0, valid, T); break;
      case 2: accumulate_outer_cols<2>(dst, dst_stride, w, Tp, rows, c0, valid, T); break;
      default: accumulate_outer_cols<1>(dst, dst_stride, w, Tp, rows, c0, valid, T);
    }
  }
}

// The largest of v's lanes, in four steps of halves. Exact: a max does not depend on the order.
inline float lane_max(v16 v) {
  v16 w = __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
  v = w > v ? w : v;
  w = __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
  v = w > v ? w : v;
  w = __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
  v = w > v ? w : v;
  w = __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
  return w[0] > v[0] ? w[0] : v[0];
}

// A row of softmax over the keys keymask (Tp) allows (0 past T): pr (Tp) = exp(score - max) for
// those keys, 0 for the others; returns 1 / their sum, the factor that normalises them.
float softmax_exponentials(float* pr, const float* keymask, int Tp) {
  // The row's max over attended keys in lanes (a scalar compare-and-branch loop cost as much as the
  // exponentials).
  v16 lanes = splat(-std::numeric_limits<float>::infinity());
  for (int t2 = 0; t2 < Tp; t2 += 16) {
    const v16 x = load(pr + t2);
    lanes = load(keymask + t2) != splat(0.0f) && x > lanes ? x : lanes;
  }
  const float maxv = lane_max(lanes);
  v16 sum = {};
  for (int t2 = 0; t2 < Tp; t2 += 16) {
    const v16 e = exp_nonpositive(load(pr + t2) - splat(maxv)) * load(keymask + t2);
    store(pr + t2, e);
    sum += e;
  }
  float total = 0.0f;
  for (int i = 0; i < 16; ++i) total += sum[i];
  return 1.0f / total;
}

// pr (Tp) = softmax of the scores in pr over the allowed keys; uniform over T when the row allows none
// (any_key false).
void softmax_row(float* pr, const float* keymask, bool any_key, int T, int Tp) {
  if (!any_key) {
    for (int t2 = 0; t2 < Tp; ++t2) pr[t2] = t2 < T ? 1.0f / static_cast<float>(T) : 0.0f;
    return;
  }
  const v16 inv = splat(softmax_exponentials(pr, keymask, Tp));
  for (int t2 = 0; t2 < Tp; t2 += 16) store(pr + t2, load(pr + t2) * inv);
}

// Row pointers of a 4-row block starting at t0; rows past T repeat the last row (results unused).
void block_rows(const float* rows[4], const float* base, std::size_t row_stride, int t0, int T) {
  for (int r = 0; r < 4; ++r) rows[r] = base + static_cast<std::size_t>(t0 + r < T ? t0 + r : T - 1) * row_stride;
}

// Forward of one (batch, head): four query rows at a time, scores, softmax, dropout, P V.
//   keymask (Tp): 1 for keys to attend to, 0 for masked keys and padding beyond T.
//   Queries are the first Tq rows; dropout index of (t, t2) is att_index0 + t * key_T + t2.
//   Out: float, or Bf16 (the output rounded as to_bf16 would, for the bf16 product that reads it).
template <typename Out>
void head_forward_fast(Out* out, std::size_t out_stride, float* att_rows, const float* q_base,
                       const float* k_base, const float* v_base, std::size_t row_stride, const float* keymask,
                       bool any_key, int Tq, int T, int HS, float scale, float* kt, float* prob, float dropout_p,
                       const DropoutKey& key, std::uint64_t att_index0, std::size_t key_T, float* keep) {
  const int Tp = (T + 63) / 64 * 64;
  transpose_rows(kt, k_base, row_stride, T, Tp, HS);
  for (int t0 = 0; t0 < Tq; t0 += 4) {
    const float* q[4];
    block_rows(q, q_base, row_stride, t0, Tq);
    block_times_tile(prob, q, kt, Tp, HS, scale);
    for (int r = 0; r < 4; ++r) {
      float* pr = prob + static_cast<std::size_t>(r) * Tp;
      softmax_row(pr, keymask, any_key, T, Tp);
      if (att_rows && t0 + r < Tq) {
        float* dst = att_rows + static_cast<std::size_t>(t0 + r) * T;
        for (int t2 = 0; t2 < T; ++t2) dst[t2] = pr[t2];
      }
      if (dropout_p > 0.0f && t0 + r < Tq) {
        dropout_scales(keep, key, att_index0 + static_cast<std::uint64_t>(t0 + r) * key_T, T, dropout_p);
        for (int t2 = 0; t2 < T; ++t2) pr[t2] *= keep[t2];
      }
    }
    weights_times_rows(out + static_cast<std::size_t>(t0) * out_stride, out_stride, std::min(4, Tq - t0), prob, Tp,
                       v_base, row_stride, T, HS, false);
  }
}

// Backward of one (batch, head). dq/dk/dv rows (at row_stride) are written here; they start zeroed.
//   P (T, T) saved probabilities; Pd = P * keep; dPd = dO V^T; dP = dPd * keep;
//   dS = P * (dP - rowsum(dP * P)) * scale; dQ = dS K; dK = dS^T Q; dV = Pd^T dO.
//   Queries are the first Tq rows (P is (Tq, T)); dropout indices as in head_forward_fast.
void head_backward_fast(float* dq, float* dk, float* dv, const float* dout, std::size_t out_stride, const float* p,
                        const float* q_base, const float* k_base, const float* v_base, std::size_t row_stride, int Tq,
                        int T, int HS, float scale, float* vt, float* dp, float* pd, float dropout_p,
                        const DropoutKey& key, std::uint64_t att_index0, std::size_t key_T, float* keep) {
  const int Tp = (T + 63) / 64 * 64;
  transpose_rows(vt, v_base, row_stride, T, Tp, HS);
  for (int t0 = 0; t0 < Tq; t0 += 4) {
    const int valid = std::min(4, Tq - t0);
    const float *go[4], *q[4];
    block_rows(go, dout, out_stride, t0, Tq);
    block_rows(q, q_base, row_stride, t0, Tq);
    block_times_tile(dp, go, vt, Tp, HS, 1.0f);
    for (int r = 0; r < 4; ++r) {
      float* dpr = dp + static_cast<std::size_t>(r) * Tp;
      float* pdr = pd + static_cast<std::size_t>(r) * Tp;
      if (r >= valid) {  // rows past Tq contribute nothing to dK, dV
        for (int t2 = 0; t2 < Tp; ++t2) dpr[t2] = pdr[t2] = 0.0f;
        continue;
      }
      const float* pr = p + static_cast<std::size_t>(t0 + r) * T;
      if (dropout_p > 0.0f)
        dropout_scales(keep, key, att_index0 + static_cast<std::uint64_t>(t0 + r) * key_T, T, dropout_p);
      float dot = 0.0f;
      for (int t2 = 0; t2 < T; ++t2) {
        const float k = dropout_p > 0.0f ? keep[t2] : 1.0f;
        pdr[t2] = pr[t2] * k;
        dpr[t2] *= k;
        dot += dpr[t2] * pr[t2];
      }
      for (int t2 = 0; t2 < T; ++t2) dpr[t2] = pr[t2] * (dpr[t2] - dot) * scale;  // now dS
      for (int t2 = T; t2 < Tp; ++t2) dpr[t2] = pdr[t2] = 0.0f;
    }
    weights_times_rows(dq + static_cast<std::size_t>(t0) * row_stride, row_stride, valid, dp, Tp, k_base, row_stride,
                       T, HS, false);
    accumulate_outer(dk, row_stride, dp, Tp, q, valid, T, HS);
    accumulate_outer(dv, row_stride, pd, Tp, go, valid, T, HS);
  }
}

}  // namespace

#if TUNESERVE_ISA_AVX512
// attention_forward_bf16's products in bf16 (vdpbf16ps: 16 lanes, each the dot product of two pairs
// of bf16 accumulated in fp32), for CPUs with AVX512-BF16: half the multiply-adds of the fp32 path.
// "Pairs" below are 16 x uint32, each two bf16: element 2i in the low half, 2i + 1 in the high half.
#pragma GCC push_options
#pragma GCC target("avx512bf16")
namespace {

// 32 fp32 (lo, then hi) rounded to bf16 (to_bf16's rounding), in order: 16 pairs.
inline __m512i bf16_pairs(v16 lo, v16 hi) {
  return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(reinterpret_cast<__m512>(hi), reinterpret_cast<__m512>(lo)));
}
inline __m512 dot_pairs(__m512 acc, __m512i a, __m512i b) {
  return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(a), reinterpret_cast<__m512bh>(b));
}
inline __m512i load_pairs(const std::uint32_t* p) { return _mm512_loadu_si512(p); }
inline void store_pairs(std::uint32_t* p, __m512i v) { _mm512_storeu_si512(p, v); }

// Columns c0 .. c0 + 16*NV of P V for a 4-row block: out row r (r < valid) = sum over pairs i of
// p16[r][i] . vt[i] (rounded to bf16).
template <int NV>
void pairs_times_rows(Bf16* out, std::size_t out_stride, int valid, const std::uint32_t* p16, int P2,
                      const std::uint32_t* vt, int HS, int pairs) {
  __m512 acc[4][NV];
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < NV; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int i = 0; i < pairs; ++i) {
    __m512i vv[NV];
    for (int c = 0; c < NV; ++c) vv[c] = load_pairs(vt + static_cast<std::size_t>(i) * HS + 16 * c);
    for (int r = 0; r < 4; ++r) {
      const __m512i pb = _mm512_set1_epi32(static_cast<int>(p16[static_cast<std::size_t>(r) * P2 + i]));
      for (int c = 0; c < NV; ++c) acc[r][c] = dot_pairs(acc[r][c], pb, vv[c]);
    }
  }
  for (int r = 0; r < valid; ++r)
    for (int c = 0; c < NV; ++c)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + static_cast<std::size_t>(r) * out_stride + 16 * c),
                          reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(acc[r][c])));
}

// Buffers of one thread for head_forward_bf16 (HS a multiple of 32; Tp = T rounded up to 64).
struct Bf16HeadScratch {
  Bf16HeadScratch(int Tq, int Tp, int HS)
      : q16(static_cast<std::size_t>(Tq) * HS / 2), k16(static_cast<std::size_t>(Tp) * HS / 2),
        kt(k16.size()), vt(static_cast<std::size_t>(Tp) / 2 * HS), prob(static_cast<std::size_t>(4) * Tp),
        p16(static_cast<std::size_t>(4) * Tp / 2) {}
  std::vector<std::uint32_t> q16, k16, kt, vt;
  std::vector<float> prob;
  std::vector<std::uint32_t> p16;
};

// Forward of one (batch, head) with bf16 products, as head_forward_fast without dropout or kept
// probabilities: Q scaled then rounded, K, V and the probabilities rounded, scores and P V accumulated
// in fp32, the softmax in fp32, out rounded.
void head_forward_bf16(Bf16* out, std::size_t out_stride, const float* q_base, const float* k_base,
                       const float* v_base, std::size_t row_stride, const float* keymask, bool any_key, int Tq, int T,
                       int HS, float scale, Bf16HeadScratch& s) {
  const int Tp = (T + 63) / 64 * 64, H2 = HS / 2, P2 = Tp / 2, pairs = (T + 1) / 2;
  // K as pairs along the head's dimensions (k16: Tp rows of H2), transposed: kt (H2, Tp).
  for (int t2 = 0; t2 < Tp; ++t2)
    for (int d = 0; d < HS; d += 32) {
      const float* k = k_base + static_cast<std::size_t>(t2) * row_stride + d;
      store_pairs(s.k16.data() + static_cast<std::size_t>(t2) * H2 + d / 2,
                  t2 < T ? bf16_pairs(load(k), load(k + 16)) : _mm512_setzero_si512());
    }
  transpose_rows(reinterpret_cast<float*>(s.kt.data()), reinterpret_cast<const float*>(s.k16.data()), H2, Tp, Tp, H2);
  // V as pairs of consecutive rows (vt: P2 rows of HS): vt[i][c] = (v[2i][c], v[2i + 1][c]).
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                              6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  for (int i = 0; i < P2; ++i)
    for (int c = 0; c < HS; c += 16) {
      const int t2 = 2 * i;
      const v16 a = t2 < T ? load(v_base + static_cast<std::size_t>(t2) * row_stride + c) : v16{};
      const v16 b = t2 + 1 < T ? load(v_base + static_cast<std::size_t>(t2 + 1) * row_stride + c) : v16{};
      store_pairs(s.vt.data() + static_cast<std::size_t>(i) * HS + c,
                  _mm512_permutexvar_epi16(interleave, bf16_pairs(a, b)));
    }
  // Q scaled, as pairs (q16: Tq rows of H2).
  for (int t = 0; t < Tq; ++t)
    for (int d = 0; d < HS; d += 32) {
      const float* q = q_base + static_cast<std::size_t>(t) * row_stride + d;
      store_pairs(s.q16.data() + static_cast<std::size_t>(t) * H2 + d / 2,
                  bf16_pairs(load(q) * splat(scale), load(q + 16) * splat(scale)));
    }
  for (int t0 = 0; t0 < Tq; t0 += 4) {
    const std::uint32_t* q[4];
    for (int r = 0; r < 4; ++r) q[r] = s.q16.data() + static_cast<std::size_t>(std::min(t0 + r, Tq - 1)) * H2;
    // Scores (4, Tp), 64 keys at a time.
    for (int j = 0; j < Tp; j += 64) {
      __m512 acc[4][4];
      for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_setzero_ps();
      for (int p = 0; p < H2; ++p) {
        const std::uint32_t* kp = s.kt.data() + static_cast<std::size_t>(p) * Tp + j;
        const __m512i k0 = load_pairs(kp), k1 = load_pairs(kp + 16), k2 = load_pairs(kp + 32), k3 = load_pairs(kp + 48);
        for (int r = 0; r < 4; ++r) {
          const __m512i qb = _mm512_set1_epi32(static_cast<int>(q[r][p]));
          acc[r][0] = dot_pairs(acc[r][0], qb, k0);
          acc[r][1] = dot_pairs(acc[r][1], qb, k1);
          acc[r][2] = dot_pairs(acc[r][2], qb, k2);
          acc[r][3] = dot_pairs(acc[r][3], qb, k3);
        }
      }
      for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c)
          _mm512_storeu_ps(s.prob.data() + static_cast<std::size_t>(r) * Tp + j + 16 * c, acc[r][c]);
    }
    for (int r = 0; r < 4; ++r) {
      // The probabilities as pairs, normalised as they are rounded (softmax_row's values, one pass less).
      float* pr = s.prob.data() + static_cast<std::size_t>(r) * Tp;
      v16 inv = splat(1.0f);
      if (any_key) inv = splat(softmax_exponentials(pr, keymask, Tp));
      else softmax_row(pr, keymask, false, T, Tp);
      std::uint32_t* pairs_r = s.p16.data() + static_cast<std::size_t>(r) * P2;
      for (int t2 = 0; t2 < Tp; t2 += 32)
        store_pairs(pairs_r + t2 / 2, bf16_pairs(load(pr + t2) * inv, load(pr + t2 + 16) * inv));
    }
    const int valid = std::min(4, Tq - t0);
    Bf16* o = out + static_cast<std::size_t>(t0) * out_stride;
    for (int c0 = 0; c0 < HS; c0 += 64) {
      if (HS - c0 >= 64) pairs_times_rows<4>(o + c0, out_stride, valid, s.p16.data(), P2, s.vt.data() + c0, HS, pairs);
      else pairs_times_rows<2>(o + c0, out_stride, valid, s.p16.data(), P2, s.vt.data() + c0, HS, pairs);
    }
  }
}

// attention_forward_bf16 with bf16 products: HS a multiple of 32, a CPU with AVX512-BF16.
void attention_forward_bf16_products(Bf16* out, const float* qkv, const std::int32_t* mask, int B, int T, int C,
                                     int NH, const Rows& q_rows) {
  const int HS = C / NH, C3 = 3 * C, Tq = q_rows.Tq, Tp = (T + 63) / 64 * 64;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const KeyMask keys(mask, B, T, Tp);
#pragma omp parallel if (parallel_worthwhile(B, NH, Tq, T, HS))
  {
    Bf16HeadScratch scratch(Tq, Tp, HS);
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < NH; ++h) {
        const float* base = qkv + idx3(b, 0, T, C3) + h * HS;
        head_forward_bf16(out + idx3(b, 0, Tq, C) + h * HS, C, base, base + C, base + 2 * C, C3,
                          keys.row(b), keys.any[b], Tq, T, HS, scale, scratch);
      }
  }
}

}  // namespace
#pragma GCC pop_options
#endif  // TUNESERVE_ISA_AVX512

namespace {
// attention_forward's register-blocked path (HS a multiple of 16), writing out as Out.
template <typename Out>
void attention_forward_fast(Out* out, float* att, const float* qkv, const std::int32_t* mask, int B, int T, int C,
                            int NH, float dropout_p, const DropoutKey& key, const Rows& q_rows) {
  const int HS = C / NH;
  const int C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const int Tq = q_rows.Tq;
  const int Tp = (T + 63) / 64 * 64;
  const KeyMask keys(mask, B, T, Tp);
#pragma omp parallel if (parallel_worthwhile(B, NH, Tq, T, HS))
  {
    std::vector<float> kt(static_cast<std::size_t>(HS) * Tp), prob(static_cast<std::size_t>(4) * Tp), keep(Tp);
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < NH; ++h) {
        const float* base = qkv + idx3(b, 0, T, C3) + h * HS;
        const std::size_t att0 = (static_cast<std::size_t>(b) * NH + h) * Tq * T;
        head_forward_fast(out + idx3(b, 0, Tq, C) + h * HS, C, att ? att + att0 : nullptr, base, base + C,
                          base + 2 * C, C3, keys.row(b), keys.any[b], Tq, T, HS,
                          scale, kt.data(), prob.data(), dropout_p, key, q_rows.key0(b, h, NH), q_rows.key_T,
                          keep.data());
      }
  }
}
}  // namespace

void attention_forward(float* out, float* att, const float* qkv, const std::int32_t* mask, int B, int T, int C,
                       int NH, float dropout_p, const DropoutKey& key, const AttentionRows& rows) {
  TUNESERVE_ISA_DISPATCH(attention_forward, out, att, qkv, mask, B, T, C, NH, dropout_p, key, rows);
  if ((C / NH) % 16 == 0) {
    attention_forward_fast(out, att, qkv, mask, B, T, C, NH, dropout_p, key, resolve(rows, T));
    return;
  }
  // Parenthesised: this pass's variant, not the public one argument-dependent lookup would add.
  (attention_forward_generic)(out, att, qkv, mask, B, T, C, NH, dropout_p, key, rows);
}

void attention_forward_bf16(Bf16* out, const float* qkv, const std::int32_t* mask, int B, int T, int C, int NH,
                            const AttentionRows& rows) {
  TUNESERVE_ISA_DISPATCH(attention_forward_bf16, out, qkv, mask, B, T, C, NH, rows);
#if TUNESERVE_ISA_AVX512
  if ((C / NH) % 32 == 0 && cpu_isa() >= CpuIsa::avx512_bf16) {
    attention_forward_bf16_products(out, qkv, mask, B, T, C, NH, resolve(rows, T));
    return;
  }
#endif
  if ((C / NH) % 16 == 0) {
    attention_forward_fast(out, nullptr, qkv, mask, B, T, C, NH, 0.0f, DropoutKey{}, resolve(rows, T));
    return;
  }
  std::vector<float> out32(static_cast<std::size_t>(B) * resolve(rows, T).Tq * C);
  (attention_forward_generic)(out32.data(), nullptr, qkv, mask, B, T, C, NH, 0.0f, DropoutKey{}, rows);
  ::tuneserve::to_bf16(out, out32.data(), out32.size());
}

void attention_backward_generic(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T,
                                int C, int NH, float dropout_p, const DropoutKey& key, const AttentionRows& rows) {
  TUNESERVE_ISA_DISPATCH(attention_backward_generic, dqkv, dout, qkv, att, B, T, C, NH, dropout_p, key, rows);
  const int HS = C / NH;
  const int C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const Rows q_rows = resolve(rows, T);
  const int Tq = q_rows.Tq;
#pragma omp parallel if (parallel_worthwhile(B, NH, Tq, T, HS))
  {
    std::vector<float> dp(T), ds(T), keep(T);
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < B; ++b) {
      for (int h = 0; h < NH; ++h) {
        for (int t = 0; t < T; ++t) {
          float* g = dqkv + idx3(b, t, T, C3) + h * HS;
          for (int d = 0; d < HS; ++d) g[d] = g[C + d] = g[2 * C + d] = 0.0f;
        }
        for (int t = 0; t < Tq; ++t) {
          const std::uint64_t row_index = q_rows.key0(b, h, NH) + t * q_rows.key_T;
          const float* p = att + ((static_cast<std::size_t>(b) * NH + h) * Tq + t) * T;
          const float* go = dout + idx3(b, t, Tq, C) + h * HS;
          const float* q = qkv + idx3(b, t, T, C3) + h * HS;
          float* dq = dqkv + idx3(b, t, T, C3) + h * HS;
          for (int t2 = 0; t2 < T; ++t2)
            keep[t2] = dropout_p > 0.0f ? dropout_scale(key, row_index + t2, dropout_p) : 1.0f;
          // out = (P * keep) V: gradients to V and to P.
          float dot_sum = 0.0f;
          for (int t2 = 0; t2 < T; ++t2) {
            const float* v = qkv + idx3(b, t2, T, C3) + 2 * C + h * HS;
            float* dv = dqkv + idx3(b, t2, T, C3) + 2 * C + h * HS;
            const float pk = p[t2] * keep[t2];
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int d = 0; d < HS; ++d) {
              s += go[d] * v[d];
              dv[d] += pk * go[d];
            }
            dp[t2] = s * keep[t2];
            dot_sum += dp[t2] * p[t2];
          }
          // Softmax backward, then scores = scale * q.k.
          for (int t2 = 0; t2 < T; ++t2) ds[t2] = p[t2] * (dp[t2] - dot_sum) * scale;
          for (int t2 = 0; t2 < T; ++t2) {
            const float g = ds[t2];
            if (g == 0.0f) continue;
            const float* k = qkv + idx3(b, t2, T, C3) + C + h * HS;
            float* dk = dqkv + idx3(b, t2, T, C3) + C + h * HS;
#pragma omp simd
            for (int d = 0; d < HS; ++d) {
              dq[d] += g * k[d];
              dk[d] += g * q[d];
            }
          }
        }
      }
    }
  }
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T, int C,
                        int NH, float dropout_p, const DropoutKey& key, const AttentionRows& rows) {
  TUNESERVE_ISA_DISPATCH(attention_backward, dqkv, dout, qkv, att, B, T, C, NH, dropout_p, key, rows);
  const int HS = C / NH;
  if (HS % 16 != 0) {
    (attention_backward_generic)(dqkv, dout, qkv, att, B, T, C, NH, dropout_p, key, rows);  // this pass's
    return;
  }
  const int C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const int Tp = (T + 63) / 64 * 64;
  const Rows q_rows = resolve(rows, T);
  const int Tq = q_rows.Tq;
#pragma omp parallel if (parallel_worthwhile(B, NH, Tq, T, HS))
  {
    std::vector<float> vt(static_cast<std::size_t>(HS) * Tp), dp(static_cast<std::size_t>(4) * Tp),
        pd(static_cast<std::size_t>(4) * Tp), keep(Tp);
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < NH; ++h) {
        float* g = dqkv + idx3(b, 0, T, C3) + h * HS;
        for (int t = 0; t < T; ++t) {
          float* gt = g + static_cast<std::size_t>(t) * C3;
          for (int d = 0; d < HS; ++d) gt[d] = gt[C + d] = gt[2 * C + d] = 0.0f;
        }
        const float* base = qkv + idx3(b, 0, T, C3) + h * HS;
        const std::size_t att0 = (static_cast<std::size_t>(b) * NH + h) * Tq * T;
        head_backward_fast(g, g + C, g + 2 * C, dout + idx3(b, 0, Tq, C) + h * HS, C, att + att0, base, base + C,
                           base + 2 * C, C3, Tq, T, HS, scale, vt.data(), dp.data(), pd.data(), dropout_p, key,
                           q_rows.key0(b, h, NH), q_rows.key_T, keep.data());
      }
  }
}

TUNESERVE_ISA_END
}  // namespace tuneserve
