// The token-budget batcher: batched logits equal single-input logits, batches respect the token
// and request budgets, cancelled requests never reach the model, and admission is bounded.
#include <gtest/gtest.h>

#include <future>

#include "core/cpus.h"
#include "serve/batcher.h"
#include "serve/fake_backend.h"
#include "serve/pipeline_backend.h"
#include "test_util.h"

namespace tuneserve::serve {
namespace {

using testing::FakeBackend;

std::vector<Encoding> encode(const FakeBackend& b, std::vector<std::string> texts) {
  std::vector<Encoding> out;
  for (const auto& t : texts) out.push_back(b.tokenize(TextInput{t, std::nullopt}, {}));
  return out;
}

// Queues one two-token request; the future is ready once it is answered.
std::future<void> push_one(Batcher& batcher, const FakeBackend& backend) {
  auto p = std::make_shared<std::promise<void>>();
  Job job;
  job.encodings = encode(backend, {"a b"});
  job.done = [p](std::vector<float>, std::exception_ptr) { p->set_value(); };
  batcher.push(std::move(job));
  return p->get_future();
}

struct Result {
  std::promise<std::vector<float>> promise;
};

TEST(Batcher, BatchedEqualsSingle) {
  auto backend = std::make_shared<FakeBackend>(3);
  BatchConfig config;
  config.max_batch_delay = std::chrono::milliseconds(50);
  config.max_batch_requests = 64;
  config.max_batch_tokens = 100000;
  Batcher batcher(backend, config, nullptr, "m");
  backend->hold();  // everything queues while the first batch is held, then goes as one batch
  const std::vector<std::vector<std::string>> requests = {
      {"a b c"}, {"one"}, {"x y", "a longer input with many words in it"}, {"z"}, {"q w e r t y"}};
  std::vector<std::future<std::vector<float>>> futures;
  std::vector<std::shared_ptr<std::promise<std::vector<float>>>> promises;
  for (const auto& texts : requests) {
    auto p = std::make_shared<std::promise<std::vector<float>>>();
    futures.push_back(p->get_future());
    Job job;
    job.encodings = encode(*backend, texts);
    job.done = [p](std::vector<float> logits, std::exception_ptr e) {
      if (e) {
        p->set_exception(e);
      } else {
        p->set_value(std::move(logits));
      }
    };
    ASSERT_TRUE(batcher.try_admit());
    batcher.push(std::move(job));
  }
  ASSERT_TRUE(backend->wait_running(1));
  backend->release();
  for (std::size_t r = 0; r < requests.size(); ++r) {
    auto logits = futures[r].get();
    auto encodings = encode(*backend, requests[r]);
    ASSERT_EQ(logits.size(), encodings.size() * 3);
    for (std::size_t i = 0; i < encodings.size(); ++i) {
      auto single = FakeBackend::row(encodings[i], 3);  // the request alone, as its own batch
      for (std::size_t k = 0; k < 3; ++k) EXPECT_FLOAT_EQ(logits[i * 3 + k], single[k]);
    }
    batcher.release();
  }
  // Some batch held more than one request: batching happened.
  std::size_t largest = 0;
  for (auto [n, t] : backend->batches()) largest = std::max(largest, n);
  EXPECT_GT(largest, 1u);
}

// Under light load a lone request is not held for company; after a batch of several, a lone
// request waits for the clients that batch answered (max_batch_delay, when none comes).
TEST(Batcher, HoldsALoneRequestOnlyAfterBusyBatches) {
  using namespace std::chrono_literals;
  auto backend = std::make_shared<FakeBackend>();
  BatchConfig config;
  config.max_batch_delay = 1s;
  Batcher batcher(backend, config, nullptr, "m");
  auto run = [&](int n) {
    std::vector<std::future<void>> done;
    for (int i = 0; i < n; ++i) done.push_back(push_one(batcher, *backend));
    const auto start = std::chrono::steady_clock::now();
    for (auto& f : done) f.wait();
    return std::chrono::steady_clock::now() - start;
  };
  EXPECT_LT(run(1), 500ms) << "idle server: a lone request must not wait max_batch_delay";
  EXPECT_LT(run(1), 500ms);
  backend->hold();  // three requests queue behind a held batch, then go together
  std::thread releaser([&] {
    backend->wait_running(1);
    std::this_thread::sleep_for(50ms);
    backend->release();
  });
  run(3);
  releaser.join();
  const auto lone = run(1);
  EXPECT_GE(lone, 950ms) << "after a busy batch a lone request waits for company, max_batch_delay";
  EXPECT_LT(lone, 1900ms);
  EXPECT_LT(run(1), 500ms) << "and the next lone one, after a batch of one, does not";
  batcher.stop();
}

// Clients that each wait for their answer before asking again: requests that queued while a batch
// ran still wait, after it, for the client it answered to come back, even after a gap longer than a
// quarter of max_batch_delay (the old quiet rule), and all go in one batch as soon as it is back,
// well before max_batch_delay.
TEST(Batcher, AfterABatchWaitsForTheClientsItAnswered) {
  using namespace std::chrono_literals;
  auto backend = std::make_shared<FakeBackend>();
  BatchConfig config;
  config.max_batch_delay = 1200ms;
  Batcher batcher(backend, config, nullptr, "m");
  std::vector<std::future<void>> done;
  auto push = [&] { done.push_back(push_one(batcher, *backend)); };
  backend->hold();
  push();  // runs alone (nothing before it), held
  ASSERT_TRUE(backend->wait_running(1));
  push();
  push();
  std::this_thread::sleep_for(1300ms);  // the two queued ones are now older than max_batch_delay
  const auto released = std::chrono::steady_clock::now();
  backend->release();
  done[0].wait();
  std::this_thread::sleep_for(400ms);  // the answered client comes back, late
  push();
  for (auto& f : done) f.wait();
  const auto waited = std::chrono::steady_clock::now() - released;
  const auto batches = backend->batches();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[1].first, 3u) << "the queued two went without the returning client";
  EXPECT_LT(waited, 560ms) << "the batch goes once the client it waited for is back";
  batcher.stop();
}

// After a batch of 16 requests or more the worker's idle threads are released (they would spin
// while its clients come back); after smaller batches they are kept for the next pass.
TEST(Batcher, ReleasesThreadsAfterLargeBatchesOnly) {
  auto backend = std::make_shared<FakeBackend>();
  BatchConfig config;
  config.max_batch_delay = std::chrono::milliseconds(20);
  config.max_batch_requests = 64;
  config.max_batch_tokens = 100000;
  Batcher batcher(backend, config, nullptr, "m");
  push_one(batcher, *backend).get();  // a batch of one
  EXPECT_EQ(backend->releases(), 0);
  for (const std::size_t n : {15u, 16u}) {
    backend->hold();
    auto first = push_one(batcher, *backend);
    ASSERT_TRUE(backend->wait_running(1));
    std::vector<std::future<void>> rest;
    for (std::size_t i = 0; i < n; ++i) rest.push_back(push_one(batcher, *backend));
    backend->release();
    first.get();
    for (auto& f : rest) f.get();
  }
  const auto batches = backend->batches();
  ASSERT_EQ(batches.size(), 5u);  // 1; 1 then 15; 1 then 16
  EXPECT_EQ(batches[2].first, 15u);
  EXPECT_EQ(batches[4].first, 16u);
  EXPECT_EQ(backend->releases(), 1);
  batcher.stop();
}

// Without --threads, a real model's passes share the CPUs among its workers as they are scaled,
// so N workers never run N times the CPUs in threads; --threads stays as given.
TEST(Batcher, ScalingWorkersDividesTheCpusAmongTheirPasses) {
  TUNESERVE_REQUIRE_SHARED("models/distilbert-tiny-init");
  TUNESERVE_REQUIRE_SHARED("tokenizers/bert-base-cased");
  const std::string model = testing::shared_path("models/distilbert-tiny-init");
  const std::string tokenizer = testing::shared_path("tokenizers/bert-base-cased");
  const int cpus = available_cpus();
  Pipeline::Options options;
  options.threads = cpus;
  auto shared = std::make_shared<PipelineBackend>(model, tokenizer, options, /*share_cpus=*/true);
  BatchConfig config;
  Batcher batcher(shared, config, nullptr, "m");
  EXPECT_EQ(shared->threads(), cpus);
  batcher.set_workers(2);
  EXPECT_EQ(shared->threads(), std::max(1, cpus / 2));
  batcher.set_workers(4 * cpus);
  EXPECT_EQ(shared->threads(), 1);
  batcher.set_workers(1);
  EXPECT_EQ(shared->threads(), cpus);
  batcher.stop();

  options.threads = 3;
  auto fixed = std::make_shared<PipelineBackend>(model, tokenizer, options);
  Batcher fixed_batcher(fixed, config, nullptr, "f");
  fixed_batcher.set_workers(2);
  EXPECT_EQ(fixed->threads(), 3);
  fixed_batcher.stop();
}

TEST(Batcher, RespectsTokenAndRequestBudgets) {
  auto backend = std::make_shared<FakeBackend>();
  BatchConfig config;
  config.max_batch_delay = std::chrono::milliseconds(20);
  config.max_batch_tokens = 14;  // real tokens (the batch is packed): inputs of 8 and 4 tokens
  config.max_batch_requests = 3;
  Batcher batcher(backend, config, nullptr, "m");
  backend->hold();
  std::atomic<int> done{0};
  for (int i = 0; i < 12; ++i) {
    Job job;
    job.encodings = encode(*backend, {std::string(i % 3 == 0 ? "a b c d e f" : "a b")});
    job.done = [&](std::vector<float>, std::exception_ptr) { ++done; };
    batcher.push(std::move(job));
  }
  ASSERT_TRUE(backend->wait_running(1));
  backend->release();
  batcher.stop();  // finishes everything queued
  EXPECT_EQ(done.load(), 12);
  std::size_t total = 0;
  for (auto [n, tokens] : backend->batches()) {
    total += n;
    EXPECT_LE(n, 3u);
    if (n > 1) {
      EXPECT_LE(tokens, 14u) << n << " inputs";
    }
  }
  EXPECT_EQ(total, 12u);
  EXPECT_GT(backend->batches().size(), 4u);  // the token budget, not only the request budget, split them
}

TEST(Batcher, DropsCancelledBeforeCompute) {
  auto backend = std::make_shared<FakeBackend>();
  BatchConfig config;
  config.max_batch_delay = std::chrono::milliseconds(1);
  Batcher batcher(backend, config, nullptr, "m");
  backend->hold();
  Job first;
  first.encodings = encode(*backend, {"first"});
  first.done = [](std::vector<float>, std::exception_ptr) {};
  batcher.push(std::move(first));
  ASSERT_TRUE(backend->wait_running(1));
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  bool called_empty = false;
  Job gone;
  gone.encodings = encode(*backend, {"gone"});
  gone.cancelled = cancelled;
  gone.done = [&](std::vector<float> logits, std::exception_ptr e) { called_empty = logits.empty() && !e; };
  batcher.push(std::move(gone));
  cancelled->store(true);  // the client left while the model was busy
  backend->release();
  batcher.stop();
  EXPECT_TRUE(called_empty);
  EXPECT_EQ(batcher.jobs_dropped(), 1u);
  EXPECT_EQ(backend->batches().size(), 1u);  // only the first request reached the model
}

TEST(Batcher, AdmissionIsBoundedAndErrorsReachEveryJob) {
  auto backend = std::make_shared<FakeBackend>();
  BatchConfig config;
  config.queue_size = 2;
  Batcher batcher(backend, config, nullptr, "m");
  EXPECT_TRUE(batcher.try_admit());
  EXPECT_TRUE(batcher.try_admit());
  EXPECT_FALSE(batcher.try_admit());
  batcher.release();
  EXPECT_TRUE(batcher.try_admit());

  backend->set_fail(true);
  std::promise<std::string> p;
  Job job;
  job.encodings = encode(*backend, {"a b c"});
  job.done = [&](std::vector<float>, std::exception_ptr e) {
    try {
      if (e) std::rethrow_exception(e);
      p.set_value("no error");
    } catch (const std::exception& x) {
      p.set_value(x.what());
    }
  };
  batcher.push(std::move(job));
  EXPECT_NE(p.get_future().get().find("forward failed"), std::string::npos);
}

TEST(Batcher, ScalesWorkers) {
  auto backend = std::make_shared<FakeBackend>();
  BatchConfig config;
  config.max_batch_requests = 1;
  Batcher batcher(backend, config, nullptr, "m");
  batcher.set_workers(3);
  EXPECT_EQ(batcher.workers(), 3);
  backend->hold();
  for (int i = 0; i < 3; ++i) {
    Job job;
    job.encodings = encode(*backend, {"w"});
    job.done = [](std::vector<float>, std::exception_ptr) {};
    batcher.push(std::move(job));
  }
  EXPECT_TRUE(backend->wait_running(3));  // three forward passes at once
  backend->release();
  batcher.set_workers(1);
  EXPECT_EQ(batcher.workers(), 1);
  EXPECT_THROW(batcher.set_workers(0), Error);
}

}  // namespace
}  // namespace tuneserve::serve
