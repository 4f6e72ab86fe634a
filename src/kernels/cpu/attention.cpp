// Attention on CPU, one (batch, head) pair per OpenMP task. Scores are computed against a
// transposed copy of K so the inner loop runs over keys in SIMD lanes with no horizontal sums.
#include "kernels/cpu/attention.h"

#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

namespace tuneserve {

namespace {
inline std::size_t idx3(int b, int t, int T, int width) {
  return (static_cast<std::size_t>(b) * T + t) * width;
}
// Small problems run on the calling thread: waking a team costs more than the work.
inline bool parallel_worthwhile(int B, int NH, int T, int HS) {
  return B * NH > 1 && static_cast<std::size_t>(B) * NH * T * T * HS > (1u << 16);
}
}  // namespace

void attention_forward(float* out, float* att, const float* qkv, const std::int32_t* mask, int B, int T, int C,
                       int NH, float dropout_p, const DropoutKey& key) {
  const int HS = C / NH;
  const int C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
#pragma omp parallel if (parallel_worthwhile(B, NH, T, HS))
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
        for (int t = 0; t < T; ++t) {
          const float* q = qkv + idx3(b, t, T, C3) + h * HS;
          float* row = att ? att + ((static_cast<std::size_t>(b) * NH + h) * T + t) * T : scratch.data();
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
          float* o = out + idx3(b, t, T, C) + h * HS;
          for (int d = 0; d < HS; ++d) o[d] = 0.0f;
          const std::size_t row_index = ((static_cast<std::size_t>(b) * NH + h) * T + t) * T;
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

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T, int C,
                        int NH, float dropout_p, const DropoutKey& key) {
  const int HS = C / NH;
  const int C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
#pragma omp parallel if (parallel_worthwhile(B, NH, T, HS))
  {
    std::vector<float> dp(T), ds(T), keep(T);
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < B; ++b) {
      for (int h = 0; h < NH; ++h) {
        for (int t = 0; t < T; ++t) {
          float* g = dqkv + idx3(b, t, T, C3) + h * HS;
          for (int d = 0; d < HS; ++d) g[d] = g[C + d] = g[2 * C + d] = 0.0f;
        }
        for (int t = 0; t < T; ++t) {
          const std::size_t row_index = ((static_cast<std::size_t>(b) * NH + h) * T + t) * T;
          const float* p = att + row_index;
          const float* go = dout + idx3(b, t, T, C) + h * HS;
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

}  // namespace tuneserve
