// The pieces of data-parallel training that need no second process: how a global batch is split,
// DDP's bucket plan, the gradient reducer's timing and sparse rows (with a stand-in collective),
// the dropout masks of a rank's share, threads per rank, and SageMaker's MPI settings.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "checkpoint/config.h"
#include "kernels/backend.h"
#include "model/model.h"
#include "mpi_jobs.h"
#include "train/distributed.h"
#include "train/mpi_launch.h"

namespace tuneserve::train {
namespace {

TEST(RowShare, SplitsEveryGlobalBatchIntoContiguousNearlyEqualShares) {
  for (std::int64_t rows : {1, 2, 5, 16, 17, 31}) {
    for (int size : {1, 2, 3, 4, 8}) {
      std::int64_t next = 0, smallest = rows, largest = 0;
      for (int r = 0; r < size; r++) {
        const RowShare s = row_share(rows, r, size);
        EXPECT_EQ(s.begin, next) << rows << " rows, rank " << r << " of " << size;
        next = s.end;
        smallest = std::min(smallest, s.size());
        largest = std::max(largest, s.size());
      }
      EXPECT_EQ(next, rows);
      EXPECT_LE(largest - smallest, 1);
    }
  }
  EXPECT_EQ(row_share(16, 1, 2).begin, 8);  // 2 x 8: rank 1 takes rows 8..15 of the global batch
  EXPECT_EQ(row_share(1, 0, 2).size(), 0);  // fewer rows than ranks: rank 0 gets none, rank 1 one
  EXPECT_EQ(row_share(1, 1, 2).size(), 1);
}

TEST(PlanBuckets, FromTheEndFirstOneSmallWordEmbeddingsApart) {
  const auto plan = plan_buckets(100, 30, 8, 25);
  // [92,100) [67,92) [42,67) [30,42) | [5,30) [0,5)
  const std::vector<GradientRange> want = {{92, 100}, {67, 92}, {42, 67}, {30, 42}, {5, 30}, {0, 5}};
  EXPECT_EQ(plan, want);
  const auto one = plan_buckets(10, 0, 100, 100);
  EXPECT_EQ(one, (std::vector<GradientRange>{{0, 10}}));
  EXPECT_THROW(plan_buckets(10, 0, 0, 4), Error);
}

// Stands in for MPI between two identical ranks: a sum doubles each buffer, applied in wait() so a
// reducer that read a buffer before waiting would see it unsummed.
class DoublingCollective : public GradientCollective {
 public:
  explicit DoublingCollective(bool sparse) : sparse_(sparse) {}
  void start(float* data, std::size_t n) override {
    pending_.push_back({data, n});
    started.push_back({data, n, in_backward});
  }
  double wait() override {
    for (const auto& [data, n] : pending_)
      for (std::size_t i = 0; i < n; i++) data[i] *= 2.0f;
    pending_.clear();
    return 0.0;
  }
  bool gather_sparse_rows() const override { return sparse_; }

  struct Started {
    float* data;
    std::size_t n;
    bool during_backward;
  };
  std::vector<Started> started;
  bool in_backward = false;

 private:
  bool sparse_;
  std::vector<std::pair<float*, std::size_t>> pending_;
};

PackedBatch small_batch(int rows, int length, int vocab) {
  PackedBatch b;
  for (int r = 0; r < rows; r++) {
    std::vector<std::int32_t> ids;
    for (int t = 0; t < length + r; t++) ids.push_back(5 + (r * 37 + t * 11) % (vocab - 5));
    b.append(ids);
  }
  return b;
}

std::vector<float> gradients(Model& m) {
  const GradientBuffer g = m.gradient_buffer();
  return std::vector<float>(g.data, g.data + g.total);
}

class Reducer : public ::testing::TestWithParam<bool> {};

TEST_P(Reducer, StartsBucketsDuringBackwardAndSumsEveryGradientOnce) {
  const bool sparse = GetParam();
  TUNESERVE_REQUIRE_SHARED("goldens/bert/config.json");
  Model model = Model::load(testing::shared_path("goldens/bert"));
  const PackedBatch batch = small_batch(3, 6, model.config().vocab_size);
  const std::vector<std::int32_t> labels = {0, 1, 2};
  Labels l;
  l.class_ids = labels.data();
  model.zero_grad();
  model.forward_backward(batch, l);
  const std::vector<float> alone = gradients(model);

  DoublingCollective collective(sparse);
  // Small buckets (16 KiB) so that a tiny model has several.
  GradientReducer reducer(model, collective, 16 << 10);
  ASSERT_GT(reducer.bucket_count(), 4u);
  model.zero_grad();
  reducer.arm(batch.input_ids);
  collective.in_backward = true;
  model.forward_backward(batch, l);
  collective.in_backward = false;
  reducer.finish();

  const GradientBuffer g = model.gradient_buffer();
  const std::size_t words = g.word_rows * g.width;
  // The head's and last layer's buckets start while backward still runs.
  ASSERT_FALSE(collective.started.empty());
  EXPECT_TRUE(collective.started.front().during_backward);
  EXPECT_EQ(collective.started.front().data + collective.started.front().n, g.data + g.total);
  // Every element summed exactly once (doubled), the word embeddings as rows when sparse.
  const std::vector<float> summed = gradients(model);
  for (std::size_t i = 0; i < g.total; i++) ASSERT_EQ(summed[i], 2.0f * alone[i]) << "element " << i;
  std::size_t sent = 0;
  for (const auto& s : collective.started) sent += s.n;
  std::vector<std::int32_t> ids = batch.input_ids;
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  EXPECT_EQ(sent, sparse ? g.total - words + ids.size() * g.width : g.total);
}

INSTANTIATE_TEST_SUITE_P(DenseAndSparseWords, Reducer, ::testing::Values(false, true));

// A rank's share of a global batch, with sequence_offset and the global padded length, draws the
// dropout masks the whole batch draws: the shares' weighted gradients add up to the whole batch's.
TEST(DropoutOfAShare, DrawsTheMasksOfItsRowsInTheGlobalBatch) {
  TUNESERVE_REQUIRE_SHARED("goldens/distilbert/config.json");
  ModelConfig c = load_config(testing::shared_path("goldens/distilbert"));
  c.hidden_dropout = c.attention_dropout = c.classifier_dropout = 0.2f;
  Model model = Model::from_config(c, 7);
  model.set_dropout_enabled(true);
  const int vocab = c.vocab_size;
  const PackedBatch all = small_batch(4, 5, vocab);
  const std::vector<std::int32_t> labels = {0, 1, 1, 0};
  Labels l;
  l.class_ids = labels.data();
  model.set_dropout(9, 3);
  model.zero_grad();
  const float whole_loss = model.forward_backward(all, l);
  const std::vector<float> whole = gradients(model);

  auto halves = [&](bool offset) {
    model.zero_grad();
    double loss = 0;
    for (int h = 0; h < 2; h++) {
      PackedBatch part = small_batch(4, 5, vocab);
      PackedBatch share;
      for (int b = 2 * h; b < 2 * h + 2; b++)
        share.append(std::span<const std::int32_t>(part.input_ids.data() + part.cu_seqlens[b], part.length(b)));
      if (offset) {
        share.sequence_offset = 2 * h;
        share.padded_length = all.padded_length;
      }
      Labels hl;
      hl.class_ids = labels.data() + 2 * h;
      model.set_dropout(9, 3);  // each rank draws from the same step of the stream
      loss += 0.5 * model.forward_backward(share, hl, 0.5f);
    }
    // The largest difference, relative to the largest gradient element.
    const std::vector<float> g = gradients(model);
    double diff = 0, scale = 0;
    for (std::size_t i = 0; i < g.size(); i++) {
      diff = std::max(diff, static_cast<double>(std::abs(g[i] - whole[i])));
      scale = std::max(scale, static_cast<double>(std::abs(whole[i])));
    }
    return std::pair{loss, diff / scale};
  };
  const auto [loss, gap] = halves(true);
  EXPECT_NEAR(loss, whole_loss, 1e-6);
  EXPECT_LT(gap, 1e-5);  // float summation order only
  // Without the offset both shares would draw rows 0 and 1's masks: not the same gradients.
  EXPECT_GT(halves(false).second, 1e-3);
}

TEST(ThreadsPerRank, SharesTheMachineAndNeverGoesBelowOne) {
  EXPECT_GE(threads_per_rank(1), 1);
  EXPECT_EQ(threads_per_rank(1000000), 1);
  EXPECT_LE(threads_per_rank(2, 8), 4);
}

JobEnv sagemaker_env(nlohmann::json hyperparameters) {
  JobEnv env;
  env.active = true;
  env.hyperparameters_path = "/opt/ml/input/config/hyperparameters.json";
  env.hyperparameters = std::move(hyperparameters);
  env.hosts = {"algo-1", "algo-2", "algo-3", "algo-4"};
  env.current_host = "algo-1";
  env.network_interface = "eth0";
  return env;
}

TEST(SageMakerMpi, HyperparametersAndHostsBecomeOneMpirunOverEveryHost) {
  JobEnv env = sagemaker_env({{"sagemaker_mpi_enabled", "true"}, {"sagemaker_mpi_custom_mpi_options", "\"-x FOO --verbose\""}});
  env.num_gpus = 8;
  const MpiJob job = mpi_job(env);
  EXPECT_TRUE(job.enabled);
  EXPECT_TRUE(job.master());
  EXPECT_EQ(job.processes_per_host, 8);  // one rank per GPU by default
  const auto cmd = mpirun_command(job, {"SM_HOSTS", "PATH"}, {"/usr/bin/tuneserve", "train", "--lr", "1e-4"});
  std::string line;
  for (const auto& a : cmd) line += a + " ";
  EXPECT_NE(line.find("mpirun --host algo-1:8,algo-2:8,algo-3:8,algo-4:8 -np 32 "), std::string::npos) << line;
  EXPECT_NE(line.find("-mca btl_tcp_if_include eth0"), std::string::npos) << line;
  EXPECT_NE(line.find("-x NCCL_SOCKET_IFNAME=eth0"), std::string::npos) << line;
  EXPECT_NE(line.find("-x SM_HOSTS -x PATH -x FOO --verbose /usr/bin/tuneserve train --lr 1e-4 "), std::string::npos) << line;
  // SIGUSR1 is how the launcher stops the ranks (kRankStopSignal): mpirun must pass it on, even
  // where a site's MCA settings forward no signal.
  EXPECT_EQ(kRankStopSignal, SIGUSR1);
  EXPECT_NE(line.find("-mca ess_base_forward_signals SIGUSR1 "), std::string::npos) << line;

  // CPUs: one rank per host unless told; the others wait for the master.
  env = sagemaker_env({{"sagemaker_mpi_enabled", true}, {"sagemaker_mpi_num_of_processes_per_host", "2"},
                       {"sagemaker_mpi_num_processes", "6"}});
  env.current_host = "algo-3";
  const MpiJob cpu = mpi_job(env);
  EXPECT_FALSE(cpu.master());
  EXPECT_EQ(cpu.processes_per_host, 2);
  EXPECT_EQ(mpirun_command(cpu, {}, {"t"})[4], "6");
  EXPECT_FALSE(mpi_job(sagemaker_env({})).enabled);  // no sagemaker_mpi_enabled: one process per host
}

TEST(SageMakerMpi, BadSettingsAreClearErrors) {
  EXPECT_NE(testing::error_of([] { mpi_job(sagemaker_env({{"sagemaker_mpi_enabled", "\"maybe\""}})); })
                .find("sagemaker_mpi_enabled: 'maybe' is not true or false"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] { mpi_job(sagemaker_env({{"sagemaker_mpi_num_of_processes_per_host", "0"}})); })
                .find("'0' is not a positive integer"),
            std::string::npos);
  JobEnv env = sagemaker_env({});
  env.current_host = "algo-9";
  EXPECT_NE(testing::error_of([&] { mpi_job(env); }).find("SM_CURRENT_HOST algo-9 is not one of SM_HOSTS"), std::string::npos);
}

}  // namespace
}  // namespace tuneserve::train
