// A stand-in model for server tests: whitespace "tokens" hashed to ids, and logits that are a
// fixed function of one input's ids (so a batched row must equal the single-input row).
// It records every batch and can hold forward passes back to fill the queue on purpose.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "model/model.h"
#include "serve/backend.h"

namespace tuneserve::testing {

class FakeBackend : public serve::Backend {
 public:
  explicit FakeBackend(int num_labels = 2, int max_length = 32) {
    info_.id = "fake";
    info_.model_type = "fake";
    for (int i = 0; i < num_labels; ++i)
      info_.labels.id2label.push_back(i == 0 ? "NEGATIVE" : i == 1 ? "POSITIVE" : fmt::format("L{}", i));
    info_.max_input_length = max_length;
    info_.device = "fake:0";  // distinct from the default, so /info is seen to report the backend's
  }
  const serve::ModelInfo& info() const override { return info_; }

  Encoding tokenize(const TextInput& input, const TokenizeOptions& options) const override {
    Encoding e;
    auto add = [&](std::string_view s, int type) {
      std::istringstream words{std::string(s)};
      std::string w;
      while (words >> w) {
        if (w == "BOOM") fail("fake tokenizer: cannot tokenize BOOM");
        e.ids.push_back(static_cast<int>(std::hash<std::string>{}(w) % 1000) + 1000);
        e.type_ids.push_back(type);
      }
      e.ids.push_back(102);
      e.type_ids.push_back(type);
    };
    e.ids.push_back(101);
    e.type_ids.push_back(0);
    add(input.text, 0);
    if (input.text_pair) add(*input.text_pair, 1);
    const std::size_t limit = options.max_length.value_or(info_.max_input_length);
    if (!options.truncation && e.ids.size() > limit)
      throw InputTooLongError(fmt::format("input of {} tokens is longer than {}", e.ids.size(), limit));
    if (e.ids.size() > limit) {
      e.ids.resize(limit);
      e.type_ids.resize(limit);
      e.ids.back() = 102;
    }
    e.attention_mask.assign(e.ids.size(), 1);
    return e;
  }

  // Row i = f(ids of input i) only.
  static std::vector<float> row(std::span<const std::int32_t> ids, std::size_t K) {
    std::vector<float> out(K);
    double sum = 0;
    for (std::size_t t = 0; t < ids.size(); ++t) sum += ids[t] * double(t + 1);
    for (std::size_t k = 0; k < K; ++k)
      out[k] = static_cast<float>(std::sin(sum * 0.001 * double(k + 1)) * 3.0 + 0.1 * double(ids.size()) * double(k));
    return out;
  }
  static std::vector<float> row(const Encoding& e, std::size_t K) { return row(e.ids, K); }

  // Polls `stop` once, after a hold or delay, as the real model does between layers.
  std::vector<float> forward(const PackedBatch& batch, const std::function<bool()>& stop) override {
    {
      std::unique_lock lock(mutex_);
      batches_.push_back({static_cast<std::size_t>(batch.size()), batch.tokens()});
      ++running_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !held_; });
    }
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
    if (stop && stop()) {
      std::lock_guard lock(mutex_);
      --running_;
      ++stopped_;
      throw ForwardStopped("fake backend: stopped");
    }
    std::vector<float> out;
    for (int b = 0; b < batch.size(); ++b) {
      const std::span<const std::int32_t> ids(batch.input_ids.data() + batch.cu_seqlens[b], batch.length(b));
      if (ids.size() > 2 && fail_all_) fail("fake backend: forward failed");
      auto r = row(ids, info_.labels.id2label.size());
      if (nan_) r.back() = std::numeric_limits<float>::quiet_NaN();
      out.insert(out.end(), r.begin(), r.end());
    }
    std::lock_guard lock(mutex_);
    --running_;
    return out;
  }

  std::size_t forward_bytes(std::size_t) const override { return forward_bytes_; }
  void set_concurrency(int n) override { concurrency_ = n; }
  // As a server sharing 6 CPUs among its workers' passes would.
  int threads() const override { return concurrency_ > 0 ? std::max(1, 6 / concurrency_) : 0; }
  void release_threads() override { ++releases_; }
  int releases() const { return releases_; }
  void set_forward_bytes(std::size_t bytes) { forward_bytes_ = bytes; }
  int concurrency() const { return concurrency_; }

  void hold() { std::lock_guard lock(mutex_); held_ = true; }
  void release() {
    { std::lock_guard lock(mutex_); held_ = false; }
    cv_.notify_all();
  }
  // Waits until `n` forward passes are running (held or not).
  bool wait_running(int n, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return running_ >= n; });
  }
  void set_delay(std::chrono::milliseconds d) { delay_ = d; }
  void set_fail(bool f) { fail_all_ = f; }
  void set_nan(bool n) { nan_ = n; }  // every row's last logit NaN, as broken weights give
  int stopped() {  // forward passes abandoned because stop() said so
    std::lock_guard lock(mutex_);
    return stopped_;
  }
  std::vector<std::pair<std::size_t, std::size_t>> batches() {  // (inputs, tokens)
    std::lock_guard lock(mutex_);
    return batches_;
  }

 private:
  serve::ModelInfo info_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool held_ = false;
  int running_ = 0;
  int stopped_ = 0;
  std::chrono::milliseconds delay_{0};
  std::atomic<bool> fail_all_{false};
  std::atomic<bool> nan_{false};
  std::atomic<std::size_t> forward_bytes_{0};
  std::atomic<int> concurrency_{0};
  std::atomic<int> releases_{0};
  std::vector<std::pair<std::size_t, std::size_t>> batches_;
};

}  // namespace tuneserve::testing
