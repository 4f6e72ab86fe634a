// Data-parallel training (train/distributed.h): MPI process group, the communication thread that sums
// gradient buckets while backward runs, DDP's bucket plan, the start-up job check and checkpoint
// sharing.
//
// Dimensions: W ranks, n floats per sum, V vocabulary rows, C width.
//
// MPI is used with MPI_THREAD_MULTIPLE: the training thread makes the small host collectives (step
// loss, evaluation, start-up checks) on MPI_COMM_WORLD, and the communication thread sums gradients
// on a duplicate of it, so the two streams of collectives never interleave on one communicator.
#include "train/distributed.h"

#include <mpi.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "core/build_info.h"
#include "core/error.h"
#include "core/json.h"
#include "core/sha256.h"
#include "data/dataset.h"
#include "train/args.h"

namespace tuneserve::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// MPI counts are int: larger buffers go in pieces of this many elements.
constexpr std::size_t kMaxCount = std::size_t{1} << 30;

// Drives MPI's progress until `request` completes: a few tests back to back, then sleeps that grow
// to 200 us, so a wait for another rank costs next to no CPU (OpenMPI's blocking calls spin, taking
// a core from the ranks sharing it).
void poll(MPI_Request& request) {
  int done = 0;
  for (int i = 0;; i++) {
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (done) return;
    if (i >= 8) std::this_thread::sleep_for(std::chrono::microseconds(std::min(200, 10 * (i - 7))));
  }
}

// In-place sum over every rank of `n` values of `type`, in pieces MPI's int counts can carry.
template <typename T>
void sum_in_place(T* values, std::size_t n, MPI_Datatype type, MPI_Comm comm) {
  for (std::size_t at = 0; at < n; at += kMaxCount) {
    MPI_Request request;
    MPI_Iallreduce(MPI_IN_PLACE, values + at, static_cast<int>(std::min(kMaxCount, n - at)), type, MPI_SUM, comm, &request);
    poll(request);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// process group

bool ProcessGroup::launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(name)) return true;
  return false;
}

ProcessGroup& ProcessGroup::single() {
  static ProcessGroup group;
  return group;
}

ProcessGroup& ProcessGroup::world() {
  if (!launched_by_mpi()) return single();
  // Never destroyed: MPI is finalised by finalize() or at exit, not by a static destructor's order.
  static ProcessGroup* group = [] {
    auto* g = new ProcessGroup();
    g->init_mpi();
    return g;
  }();
  return *group;
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::init_mpi() {
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
  if (provided < MPI_THREAD_MULTIPLE) {
    MPI_Finalize();
    fail("this MPI library provides thread level {} but tuneserve needs MPI_THREAD_MULTIPLE (gradient sums run "
         "on a thread of their own); use an MPI built with thread support (Debian's OpenMPI is)", provided);
  }
  mpi_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &local_rank_);
  MPI_Comm_size(local, &local_size_);
  MPI_Comm_free(&local);
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int length = 0;
  MPI_Get_processor_name(name, &length);
  hosts_ = allgather(std::string(name, static_cast<std::size_t>(length)));
  // A job whose ranks return from main without finalize() (tests, early exits) still ends cleanly.
  std::atexit([] { world().finalize(); });
}

std::string ProcessGroup::where(int rank) const {
  return size_ > 1 ? fmt::format("rank {} of {} on {}", rank, size_, host_of(rank)) : "";
}

void ProcessGroup::allreduce_sum(std::span<double> values) const {
  if (mpi_) sum_in_place(values.data(), values.size(), MPI_DOUBLE, MPI_COMM_WORLD);
}

void ProcessGroup::allreduce_sum(std::span<std::int64_t> values) const {
  if (mpi_) sum_in_place(values.data(), values.size(), MPI_INT64_T, MPI_COMM_WORLD);
}

std::vector<std::string> ProcessGroup::allgather(const std::string& mine) const {
  if (!mpi_) return {mine};
  if (mine.size() > kMaxCount) fail("allgather: {} bytes is more than one message carries", mine.size());
  const int length = static_cast<int>(mine.size());
  std::vector<int> lengths(static_cast<std::size_t>(size_)), offsets(static_cast<std::size_t>(size_));
  MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, MPI_COMM_WORLD);
  std::size_t total = 0;
  for (int r = 0; r < size_; r++) {
    offsets[static_cast<std::size_t>(r)] = static_cast<int>(total);
    total += static_cast<std::size_t>(lengths[static_cast<std::size_t>(r)]);
  }
  if (total > kMaxCount) fail("allgather: {} bytes in all is more than one message carries", total);
  std::string all(total, '\0');
  MPI_Allgatherv(mine.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, MPI_COMM_WORLD);
  std::vector<std::string> out;
  for (int r = 0; r < size_; r++)
    out.push_back(all.substr(static_cast<std::size_t>(offsets[static_cast<std::size_t>(r)]),
                             static_cast<std::size_t>(lengths[static_cast<std::size_t>(r)])));
  return out;
}

void ProcessGroup::broadcast(std::string& bytes, int root) const {
  if (!mpi_) return;
  std::uint64_t n = bytes.size();
  MPI_Bcast(&n, 1, MPI_UINT64_T, root, MPI_COMM_WORLD);
  bytes.resize(n);
  for (std::size_t at = 0; at < n; at += kMaxCount)
    MPI_Bcast(bytes.data() + at, static_cast<int>(std::min<std::size_t>(kMaxCount, n - at)), MPI_CHAR, root,
              MPI_COMM_WORLD);
}

void ProcessGroup::finalize() {
  if (!mpi_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
  mpi_ = false;
}

void ProcessGroup::abort(const std::string& message) const {
  spdlog::critical("tuneserve {}: {}", where(), message);
  spdlog::default_logger()->flush();
  if (mpi_) MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

// ---------------------------------------------------------------------------------------------
// MPI gradient sums on a communication thread

namespace {

// Sums run one after another on a thread of their own, with non-blocking MPI polled with short
// sleeps: the training thread keeps computing backward meanwhile, and a rank waiting for a slower
// one does not spin on a core the slower one may need (ranks often share cores: CI, laptops).
class MpiCollective final : public GradientCollective {
 public:
  explicit MpiCollective(const Device& device) : device_(device), backend_(backend_for(device)) {
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    thread_ = std::thread([this] { run(); });
  }
  ~MpiCollective() override {
    {
      const std::lock_guard lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
    MPI_Comm_free(&comm_);
  }
  MpiCollective(const MpiCollective&) = delete;
  MpiCollective& operator=(const MpiCollective&) = delete;

  void start(float* data, std::size_t n) override {
    {
      const std::lock_guard lock(mutex_);
      queue_.push_back({data, n});
      queued_++;
    }
    changed_.notify_all();
  }

  double wait() override {
    const auto started = Clock::now();
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return done_ == queued_ || !error_.empty(); });
    if (!error_.empty()) fail("gradient sum: {}", error_);
    return std::chrono::duration<double>(Clock::now() - started).count();
  }

  bool gather_sparse_rows() const override { return true; }

 private:
  struct Job {
    float* data;
    std::size_t n;
  };

  void run() {
    try {
      require_device(device_);  // a GPU: its memory is staged from this thread
    } catch (const std::exception& e) {
      fail_all(e.what());
      return;
    }
    for (;;) {
      Job job{};
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = queue_.front();
        queue_.pop_front();
      }
      try {
        sum(job);
      } catch (const std::exception& e) {
        fail_all(e.what());
        return;
      }
      {
        const std::lock_guard lock(mutex_);
        done_++;
      }
      changed_.notify_all();
    }
  }

  void fail_all(const std::string& message) {
    {
      const std::lock_guard lock(mutex_);
      error_ = message;
    }
    changed_.notify_all();
  }

  void sum(const Job& job) {
    const bool host = !device_.is_cuda();
    float* values = job.data;
    if (!host) {  // Debian's OpenMPI does not read GPU memory: through the host
      staging_.resize(job.n);
      backend_.download(staging_.data(), job.data, job.n * sizeof(float));
      values = staging_.data();
    }
    sum_in_place(values, job.n, MPI_FLOAT, comm_);
    if (!host) backend_.upload(job.data, staging_.data(), job.n * sizeof(float));
  }

  Device device_;
  const Backend& backend_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Job> queue_;
  std::size_t queued_ = 0, done_ = 0;
  bool stop_ = false;
  std::string error_;
  std::vector<float> staging_;
};

}  // namespace

std::unique_ptr<GradientCollective> ProcessGroup::gradient_collective(const Device& device) const {
  if (!mpi_) fail("gradient sums need a job of several ranks started by mpirun");
  if (device.is_cuda()) {
    // NCCL needs a GPU of its own per rank; ranks sharing one (tests on a single GPU) sum through MPI.
    const std::vector<std::string> gpus = allgather(fmt::format("{}/{}", host_of(rank_), device.str()));
    if (std::set<std::string>(gpus.begin(), gpus.end()).size() == gpus.size()) {
      std::string id;
      if (rank_ == 0) {
        const std::vector<char> bytes = nccl_unique_id();
        id.assign(bytes.begin(), bytes.end());
      }
      broadcast(id);
      return nccl_collective(device, std::vector<char>(id.begin(), id.end()), rank_, size_);
    }
    if (rank_ == 0)
      spdlog::warn("ranks share a GPU; NCCL needs one GPU per rank, so gradients are summed by MPI through host memory");
  }
  return std::make_unique<MpiCollective>(device);
}

// ---------------------------------------------------------------------------------------------
// global batches and buckets

RowShare row_share(std::int64_t rows, int rank, int size) {
  return {rows * rank / size, rows * (rank + 1) / size};
}

std::vector<GradientRange> plan_buckets(std::size_t total, std::size_t word_floats, std::size_t first_floats,
                                        std::size_t bucket_floats) {
  if (first_floats == 0 || bucket_floats == 0) fail("gradient buckets must hold at least one float");
  std::vector<GradientRange> out;
  auto carve = [&](std::size_t begin, std::size_t end) {  // from `end` down to `begin`
    while (end > begin) {
      const std::size_t cap = out.empty() ? first_floats : bucket_floats;
      const std::size_t start = end - std::min(cap, end - begin);
      out.push_back({start, end});
      end = start;
    }
  };
  carve(std::min(word_floats, total), total);
  carve(0, std::min(word_floats, total));
  return out;
}

GradientReducer::GradientReducer(Model& model, GradientCollective& collective, std::size_t bucket_bytes)
    : model_(model), collective_(collective), grads_(model.gradient_buffer()) {
  const std::size_t bucket = std::max<std::size_t>(1, bucket_bytes / sizeof(float));
  const std::size_t first = std::min<std::size_t>(bucket, (std::size_t{1} << 20) / sizeof(float));  // DDP's 1 MiB
  buckets_ = plan_buckets(grads_.total, grads_.word_rows * grads_.width, first, bucket);
  model_.set_gradient_ready_hook([this](std::size_t from) { on_ready(from); });
}

GradientReducer::~GradientReducer() { model_.set_gradient_ready_hook({}); }

void GradientReducer::arm(std::vector<std::int32_t> word_ids) {
  std::sort(word_ids.begin(), word_ids.end());
  word_ids.erase(std::unique(word_ids.begin(), word_ids.end()), word_ids.end());
  word_ids_ = std::move(word_ids);
  // Every rank decides alike: the ids are the global step's.
  words_as_rows_ = collective_.gather_sparse_rows() && word_ids_.size() * 2 <= grads_.word_rows;
  words_started_ = false;
  next_ = 0;
  armed_ = true;
}

void GradientReducer::on_ready(std::size_t from) {
  if (!armed_) return;  // an accumulation step: gradients keep adding up locally
  const std::size_t words_end = grads_.word_rows * grads_.width;
  while (next_ < buckets_.size() && buckets_[next_].begin >= from) {
    const GradientRange& b = buckets_[next_++];
    if (!(words_as_rows_ && b.end <= words_end)) collective_.start(grads_.data + b.begin, b.end - b.begin);
  }
  if (words_as_rows_ && from == 0 && !words_started_) start_words();
}

// The rows of the step's ids, gathered into one buffer (runs of consecutive ids as one copy).
void GradientReducer::start_words() {
  words_started_ = true;
  if (word_ids_.empty()) return;
  const Backend& k = backend_for(model_.device());
  const std::size_t C = grads_.width, bytes = word_ids_.size() * C * sizeof(float);
  if (gathered_.bytes() < bytes) gathered_ = DeviceBuffer(k, bytes);
  float* out = gathered_.as<float>();
  for (std::size_t i = 0; i < word_ids_.size();) {
    std::size_t j = i + 1;
    while (j < word_ids_.size() && word_ids_[j] == word_ids_[j - 1] + 1) j++;
    k.copy(out + i * C, grads_.data + static_cast<std::size_t>(word_ids_[i]) * C, (j - i) * C * sizeof(float));
    i = j;
  }
  collective_.start(out, word_ids_.size() * C);
}

double GradientReducer::finish() {
  if (!armed_) fail("GradientReducer::finish without arm()");
  on_ready(0);
  const double waited = collective_.wait();
  if (words_as_rows_ && !word_ids_.empty()) {
    const Backend& k = backend_for(model_.device());
    const std::size_t C = grads_.width;
    const float* in = gathered_.as<float>();
    for (std::size_t i = 0; i < word_ids_.size();) {
      std::size_t j = i + 1;
      while (j < word_ids_.size() && word_ids_[j] == word_ids_[j - 1] + 1) j++;
      k.copy(grads_.data + static_cast<std::size_t>(word_ids_[i]) * C, in + i * C, (j - i) * C * sizeof(float));
      i = j;
    }
  }
  armed_ = false;
  return waited;
}

// ---------------------------------------------------------------------------------------------
// the same job on every rank

namespace {

nlohmann::json dataset_digest(const data::TokenizedDataset& d) {
  Sha256 h;
  for (std::size_t r = 0; r < d.size(); r++) {
    const std::int64_t length = d.length(r);
    h.update(std::span<const std::int64_t>(&length, 1));
    h.update(d.input_ids(r));
    h.update(d.token_type_ids(r));
  }
  h.update(d.labels());
  h.update(d.values());
  return {{"rows", d.size()}, {"tokens", d.total_tokens()}, {"sha256", h.hex()}};
}

// "a.b.c" -> value (as JSON text) of every leaf.
void flatten(const nlohmann::json& j, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else {
    out[prefix] = j.dump();
  }
}

}  // namespace

nlohmann::json job_fingerprint(const TrainArgs& args, const data::TokenizedDataset& train,
                               const data::TokenizedDataset* test, Model& model) {
  nlohmann::json hyperparameters = args_to_json(args);
  // Paths may differ between hosts (their contents are compared below); these are each rank's own.
  for (const char* own : {"model", "tokenizer", "train", "test", "output_dir", "resume", "threads", "device", "progress"})
    hyperparameters.erase(own);
  const Backend& k = backend_for(model.device());
  Sha256 h;
  std::size_t count = 0;
  std::vector<float> host;
  for (const Parameter& p : model.parameters()) {
    host.resize(p.numel);
    k.download(host.data(), p.data, p.numel * sizeof(float));
    h.update(std::span<const float>(host));
    count += p.numel;
  }
  nlohmann::json config = {{"architecture", model.config().sequence_classification_class()},
                           {"num_labels", model.config().num_labels},
                           {"parameters", count},
                           {"weights_sha256", h.hex()}};
  return {{"tuneserve", fmt::format("{} ({})", build_info().version, build_info().commit)},
          {"hyperparameters", hyperparameters},
          {"train_data", dataset_digest(train)},
          {"test_data", test ? dataset_digest(*test) : nlohmann::json()},
          {"model", config}};
}

void require_same_job(const ProcessGroup& group, const nlohmann::json& fingerprint) {
  const std::vector<std::string> all = group.allgather(fingerprint.dump());
  std::map<std::string, std::string> reference;
  flatten(parse_json(all[0], "rank 0's job settings"), "", reference);
  std::vector<std::string> differences;
  for (int r = 1; r < group.size(); r++) {
    std::map<std::string, std::string> theirs;
    flatten(parse_json(all[static_cast<std::size_t>(r)], fmt::format("rank {}'s job settings", r)), "", theirs);
    std::set<std::string> keys;
    for (const auto& [k, v] : reference) keys.insert(k);
    for (const auto& [k, v] : theirs) keys.insert(k);
    for (const std::string& key : keys) {
      const auto a = reference.find(key), b = theirs.find(key);
      const std::string mine = a == reference.end() ? "(absent)" : a->second;
      const std::string other = b == theirs.end() ? "(absent)" : b->second;
      if (mine != other) differences.push_back(fmt::format("{}: {} on {}, {} on {}", key, other, group.where(r), mine, group.where(0)));
    }
  }
  if (differences.empty()) return;
  const std::size_t shown = std::min<std::size_t>(differences.size(), 12);
  std::string list;
  for (std::size_t i = 0; i < shown; i++) list += "\n  " + differences[i];
  if (shown < differences.size()) list += fmt::format("\n  ... and {} more", differences.size() - shown);
  fail("the ranks of this job do not train the same model on the same data with the same settings:{}", list);
}

// ---------------------------------------------------------------------------------------------
// checkpoints from rank 0

SharedCheckpoint::SharedCheckpoint(const ProcessGroup& group, const std::string& dir) {
  if (group.rank() == 0) dir_ = dir;
  if (!group.distributed()) return;
  std::string names;  // rank 0's regular files, one per line
  if (group.rank() == 0) {
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file()) names += e.path().filename().string() + "\n";
  }
  group.broadcast(names);
  if (group.rank() != 0) {
    dir_ = (fs::temp_directory_path() / fmt::format("tuneserve-checkpoint-{}-{}", ::getpid(), group.rank())).string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    temporary_ = true;
  }
  // File by file in pieces, so no rank holds more than one piece of a large checkpoint in memory.
  constexpr std::size_t kPiece = std::size_t{64} << 20;
  std::size_t start = 0;
  for (std::size_t end; (end = names.find('\n', start)) != std::string::npos; start = end + 1) {
    const std::string name = names.substr(start, end - start);
    const fs::path path = fs::path(dir_) / name;
    std::ifstream in;
    std::ofstream out;
    std::string size_text;
    if (group.rank() == 0) {
      in.open(path, std::ios::binary);
      if (!in) fail("{}: cannot read", path.string());
      size_text = std::to_string(fs::file_size(path));
    } else {
      out.open(path, std::ios::binary | std::ios::trunc);
      if (!out) fail("{}: cannot write", path.string());
    }
    group.broadcast(size_text);
    const std::size_t size = std::stoull(size_text);
    for (std::size_t at = 0; at < size; at += kPiece) {
      std::string piece;
      if (group.rank() == 0) {
        piece.resize(std::min(kPiece, size - at));
        in.read(piece.data(), static_cast<std::streamsize>(piece.size()));
        if (!in) fail("{}: read failed", path.string());
      }
      group.broadcast(piece);
      if (group.rank() != 0) out.write(piece.data(), static_cast<std::streamsize>(piece.size()));
    }
    if (group.rank() != 0 && !out) fail("{}: write failed", path.string());
  }
}

SharedCheckpoint::~SharedCheckpoint() {
  if (!temporary_) return;
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

// ---------------------------------------------------------------------------------------------
// threads

int threads_per_rank(int local_size, int cpus) {
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  int usable = online > 0 ? static_cast<int>(online) : 1;
  cpu_set_t mask;
  CPU_ZERO(&mask);
  // A launcher that binds ranks (mpirun binds 2 ranks to a core each) leaves this rank fewer CPUs.
  if (::sched_getaffinity(0, sizeof mask, &mask) == 0 && CPU_COUNT(&mask) > 0) usable = std::min(usable, CPU_COUNT(&mask));
  return std::max(1, std::min(usable, (cpus > 0 ? cpus : static_cast<int>(std::max(1L, online))) / std::max(1, local_size)));
}

}  // namespace tuneserve::train
