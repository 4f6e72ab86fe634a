// Attention on the GPU, fp32, tiled: a block owns a tile of query rows (forward, dQ) or of keys (dK,
// dV) of one (sequence, head) and streams the other side through shared memory. Warps own rows;
// lanes own keys for scores and head dimensions for outputs, exchanging weights by shuffles.
// The padded API reads the probabilities it saved (att) in backward; the varlen API recomputes them
// from lse. Both use the same kernels through a compile-time switch.
//
// Dimensions: C hidden, NH heads, HS head size, len rows of one sequence, W dropout width.
#include "kernels/cuda/attention.h"

#include <cmath>
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/dropout.cuh"

namespace tuneserve::cuda {

namespace {
constexpr int kThreads = 128;                   // 4 warps
constexpr int kWarps = kThreads / 32;
constexpr int kRowsPerWarp = 4;                 // forward and dQ: query rows per warp
constexpr int kQueryTile = kWarps * kRowsPerWarp;  // 16 query rows per block
constexpr int kKeyTile = 64;                    // keys per shared-memory tile (forward, dQ)
constexpr int kKeysPerWarp = 8;                 // dK/dV: keys per warp
constexpr int kKeyBlock = kWarps * kKeysPerWarp;  // 32 keys per block
constexpr int kQueryChunk = 32;                 // dK/dV: query rows per tile, one per lane

// Where sequence s lives: packed (cu_seqlens; every token a query) or padded (tokens at rows s*T..,
// length T, optional key mask; the first Tq tokens are queries, their outputs at rows s*Tq..).
// Dropout index of (s, h, t, t2): key_offset + ((s*NH + h)*W + t)*W + t2.
struct Geometry {
  const std::int32_t* cu_seqlens;
  int T, Tq;
  const std::int32_t* mask;
  int W;
  std::uint64_t key_offset;
};

// A sequence: its tokens at rows start.., len of them; its nq query rows' outputs (out, dout, lse,
// delta) at rows qbase...
struct Seq {
  int start, len, nq, qbase;
};

struct DropoutArgs {
  float p;
  std::uint64_t seed, stream;
};

__device__ __forceinline__ Seq sequence(const Geometry& g, int s) {
  if (g.cu_seqlens) {
    const int start = g.cu_seqlens[s], len = g.cu_seqlens[s + 1] - start;
    return {start, len, len, start};
  }
  return {s * g.T, g.T, g.Tq, s * g.Tq};
}

__device__ __forceinline__ float keep(const DropoutArgs& d, const Geometry& g, int s, int h, int NH, int t, int t2) {
  if (d.p <= 0.0f) return 1.0f;
  const std::uint64_t W = static_cast<std::uint64_t>(g.W);
  return dropout_keep(d.seed, d.stream, g.key_offset + ((static_cast<std::uint64_t>(s) * NH + h) * W + t) * W + t2,
                      d.p);
}

// rows x HS from qkv (part 0 q, 1 k, 2 v) or from a (rows, C) tensor, into shared memory with
// stride HS + 1 (so lanes reading different rows hit different banks); rows past len are zero.
template <int HS>
__device__ void load_rows(float* dst, const float* src, std::size_t row_stride, std::size_t offset, int start,
                          int first, int rows, int len) {
  for (int e = threadIdx.x; e < rows * HS; e += blockDim.x) {
    const int r = e / HS, d = e % HS, t = first + r;
    dst[r * (HS + 1) + d] = t < len ? src[static_cast<std::size_t>(start + t) * row_stride + offset + d] : 0.0f;
  }
}

// The K and V rows of keys first.. of head h (rows past len zero).
template <int HS>
__device__ void load_kv(float* sK, float* sV, const float* qkv, int C, int h, int start, int first, int rows,
                        int len) {
  const std::size_t C3 = 3 * static_cast<std::size_t>(C);
  load_rows<HS>(sK, qkv, C3, static_cast<std::size_t>(C) + h * HS, start, first, rows, len);
  load_rows<HS>(sV, qkv, C3, 2 * static_cast<std::size_t>(C) + h * HS, start, first, rows, len);
}

template <int HS>
__device__ __forceinline__ float dot_rows(const float* a, const float* b) {
  float acc = 0.0f;
#pragma unroll 16
  for (int d = 0; d < HS; ++d) acc += a[d] * b[d];
  return acc;
}

// ---- forward: out and lse; online softmax over key tiles --------------------------------------
template <int HS>
__global__ void __launch_bounds__(kThreads) forward_kernel(float* out, float* lse, const float* qkv, Geometry g,
                                                            int C, int NH, float scale, DropoutArgs drop) {
  constexpr int LD = HS + 1, SLOTS = HS / 32, CHUNKS = kKeyTile / 32;
  extern __shared__ float smem[];
  float* sQ = smem;
  float* sK = sQ + kQueryTile * LD;
  float* sV = sK + kKeyTile * LD;
  const int s = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * kQueryTile;
  const Seq q = sequence(g, s);
  const int start = q.start, len = q.len;
  if (q0 >= q.nq) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::size_t C3 = 3 * static_cast<std::size_t>(C);
  // A padded row whose mask has no key attends uniformly to all T positions (the CPU twin's rule).
  bool uniform = false;
  if (g.mask) {
    int any = 0;
    for (int j = threadIdx.x; j < len; j += blockDim.x) any |= g.mask[start + j] != 0;
    uniform = !__syncthreads_or(any);
  }
  load_rows<HS>(sQ, qkv, C3, static_cast<std::size_t>(h) * HS, start, q0, kQueryTile, q.nq);

  float m[kRowsPerWarp], l[kRowsPerWarp], o[kRowsPerWarp][SLOTS];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int i = 0; i < SLOTS; ++i) o[r][i] = 0.0f;
  }
  for (int k0 = 0; k0 < len; k0 += kKeyTile) {
    __syncthreads();
    load_kv<HS>(sK, sV, qkv, C, h, start, k0, kKeyTile, len);
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int qr = warp * kRowsPerWarp + r, t = q0 + qr;
      if (t >= q.nq) continue;  // warp-uniform
      float sc[CHUNKS];
      float mx = -INFINITY;
#pragma unroll
      for (int c = 0; c < CHUNKS; ++c) {
        const int j = c * 32 + lane, t2 = k0 + j;
        float v = -INFINITY;
        const bool masked = g.mask && !uniform && g.mask[start + min(t2, len - 1)] == 0;
        if (t2 < len && !masked) v = uniform ? 0.0f : dot_rows<HS>(sQ + qr * LD, sK + j * LD) * scale;
        sc[c] = v;
        mx = fmaxf(mx, v);
      }
      mx = warp_max(mx);
      const float m_new = fmaxf(m[r], mx);
      if (m_new == -INFINITY) continue;  // no key seen yet (warp-uniform)
      const float alpha = expf(m[r] - m_new);  // 0 while m[r] is -inf
      float psum = 0.0f, pz[CHUNKS];
#pragma unroll
      for (int c = 0; c < CHUNKS; ++c) {
        const float p = sc[c] == -INFINITY ? 0.0f : expf(sc[c] - m_new);
        psum += p;
        pz[c] = p == 0.0f ? 0.0f : p * keep(drop, g, s, h, NH, t, k0 + c * 32 + lane);
      }
      l[r] = l[r] * alpha + warp_sum(psum);
#pragma unroll
      for (int i = 0; i < SLOTS; ++i) o[r][i] *= alpha;
#pragma unroll
      for (int c = 0; c < CHUNKS; ++c) {
        for (int jj = 0; jj < 32; ++jj) {
          const float w = __shfl_sync(0xffffffffu, pz[c], jj);
          const float* v = sV + (c * 32 + jj) * LD + lane;
#pragma unroll
          for (int i = 0; i < SLOTS; ++i) o[r][i] += w * v[i * 32];
        }
      }
      m[r] = m_new;
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int t = q0 + warp * kRowsPerWarp + r;
    if (t >= q.nq) continue;
    const std::size_t row = static_cast<std::size_t>(q.qbase + t);
    const float inv = 1.0f / l[r];
#pragma unroll
    for (int i = 0; i < SLOTS; ++i) out[row * C + h * HS + i * 32 + lane] = o[r][i] * inv;
    if (lse && lane == 0) lse[row * NH + h] = m[r] + logf(l[r]);
  }
}

// att (B, NH, Tq, T) of the padded API from lse: one warp per (b, h, t) row, lanes over keys.
template <int HS>
__global__ void probabilities_kernel(float* att, const float* qkv, const float* lse, Geometry g, int B, int C, int NH,
                                     float scale) {
  const int T = g.T, Tq = g.Tq;
  const std::size_t rows = static_cast<std::size_t>(B) * NH * Tq;
  const std::size_t warp_id = grid_index() / 32;
  const int lane = threadIdx.x % 32;
  if (warp_id >= rows) return;
  const int t = static_cast<int>(warp_id % Tq), h = static_cast<int>(warp_id / Tq % NH),
            b = static_cast<int>(warp_id / Tq / NH);
  const std::size_t C3 = 3 * static_cast<std::size_t>(C);
  const float* q = qkv + (static_cast<std::size_t>(b) * T + t) * C3 + h * HS;
  bool any = g.mask == nullptr;
  for (int j = lane; j < T && !any; j += 32) any = g.mask[b * T + j] != 0;
  any = __any_sync(0xffffffffu, any);
  const float L = lse[(static_cast<std::size_t>(b) * Tq + t) * NH + h];
  float* row = att + warp_id * T;
  for (int t2 = lane; t2 < T; t2 += 32) {
    float p;
    if (!any) {
      p = 1.0f / static_cast<float>(T);
    } else if (g.mask && g.mask[b * T + t2] == 0) {
      p = 0.0f;
    } else {
      const float* k = qkv + (static_cast<std::size_t>(b) * T + t2) * C3 + C + h * HS;
      p = expf(dot_rows<HS>(q, k) * scale - L);
    }
    row[t2] = p;
  }
}

// ---- backward ---------------------------------------------------------------------------------
// P of (query t, key t2): saved (padded API) or recomputed from the scores and lse (varlen API).
template <int HS, bool kStored>
__device__ __forceinline__ float probability(const float* att, int s, int h, int NH, const Seq& q, int t, int t2,
                                             const float* qrow, const float* k, float scale, float L) {
  if constexpr (kStored)
    return att[((static_cast<std::size_t>(s) * NH + h) * q.nq + t) * q.len + t2];
  else
    return expf(dot_rows<HS>(qrow, k) * scale - L);
}

// delta (rows, NH) = sum over keys of P * dP = dO . O per (row, head): from out (varlen) ...
template <int HS>
__global__ void delta_from_out_kernel(float* delta, const float* dout, const float* out, std::size_t rows, int C,
                                      int NH) {
  const std::size_t warp_id = grid_index() / 32;
  const int lane = threadIdx.x % 32;
  if (warp_id >= rows * NH) return;
  const std::size_t row = warp_id / NH;
  const int h = static_cast<int>(warp_id % NH);
  float acc = 0.0f;
  for (int d = lane; d < HS; d += 32) acc += dout[row * C + h * HS + d] * out[row * C + h * HS + d];
  acc = warp_sum(acc);
  if (lane == 0) delta[row * NH + h] = acc;
}

// ... or from the saved probabilities (padded API, whose backward has no out): sum_t2 P z (dO . v).
template <int HS>
__global__ void delta_from_att_kernel(float* delta, const float* dout, const float* qkv, const float* att, Geometry g,
                                      int B, int C, int NH, DropoutArgs drop) {
  const int T = g.T, Tq = g.Tq;
  const std::size_t warp_id = grid_index() / 32;
  const int lane = threadIdx.x % 32;
  if (warp_id >= static_cast<std::size_t>(B) * NH * Tq) return;
  const int t = static_cast<int>(warp_id % Tq), h = static_cast<int>(warp_id / Tq % NH),
            b = static_cast<int>(warp_id / Tq / NH);
  const std::size_t C3 = 3 * static_cast<std::size_t>(C);
  const float* go = dout + (static_cast<std::size_t>(b) * Tq + t) * C + h * HS;
  const float* p = att + warp_id * T;
  float acc = 0.0f;
  for (int t2 = lane; t2 < T; t2 += 32) {
    if (p[t2] == 0.0f) continue;
    const float* v = qkv + (static_cast<std::size_t>(b) * T + t2) * C3 + 2 * C + h * HS;
    acc += p[t2] * dot_rows<HS>(go, v) * keep(drop, g, b, h, NH, t, t2);
  }
  acc = warp_sum(acc);
  if (lane == 0) delta[(static_cast<std::size_t>(b) * Tq + t) * NH + h] = acc;
}

// dQ rows: dq_t = sum_t2 dS(t, t2) k_t2, dS = P (z dO.v - delta) scale. Same tiling as forward.
template <int HS, bool kStored>
__global__ void __launch_bounds__(kThreads) dq_kernel(float* dqkv, const float* dout, const float* qkv,
                                                       const float* att, const float* lse, const float* delta,
                                                       Geometry g, int C, int NH, float scale, DropoutArgs drop) {
  constexpr int LD = HS + 1, SLOTS = HS / 32, CHUNKS = kKeyTile / 32;
  extern __shared__ float smem[];
  float* sQ = smem;
  float* sdO = sQ + kQueryTile * LD;
  float* sK = sdO + kQueryTile * LD;
  float* sV = sK + kKeyTile * LD;
  const int s = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * kQueryTile;
  const Seq q = sequence(g, s);
  const int start = q.start, len = q.len;
  if (q0 >= len) return;  // every token's dq row is written: zero past the queries
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::size_t C3 = 3 * static_cast<std::size_t>(C);
  load_rows<HS>(sQ, qkv, C3, static_cast<std::size_t>(h) * HS, start, q0, kQueryTile, q.nq);
  load_rows<HS>(sdO, dout, C, static_cast<std::size_t>(h) * HS, q.qbase, q0, kQueryTile, q.nq);
  float dq[kRowsPerWarp][SLOTS] = {};
  for (int k0 = 0; k0 < len; k0 += kKeyTile) {
    __syncthreads();
    load_kv<HS>(sK, sV, qkv, C, h, start, k0, kKeyTile, len);
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int qr = warp * kRowsPerWarp + r, t = q0 + qr;
      if (t >= q.nq) continue;  // warp-uniform
      const std::size_t row = static_cast<std::size_t>(q.qbase + t);
      const float L = kStored ? 0.0f : lse[row * NH + h];
      const float D = delta[row * NH + h];
      float ds[CHUNKS];
#pragma unroll
      for (int c = 0; c < CHUNKS; ++c) {
        const int j = c * 32 + lane, t2 = k0 + j;
        ds[c] = 0.0f;
        if (t2 < len) {
          const float p = probability<HS, kStored>(att, s, h, NH, q, t, t2, sQ + qr * LD, sK + j * LD, scale, L);
          if (p != 0.0f) {
            const float dp = dot_rows<HS>(sdO + qr * LD, sV + j * LD) * keep(drop, g, s, h, NH, t, t2);
            ds[c] = p * (dp - D) * scale;
          }
        }
      }
#pragma unroll
      for (int c = 0; c < CHUNKS; ++c) {
        for (int jj = 0; jj < 32; ++jj) {
          const float w = __shfl_sync(0xffffffffu, ds[c], jj);
          const float* k = sK + (c * 32 + jj) * LD + lane;
#pragma unroll
          for (int i = 0; i < SLOTS; ++i) dq[r][i] += w * k[i * 32];
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int t = q0 + warp * kRowsPerWarp + r;
    if (t >= len) continue;
    float* dst = dqkv + static_cast<std::size_t>(start + t) * C3 + h * HS + lane;
#pragma unroll
    for (int i = 0; i < SLOTS; ++i) dst[i * 32] = dq[r][i];
  }
}

// dK, dV rows of a block of keys: dv_t2 = sum_t P z dO_t, dk_t2 = sum_t dS q_t. Warps own keys,
// lanes own query rows of a chunk while scoring, then head dimensions while accumulating.
template <int HS, bool kStored>
__global__ void __launch_bounds__(kThreads) dkdv_kernel(float* dqkv, const float* dout, const float* qkv,
                                                         const float* att, const float* lse, const float* delta,
                                                         Geometry g, int C, int NH, float scale, DropoutArgs drop) {
  constexpr int LD = HS + 1, SLOTS = HS / 32;
  extern __shared__ float smem[];
  float* sK = smem;
  float* sV = sK + kKeyBlock * LD;
  float* sQ = sV + kKeyBlock * LD;
  float* sdO = sQ + kQueryChunk * LD;
  float* sL = sdO + kQueryChunk * LD;
  float* sD = sL + kQueryChunk;
  const int s = blockIdx.z, h = blockIdx.y, k0 = blockIdx.x * kKeyBlock;
  const Seq q = sequence(g, s);
  const int start = q.start, len = q.len;
  if (k0 >= len) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::size_t C3 = 3 * static_cast<std::size_t>(C);
  load_kv<HS>(sK, sV, qkv, C, h, start, k0, kKeyBlock, len);
  float dk[kKeysPerWarp][SLOTS] = {}, dv[kKeysPerWarp][SLOTS] = {};
  for (int q0 = 0; q0 < q.nq; q0 += kQueryChunk) {
    __syncthreads();
    load_rows<HS>(sQ, qkv, C3, static_cast<std::size_t>(h) * HS, start, q0, kQueryChunk, q.nq);
    load_rows<HS>(sdO, dout, C, static_cast<std::size_t>(h) * HS, q.qbase, q0, kQueryChunk, q.nq);
    for (int i = threadIdx.x; i < kQueryChunk; i += blockDim.x) {
      const int t = q0 + i;
      const std::size_t row = static_cast<std::size_t>(q.qbase + min(t, q.nq - 1));
      sL[i] = (kStored || t >= q.nq) ? 0.0f : lse[row * NH + h];
      sD[i] = t < q.nq ? delta[row * NH + h] : 0.0f;
    }
    __syncthreads();
    const int t = q0 + lane;  // this lane's query row while scoring
#pragma unroll
    for (int jj = 0; jj < kKeysPerWarp; ++jj) {
      const int j = warp * kKeysPerWarp + jj, t2 = k0 + j;
      if (t2 >= len) continue;  // warp-uniform
      float pz = 0.0f, ds = 0.0f;
      if (t < q.nq) {
        const float p = probability<HS, kStored>(att, s, h, NH, q, t, t2, sQ + lane * LD, sK + j * LD, scale, sL[lane]);
        if (p != 0.0f) {
          const float z = keep(drop, g, s, h, NH, t, t2);
          const float dp = dot_rows<HS>(sdO + lane * LD, sV + j * LD) * z;
          pz = p * z;
          ds = p * (dp - sD[lane]) * scale;
        }
      }
      for (int ii = 0; ii < kQueryChunk; ++ii) {
        const float a = __shfl_sync(0xffffffffu, pz, ii), b = __shfl_sync(0xffffffffu, ds, ii);
        const float* go = sdO + ii * LD + lane;
        const float* qi = sQ + ii * LD + lane;
#pragma unroll
        for (int i = 0; i < SLOTS; ++i) {
          dv[jj][i] += a * go[i * 32];
          dk[jj][i] += b * qi[i * 32];
        }
      }
    }
  }
#pragma unroll
  for (int jj = 0; jj < kKeysPerWarp; ++jj) {
    const int t2 = k0 + warp * kKeysPerWarp + jj;
    if (t2 >= len) continue;
    float* dst = dqkv + static_cast<std::size_t>(start + t2) * C3 + h * HS + lane;
#pragma unroll
    for (int i = 0; i < SLOTS; ++i) {
      dst[C + i * 32] = dk[jj][i];
      dst[2 * C + i * 32] = dv[jj][i];
    }
  }
}

// ---- launchers --------------------------------------------------------------------------------
template <typename Kernel>
void allow_shared(Kernel kernel, std::size_t bytes) {
  if (bytes > 48 * 1024)
    TUNESERVE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              static_cast<int>(bytes)));
}

void check_shapes(int C, int NH, int rows_per_seq, const char* api) {
  if (NH <= 0 || C % NH != 0)
    fail_message(std::string(api) + ": hidden size " + std::to_string(C) + " is not a multiple of " +
                 std::to_string(NH) + " heads");
  const int HS = C / NH;
  if (HS != 32 && HS != 64 && HS != 128)
    fail_message(std::string(api) + ": head size " + std::to_string(HS) + " is not supported (32, 64 or 128)");
  if (rows_per_seq < 0) fail_message(std::string(api) + ": negative sequence length");
}

DropoutArgs dropout_args(float p, const DropoutKey& key) { return {p, key.seed, key.stream}; }

template <int HS>
void forward_impl(float* out, float* lse, const float* qkv, const Geometry& g, int S, int max_len, int C, int NH,
                  const DropoutArgs& drop) {
  constexpr std::size_t smem = (kQueryTile + 2 * kKeyTile) * (HS + 1) * sizeof(float);
  allow_shared(forward_kernel<HS>, smem);
  const dim3 grid(static_cast<unsigned>((max_len + kQueryTile - 1) / kQueryTile), static_cast<unsigned>(NH),
                  static_cast<unsigned>(S));
  forward_kernel<HS><<<grid, kThreads, smem, stream()>>>(out, lse, qkv, g, C, NH, 1.0f / std::sqrt(float{HS}), drop);
  TUNESERVE_CUDA_LAUNCHED();
}

template <int HS, bool kStored>
void backward_impl(float* dqkv, const float* dout, const float* qkv, const float* att, const float* lse,
                   const float* delta, const Geometry& g, int S, int max_len, int C, int NH, const DropoutArgs& drop) {
  const float scale = 1.0f / std::sqrt(float{HS});
  constexpr std::size_t smem_dq = (2 * kQueryTile + 2 * kKeyTile) * (HS + 1) * sizeof(float);
  allow_shared(dq_kernel<HS, kStored>, smem_dq);
  const dim3 grid_q(static_cast<unsigned>((max_len + kQueryTile - 1) / kQueryTile), static_cast<unsigned>(NH),
                    static_cast<unsigned>(S));
  dq_kernel<HS, kStored><<<grid_q, kThreads, smem_dq, stream()>>>(dqkv, dout, qkv, att, lse, delta, g, C, NH, scale,
                                                                   drop);
  TUNESERVE_CUDA_LAUNCHED();
  constexpr std::size_t smem_kv = ((2 * kKeyBlock + 2 * kQueryChunk) * (HS + 1) + 2 * kQueryChunk) * sizeof(float);
  allow_shared(dkdv_kernel<HS, kStored>, smem_kv);
  const dim3 grid_k(static_cast<unsigned>((max_len + kKeyBlock - 1) / kKeyBlock), static_cast<unsigned>(NH),
                    static_cast<unsigned>(S));
  dkdv_kernel<HS, kStored><<<grid_k, kThreads, smem_kv, stream()>>>(dqkv, dout, qkv, att, lse, delta, g, C, NH, scale,
                                                                     drop);
  TUNESERVE_CUDA_LAUNCHED();
}

// Calls f.template operator()<HS>() with the head size as a compile-time constant.
template <typename F>
void with_head_size(int HS, F&& f) {
  switch (HS) {
    case 32: f.template operator()<32>(); break;
    case 64: f.template operator()<64>(); break;
    default: f.template operator()<128>(); break;  // check_shapes admitted only 32, 64, 128
  }
}

unsigned warp_blocks(std::size_t warps) { return blocks_for(warps * 32, 256); }

// The padded API's geometry from the CPU twin's AttentionRows (queries 0: all T; key_T 0: T).
Geometry padded_geometry(int T, const std::int32_t* mask, const AttentionRows& rows, const char* api) {
  const int Tq = rows.queries == 0 ? T : rows.queries;
  if (Tq < 0 || Tq > T)
    fail_message(std::string(api) + ": " + std::to_string(Tq) + " query rows for " + std::to_string(T) + " tokens");
  const int W = rows.key_T == 0 ? T : rows.key_T;
  if (W < T) fail_message(std::string(api) + ": key_T " + std::to_string(W) + " < T " + std::to_string(T));
  return {nullptr, T, Tq, mask, W, rows.key_offset};
}
}  // namespace

void attention_forward(float* out, float* att, const float* qkv, const std::int32_t* mask, int B, int T, int C,
                       int NH, float dropout_p, const DropoutKey& key, const AttentionRows& rows) {
  check_shapes(C, NH, T, "attention_forward");
  const Geometry g = padded_geometry(T, mask, rows, "attention_forward");
  if (B <= 0 || T <= 0 || g.Tq == 0) return;
  Scratch lse(static_cast<std::size_t>(B) * g.Tq * NH * sizeof(float));
  with_head_size(C / NH, [&]<int HS>() {
    forward_impl<HS>(out, lse.as<float>(), qkv, g, B, g.Tq, C, NH, dropout_args(dropout_p, key));
    if (att) {
      const std::size_t count = static_cast<std::size_t>(B) * NH * g.Tq;
      probabilities_kernel<HS><<<warp_blocks(count), 256, 0, stream()>>>(att, qkv, lse.as<float>(), g, B, C, NH,
                                                                        1.0f / std::sqrt(float{HS}));
      TUNESERVE_CUDA_LAUNCHED();
    }
  });
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T, int C,
                        int NH, float dropout_p, const DropoutKey& key, const AttentionRows& rows) {
  check_shapes(C, NH, T, "attention_backward");
  // The saved probabilities carry the mask; the uniform-row rule needs none here.
  const Geometry g = padded_geometry(T, nullptr, rows, "attention_backward");
  if (B <= 0 || T <= 0) return;
  if (g.Tq == 0) {
    zero(dqkv, static_cast<std::size_t>(B) * T * 3 * C * sizeof(float));
    return;
  }
  const DropoutArgs drop = dropout_args(dropout_p, key);
  Scratch delta(static_cast<std::size_t>(B) * g.Tq * NH * sizeof(float));
  with_head_size(C / NH, [&]<int HS>() {
    const std::size_t count = static_cast<std::size_t>(B) * NH * g.Tq;
    delta_from_att_kernel<HS><<<warp_blocks(count), 256, 0, stream()>>>(delta.as<float>(), dout, qkv, att, g, B, C,
                                                                       NH, drop);
    TUNESERVE_CUDA_LAUNCHED();
    backward_impl<HS, true>(dqkv, dout, qkv, att, nullptr, delta.as<float>(), g, B, T, C, NH, drop);
  });
}

void attention_varlen_forward(float* out, float* lse, const float* qkv, const std::int32_t* cu_seqlens, int S,
                              int max_seqlen, int C, int NH, float dropout_p, const DropoutKey& key,
                              int dropout_width) {
  check_shapes(C, NH, max_seqlen, "attention_varlen_forward");
  if (dropout_p > 0.0f && dropout_width < max_seqlen)
    fail_message("attention_varlen_forward: dropout width " + std::to_string(dropout_width) + " < max_seqlen " +
                 std::to_string(max_seqlen));
  if (S <= 0 || max_seqlen <= 0) return;
  const Geometry g{cu_seqlens, 0, 0, nullptr, dropout_width, 0};
  with_head_size(C / NH, [&]<int HS>() {
    forward_impl<HS>(out, lse, qkv, g, S, max_seqlen, C, NH, dropout_args(dropout_p, key));
  });
}

void attention_varlen_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                               const std::int32_t* cu_seqlens, int S, int max_seqlen, int C, int NH, float dropout_p,
                               const DropoutKey& key, int dropout_width) {
  check_shapes(C, NH, max_seqlen, "attention_varlen_backward");
  if (dropout_p > 0.0f && dropout_width < max_seqlen)
    fail_message("attention_varlen_backward: dropout width " + std::to_string(dropout_width) + " < max_seqlen " +
                 std::to_string(max_seqlen));
  if (S <= 0 || max_seqlen <= 0) return;
  std::int32_t rows = 0;  // R = cu_seqlens[S], for the delta buffer
  copy_to_host(&rows, cu_seqlens + S, sizeof rows);
  const Geometry g{cu_seqlens, 0, 0, nullptr, dropout_width, 0};
  Scratch delta(static_cast<std::size_t>(rows) * NH * sizeof(float));
  with_head_size(C / NH, [&]<int HS>() {
    delta_from_out_kernel<HS><<<warp_blocks(static_cast<std::size_t>(rows) * NH), 256, 0, stream()>>>(
        delta.as<float>(), dout, out, static_cast<std::size_t>(rows), C, NH);
    TUNESERVE_CUDA_LAUNCHED();
    backward_impl<HS, false>(dqkv, dout, qkv, nullptr, lse, delta.as<float>(), g, S, max_seqlen, C, NH,
                             dropout_args(dropout_p, key));
  });
}

}  // namespace tuneserve::cuda
