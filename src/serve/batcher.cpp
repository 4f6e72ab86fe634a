// Token-budget batching (see batcher.h): workers share one queue; whichever is free packs the
// oldest requests into the next batch (a PackedBatch: the model runs only real tokens, so the budget
// counts those), so a batch never waits for a busy worker.
//   B inputs in a batch, K labels
#include "serve/batcher.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <span>

#include "core/error.h"
#include "core/memory.h"
#include "model/model.h"

namespace tuneserve::serve {
namespace {

// Batches of at least this many requests end the worker's idle OpenMP threads after their pass (see
// worker_loop).
constexpr std::size_t kReleaseThreadsAfter = 16;

std::size_t tokens_of(const Job& job) {
  std::size_t tokens = 0;
  for (const auto& e : job.encodings) tokens += e.size();
  return tokens;
}

bool is_cancelled(const Job& job) { return job.cancelled && job.cancelled->load(); }

// The first input (row of K logits) holding a NaN or an infinity.
std::optional<std::size_t> non_finite_row(std::span<const float> logits, std::size_t K) {
  for (std::size_t i = 0; i < logits.size(); ++i)
    if (!std::isfinite(logits[i])) return i / K;
  return std::nullopt;
}

}  // namespace

Batcher::Batcher(std::shared_ptr<Backend> backend, BatchConfig config, Metrics* metrics,
                 std::string model)
    : backend_(std::move(backend)), config_(config), metrics_(metrics), model_(std::move(model)) {
  if (config_.max_batch_requests == 0) fail("max_batch_requests must be at least 1");
  if (config_.max_batch_tokens == 0) fail("max_batch_tokens must be at least 1");
  if (config_.queue_size == 0) fail("job queue size must be at least 1");
  set_workers(std::max(1, config_.workers));
}

Batcher::~Batcher() { stop(); }

bool Batcher::try_admit() {
  std::size_t current = admitted_.load();
  do {
    if (current >= config_.queue_size) return false;
  } while (!admitted_.compare_exchange_weak(current, current + 1));
  if (metrics_) metrics_->set("tuneserve_queue_depth", {{"model", model_}}, double(current + 1));
  return true;
}

void Batcher::release() {
  const std::size_t now = --admitted_;
  if (metrics_) metrics_->set("tuneserve_queue_depth", {{"model", model_}}, double(now));
}

void Batcher::push(Job job) {
  job.enqueued = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back(std::move(job));
      job.done = nullptr;
    }
  }
  // A model being unloaded takes no new work; the request gets an error, not silence.
  if (job.done) {
    job.done({}, std::make_exception_ptr(Error(fmt::format("model {} is unloading", model_))));
    return;
  }
  cv_.notify_all();
}

void Batcher::set_workers(int n) {
  if (n < 1) fail("workers must be at least 1, got {}", n);
  std::vector<std::thread> retired;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    check_memory(n);
    target_workers_ = n;
    while (static_cast<int>(threads_.size()) < n) {
      const int index = static_cast<int>(threads_.size());
      threads_.emplace_back([this, index] { worker_loop(index); });
    }
    while (static_cast<int>(threads_.size()) > n) {
      retired.push_back(std::move(threads_.back()));
      threads_.pop_back();
    }
  }
  cv_.notify_all();
  for (auto& t : retired) t.join();
  // The retired workers' batches are done: their activation memory can go back.
  backend_->set_concurrency(n);
  if (!retired.empty()) release_free_memory();
  if (metrics_) metrics_->set("tuneserve_workers", {{"model", model_}}, n);
}

void Batcher::check_memory(int n) const {
  const int running = target_workers_;
  const std::size_t each = backend_->forward_bytes(config_.max_batch_tokens);
  if (each == 0 || n <= running) return;
  const auto available = available_memory();
  if (!available) return;
  const std::size_t fit = *available / each;  // more workers than are running now
  if (static_cast<std::size_t>(n - running) <= fit) return;
  fail("model {}: {} workers need about {} each for their activations at max_batch_tokens {}, and {} of "
       "memory is available: at most {} workers fit (lower max_batch_tokens for more)",
       model_, n, format_bytes(each), config_.max_batch_tokens, format_bytes(*available),
       static_cast<std::size_t>(running) + fit);
}

int Batcher::workers() const {
  std::lock_guard lock(mutex_);
  return target_workers_;
}

void Batcher::stop() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (auto& t : threads) t.join();
}

void Batcher::worker_loop(int index) {
  std::unique_lock lock(mutex_);
  auto free_since = std::chrono::steady_clock::now();  // when this worker last finished a batch
  std::size_t expected = 0;  // requests this worker's next batch waits for (see below)
  // The queued requests are enough to go: a full batch (one that cannot take the next queued request
  // anyway), or as many as expected.
  auto batch_ready = [&] {
    std::size_t requests = 0, tokens = 0;
    for (const Job& job : queue_) {
      if (is_cancelled(job)) continue;
      ++requests;
      tokens += tokens_of(job);
      if (requests >= config_.max_batch_requests || tokens >= config_.max_batch_tokens) return true;
    }
    return requests >= expected;
  };
  for (;;) {
    cv_.wait(lock, [&] { return index >= target_workers_ || stopping_ || !queue_.empty(); });
    if (index >= target_workers_ && !stopping_) return;
    if (queue_.empty()) {
      if (stopping_) return;
      continue;
    }
    // Waiting for company. A lone request after a batch of at most one goes at once: the load is
    // light, and holding it would only add max_batch_delay to its latency. Otherwise the batch waits
    // for at most max_batch_delay, counted from the oldest request's arrival, or from the end of this
    // worker's last batch if that came later. It goes earlier once the requests expected are queued:
    // those that queued while the last batch ran plus those it answered, for clients that each wait
    // for their answer before asking again come back within a few milliseconds. A next batch that
    // left without them would split the clients into groups that take turns, in smaller batches, for
    // good; and one that left without a late few would make each of them wait a whole pass more.
    // Ending the wait after a quiet gap instead (a quarter, then half of max_batch_delay without an
    // arrival) left a few clients behind in 2-12 of ~130 passes at c=32 on 2 cores: some came back
    // 3-7 ms after their answer. Clients that do not come back cost at most max_batch_delay.
    const bool light = last_batch_requests_ <= 1 && queue_.size() == 1;
    const auto deadline = std::max(queue_.front().enqueued, free_since) + config_.max_batch_delay;
    while (!light && !stopping_ && !queue_.empty() && !batch_ready()) {
      if (std::chrono::steady_clock::now() >= deadline) break;
      cv_.wait_until(lock, deadline);
    }
    if (queue_.empty()) continue;

    std::vector<Job> batch, dropped;
    std::size_t inputs = 0, tokens = 0;
    while (!queue_.empty()) {
      Job& job = queue_.front();
      if (is_cancelled(job)) {
        dropped.push_back(std::move(job));
        queue_.pop_front();
        continue;
      }
      const std::size_t n = job.encodings.size(), t = tokens_of(job);
      // The first request always goes, even one over the budget on its own.
      if (!batch.empty() && tokens + t > config_.max_batch_tokens) break;
      inputs += n;
      tokens += t;
      batch.push_back(std::move(job));
      queue_.pop_front();
      if (batch.size() >= config_.max_batch_requests) break;
    }
    if (!batch.empty()) last_batch_requests_ = batch.size();
    const bool more = !queue_.empty();
    lock.unlock();
    if (more) cv_.notify_one();

    dropped_ += dropped.size();
    for (Job& job : dropped) job.done({}, nullptr);
    if (!batch.empty()) {
      const auto start = std::chrono::steady_clock::now();
      for (const Job& job : batch) {
        if (metrics_)
          metrics_->observe("tuneserve_queue_duration_seconds", {{"model", model_}},
                            std::chrono::duration<double>(start - job.enqueued).count());
      }
      std::vector<float> logits;
      std::exception_ptr error;
      // Once every request of the batch has timed out or left, nobody waits for the answer.
      const auto abandoned = [&batch] { return std::all_of(batch.begin(), batch.end(), is_cancelled); };
      bool stopped = false;
      try {
        if (inputs == 0) fail("model {}: a batch without inputs", model_);
        PackedBatch packed;
        for (const Job& job : batch)
          for (const auto& e : job.encodings) packed.append(e.ids, e.type_ids);
        logits = backend_->forward(packed, abandoned);
        if (logits.empty() || logits.size() % inputs != 0)
          fail("model {}: forward returned {} logits for {} inputs", model_, logits.size(), inputs);
      } catch (const ForwardStopped&) {
        stopped = true;
      } catch (...) {
        error = std::current_exception();
      }
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      {
        // Counted before the answers go out: a client answered below may be back before the lock is.
        std::lock_guard relock(mutex_);
        expected = batch.size() + static_cast<std::size_t>(std::count_if(
                                      queue_.begin(), queue_.end(), [](const Job& job) { return !is_cancelled(job); }));
      }
      // libgomp keeps a pass's idle threads spinning ~3 ms for the next parallel region. After a large
      // batch that is most of the time its clients take to be answered and come back, and on a
      // machine with few cores the spinning thread holds a core they need. Measured at c=32 on 2 cores
      // (bf16, ~67 ms passes, 3 runs each way): the time between passes fell from 2.8-3.1 ms to
      // 1.6-2.1, the passes grew ~0.5 ms (the threads start again), wrk's p99 went from 110-120 ms to
      // 98-113. After every batch, c=1 and c=8 passes were 2-5% slower: the restart costs more than
      // the spin takes from a small batch's clients, hence the bound.
      if (batch.size() >= kReleaseThreadsAfter) backend_->release_threads();
      batches_++;
      if (metrics_) {
        const Labels labels{{"model", model_}};
        metrics_->observe("tuneserve_inference_duration_seconds", labels, seconds);
        metrics_->observe("tuneserve_batch_size", labels, double(inputs));
        metrics_->observe("tuneserve_batch_tokens", labels, double(tokens));
      }
      if (stopped) {
        dropped_ += batch.size();
        for (Job& job : batch) job.done({}, nullptr);
        batch.clear();
      }
      const std::size_t K = error || stopped ? 0 : logits.size() / inputs;
      std::size_t row = 0;
      for (Job& job : batch) {
        const std::size_t n = job.encodings.size();
        if (error) {
          job.done({}, error);
        } else if (auto bad = non_finite_row(std::span<const float>(logits).subspan(row * K, n * K), K)) {
          // NaN is not JSON: a model that computes it is broken, and the client must hear so.
          job.done({}, std::make_exception_ptr(Error(fmt::format(
                           "model {}: the forward pass gave a non-finite score (NaN or Inf) for "
                           "input {}; the model's weights or inputs overflow",
                           model_, *bad))));
        } else {
          job.done(std::vector<float>(logits.begin() + row * K, logits.begin() + (row + n) * K),
                   nullptr);
        }
        row += n;
      }
      free_since = std::chrono::steady_clock::now();
    }
    lock.lock();
  }
}

}  // namespace tuneserve::serve
