// The token-budget batcher of one model: a bounded queue of tokenized requests and the worker
// threads that pack them into batches (up to max_batch_tokens / max_batch_requests, waiting for
// company while requests keep arriving, at most max_batch_delay, unless the load is light: a lone
// request after a batch of one runs at once), drop cancelled ones, and run the backend's forward pass.
//   B inputs in a batch, K labels
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "serve/backend.h"
#include "serve/metrics.h"

namespace tuneserve::serve {

struct BatchConfig {
  std::size_t max_batch_tokens = 16384;   // real tokens per forward pass (batches are packed, unpadded)
  std::size_t max_batch_requests = 64;    // requests per forward pass
  // How long a batch waits for company: from its oldest request's arrival (or from the end of the
  // worker's last batch, if later). It goes earlier once as many requests are queued as the last
  // batch answered plus those queued when it ended, and a lone request after a batch of one at once.
  std::chrono::microseconds max_batch_delay{5000};
  std::size_t queue_size = 256;           // requests admitted at once (tokenizing, queued, running)
  int workers = 1;                        // forward passes that run concurrently
};

// One request's work. `done` gets logits (n_inputs, K) or the error; it is called exactly once,
// from a worker thread, unless the job was cancelled (then with an empty vector and no error).
struct Job {
  std::vector<Encoding> encodings;
  std::shared_ptr<std::atomic<bool>> cancelled;  // set when the client left or timed out
  std::function<void(std::vector<float> logits, std::exception_ptr error)> done;
  std::chrono::steady_clock::time_point enqueued{};
};

class Batcher {
 public:
  Batcher(std::shared_ptr<Backend> backend, BatchConfig config, Metrics* metrics, std::string model);
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Admission: reserves one of queue_size places, false when all are taken (answer 503 then).
  // Every successful try_admit is paired with one release(), after the answer is known.
  bool try_admit();
  void release();
  // Queues an admitted job. Never blocks on the model.
  void push(Job job);
  // Changes the number of worker threads; fewer finish their current batch first, then the
  // backend may release their activation memory. More workers than the available memory holds
  // activations for (Backend::forward_bytes at max_batch_tokens each) is an Error saying how many fit.
  void set_workers(int n);
  int workers() const;
  std::size_t admitted() const { return admitted_.load(); }
  const BatchConfig& config() const { return config_; }
  // Finishes every queued job, then joins the workers.
  void stop();

  // Counters for tests and /info.
  std::size_t batches_run() const { return batches_.load(); }
  std::size_t jobs_dropped() const { return dropped_.load(); }
  // Jobs pushed and not yet taken by a worker (cancelled ones included).
  std::size_t queued() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }

 private:
  void worker_loop(int index);
  void check_memory(int workers) const;  // under mutex_

  std::shared_ptr<Backend> backend_;
  BatchConfig config_;
  Metrics* metrics_;
  std::string model_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::size_t last_batch_requests_ = 0;  // requests in the batch most recently taken
  int target_workers_ = 0;
  std::vector<std::thread> threads_;
  std::atomic<std::size_t> admitted_{0};
  std::atomic<std::size_t> batches_{0};
  std::atomic<std::size_t> dropped_{0};
};

}  // namespace tuneserve::serve
