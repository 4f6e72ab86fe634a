// Data-parallel training over several processes (ranks), each with the whole model: the process
// group (MPI, started by `mpirun` or any launcher that sets MPI's environment), the gradient sum
// that runs while backward still computes (PyTorch DDP's buckets), the split of every global batch
// across ranks, the start-up check that every rank runs the same job, and checkpoints sent from
// rank 0 to the others. A process started without a launcher is a group of one that never calls MPI.
//
// Dimensions: W ranks (world size), r this rank, G rows of a global batch, V vocabulary rows, C width.
//
// How a step runs on W ranks (train/trainer.cpp): every rank draws the same epoch order; global
// batch i is rows order[i*G, i*G + G) with G = per-rank batch x W, exactly the batch one process
// with batch G would take; rank r computes its contiguous share (row_share) with gradients scaled by
// share / G, so the SUM over ranks is the mean over the global batch (also for a short last batch).
// The share draws the dropout masks of its rows' places in the global batch (PackedBatch::
// sequence_offset), so W ranks follow one process's trajectory up to float summation order.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/backend.h"
#include "kernels/collective.h"
#include "model/model.h"

namespace tuneserve::data {
class TokenizedDataset;
}

namespace tuneserve::train {

struct TrainArgs;

class ProcessGroup {
 public:
  // The job's group: MPI's world when this process was started by an MPI launcher (MPI is
  // initialised on the first call, with MPI_THREAD_MULTIPLE), else single().
  static ProcessGroup& world();
  // One process alone: every collective is the identity and no MPI call is made.
  static ProcessGroup& single();
  // Whether the environment shows an MPI launcher (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK).
  static bool launched_by_mpi();

  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }  // among the ranks on this host
  int local_size() const { return local_size_; }
  bool distributed() const { return size_ > 1; }
  const std::string& host_of(int rank) const { return hosts_.at(static_cast<std::size_t>(rank)); }
  // "rank 1 of 2 on host-b", for messages.
  std::string where(int rank) const;
  std::string where() const { return where(rank_); }

  // In-place sums over every rank of host values (all ranks pass the same count).
  void allreduce_sum(std::span<double> values) const;
  void allreduce_sum(std::span<std::int64_t> values) const;
  // Every rank's string, in rank order.
  std::vector<std::string> allgather(const std::string& mine) const;
  // `bytes` of rank `root` on every rank.
  void broadcast(std::string& bytes, int root = 0) const;

  // Sums gradient buffers in `device` memory across the ranks: NCCL when every rank has a GPU of its
  // own, else MPI on a communication thread (GPU memory staged through the host).
  std::unique_ptr<GradientCollective> gradient_collective(const Device& device) const;

  // Ends MPI after a job every rank finished; a group of one does nothing.
  void finalize();
  // Ends every rank of the job at once (MPI_Abort) after printing `message` with this rank's place.
  [[noreturn]] void abort(const std::string& message) const;

 private:
  ProcessGroup() = default;
  void init_mpi();

  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  std::vector<std::string> hosts_{""};
  bool mpi_ = false;
};

// Rank `rank`'s contiguous share [begin, end) of a global batch of `rows` rows split over `size`
// ranks: shares differ by at most one row, and a rank may get none when rows < size.
struct RowShare {
  std::int64_t begin = 0, end = 0;
  std::int64_t size() const { return end - begin; }
};
RowShare row_share(std::int64_t rows, int rank, int size);

// A range [begin, end) of floats of the gradient buffer.
struct GradientRange {
  std::size_t begin = 0, end = 0;
  bool operator==(const GradientRange&) const = default;
};
// DDP's bucket plan over a buffer of `total` floats whose first `word_floats` hold the word
// embeddings: buckets in the order backward fills them (from the end), the first one `first_floats`
// long so that communication starts early, then `bucket_floats` each; the word embeddings are
// bucketed on their own (they may be summed as gathered rows instead, see GradientReducer).
std::vector<GradientRange> plan_buckets(std::size_t total, std::size_t word_floats, std::size_t first_floats,
                                        std::size_t bucket_floats);

// Sums a model's gradients across ranks while its backward runs: each bucket starts as soon as
// backward has finished writing it (Model::set_gradient_ready_hook), on `collective`, so the sum of
// the last layers overlaps the backward of the first ones. Where the collective prefers it
// (host memory) and the step touches at most half the vocabulary, the word-embedding gradient is sent
// as the rows of the step's token ids only (every other row is zero on every rank).
class GradientReducer {
 public:
  // Buckets of `bucket_bytes` (the first one at most 1 MiB, as in DDP). Hooks `model` until destroyed.
  GradientReducer(Model& model, GradientCollective& collective, std::size_t bucket_bytes);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // The next forward_backward is the step's last (earlier ones only accumulate): its backward starts
  // the sums. `word_ids`: every token id of the step's global batch (all ranks pass the same set).
  void arm(std::vector<std::int32_t> word_ids);
  // Starts what backward did not (everything on a rank without rows this step), waits for every sum
  // and puts gathered rows back. Returns the seconds spent blocked.
  double finish();
  std::size_t bucket_count() const { return buckets_.size(); }

 private:
  void on_ready(std::size_t from);
  void start_words();

  Model& model_;
  GradientCollective& collective_;
  GradientBuffer grads_;
  std::vector<GradientRange> buckets_;
  std::size_t next_ = 0;            // buckets_[next_] is the next one to start
  bool armed_ = false;
  bool words_as_rows_ = false;      // this step sends the word embeddings as gathered rows
  bool words_started_ = false;
  std::vector<std::int32_t> word_ids_;  // sorted, distinct
  DeviceBuffer gathered_;           // (word_ids, C) on the model's device
};

// What must be equal on every rank for them to train one model: the program's version, the
// hyperparameters (less per-rank ones: paths, threads, device, output), and digests of the data
// and of the initial weights and configuration.
nlohmann::json job_fingerprint(const TrainArgs& args, const data::TokenizedDataset& train,
                               const data::TokenizedDataset* test, Model& model);
// Fails on every rank, naming what differs from rank 0 and where, unless all fingerprints are equal.
void require_same_job(const ProcessGroup& group, const nlohmann::json& fingerprint);

// The files of checkpoint directory `dir` of rank 0 on every rank: rank 0 keeps `dir`; the others
// receive a copy in a temporary folder (removed with this object), so only rank 0's host needs it.
class SharedCheckpoint {
 public:
  SharedCheckpoint(const ProcessGroup& group, const std::string& dir);
  ~SharedCheckpoint();
  SharedCheckpoint(const SharedCheckpoint&) = delete;
  SharedCheckpoint& operator=(const SharedCheckpoint&) = delete;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  bool temporary_ = false;
};

// CPU threads for one rank: the machine's CPUs (or `cpus` when given, e.g. SM_NUM_CPUS) shared by
// the `local_size` ranks on this host, and no more than the CPUs the launcher bound this rank to;
// at least 1.
int threads_per_rank(int local_size, int cpus = 0);

}  // namespace tuneserve::train
