// The training loop with transformers Trainer semantics: epochs of shuffled batches, gradient
// accumulation, clipping, AdamW, schedule stepped after the optimizer, logging / evaluation /
// checkpoints by strategy, exact resume, Ctrl-C saves a checkpoint, best model at end.
//
// Dimensions: N training rows, B batch size, S total optimizer steps, K labels.
//
// A checkpoint directory `checkpoint-<step>/` holds: config.json + model.safetensors (the model
// as transformers loads it), optimizer.safetensors (AdamW moments), trainer_state.json (step,
// epoch, position in the epoch's data order, dropout stream offset, log history, best metric).
// Data order is a pure function of (seed, epoch), so those few numbers restore it exactly.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "model/model.h"
#include "train/args.h"
#include "train/eval_metrics.h"

namespace tuneserve::train {

// The order of rows in epoch `epoch`: a permutation of [0, n) from (seed, epoch), the same on every
// platform (mt19937_64 with unbiased bounded draws, Fisher-Yates).
std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, std::int64_t epoch);

class ProcessGroup;

// Eval-mode pass over a labelled dataset in batches of `batch_size` (rows sorted by length so
// little padding is computed; metrics do not depend on the order), with the metrics of the
// dataset's problem type (eval_metrics.h). Single-label: predicted class ids (N) in row order.
// With a data-parallel `group` each rank runs every W-th row and every rank gets the metrics of the
// whole dataset.
EvalMetrics evaluate(const Model& model, const data::TokenizedDataset& dataset, long batch_size,
                     std::vector<std::int64_t>* predictions = nullptr, const ProcessGroup* group = nullptr);

struct TrainPaths {
  std::string output_dir;      // final model, metrics.jsonl, *_results.json, trainer_state.json
  std::string checkpoint_dir;  // checkpoint-<step>/ folders (default: output_dir)
  std::string tokenizer_dir;   // tokenizer files copied into the model directories (optional)
};

struct TrainOutcome {
  long global_step = 0;
  long total_steps = 0;
  double epoch = 0;
  bool interrupted = false;    // stopped by request; a checkpoint was saved
  std::string last_checkpoint;
  std::string best_checkpoint;
  nlohmann::json train_results;               // train_loss, train_runtime, samples/s, ...
  std::optional<nlohmann::json> eval_results; // last evaluation (or the best model's)
};

struct TrainHooks {
  // Set (e.g. from a SIGINT handler) to stop after the current optimizer step with a checkpoint.
  const std::atomic<bool>* stop = nullptr;
  // Every log record (training or evaluation) as written to metrics.jsonl.
  std::function<void(const nlohmann::json&)> on_log;
  // Called after each optimizer step: (step, total, running loss) for progress display.
  std::function<void(long, long, double)> on_step;
  // A data-parallel job (train/distributed.h): train_batch_size is per rank, each rank computes its
  // share of every global batch, and only rank 0 writes (metrics, checkpoints, the final model) and
  // calls on_log / on_step. Null: this process alone.
  const ProcessGroup* group = nullptr;
};

// Trains `model` in place. With args.resume set, continues from that checkpoint ("latest": the
// newest checkpoint-<step> under paths.checkpoint_dir) and reaches the same weights as an
// uninterrupted run. Writes the final model and results under paths.output_dir unless interrupted.
TrainOutcome train_model(Model& model, const TrainArgs& args, const data::TokenizedDataset& train,
                         const data::TokenizedDataset* test, const TrainPaths& paths,
                         const TrainHooks& hooks = {});

// Newest checkpoint-<step> directory under `dir`, or "" when there is none.
std::string latest_checkpoint(const std::string& dir);

// Copies the tokenizer files a Hugging Face directory carries (tokenizer_file_names(): tokenizer.json,
// vocab.txt, vocab.json, merges.txt, SentencePiece .model files, the configs). With
// `model_max_length` > 0 (the model's positions), tokenizer_config.json says that length, so
// transformers' pipeline truncates where this model ends, not where the tokenizer's source model did.
void copy_tokenizer_files(const std::string& from_dir, const std::string& to_dir, long model_max_length = 0);

}  // namespace tuneserve::train
