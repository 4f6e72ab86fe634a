// The training loop (transformers Trainer semantics), evaluation, checkpoints and exact resume.
//
// Dimensions: N training rows, B batch size, S total optimizer steps, K labels.
#include "train/trainer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "checkpoint/safetensors.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mapped_file.h"
#include "train/distributed.h"
#include "train/data_source.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "tokenizer/tokenizer.h"

namespace tuneserve::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, std::int64_t epoch) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; i++) order[static_cast<std::size_t>(i)] = i;
  std::seed_seq seq{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32),
                    static_cast<std::uint32_t>(epoch), 0x7472u /* "tr" */};
  std::mt19937_64 rng(seq);
  for (std::int64_t i = n - 1; i > 0; i--) {
    // Unbiased draw in [0, i] by rejection (std::uniform_int_distribution differs between libraries).
    const std::uint64_t bound = static_cast<std::uint64_t>(i) + 1;
    const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() - std::numeric_limits<std::uint64_t>::max() % bound;
    std::uint64_t r = rng();
    while (r >= limit) r = rng();
    std::swap(order[static_cast<std::size_t>(i)], order[r % bound]);
  }
  return order;
}

namespace {

void write_json(const std::string& path, const nlohmann::json& j) { write_file_atomically(path, j.dump(2) + "\n"); }

// trainer_state.json keeps every log record of a run: a large file of our own.
nlohmann::json read_json(const std::string& path) { return read_json_file(path, {kJsonLargeFileBytes}); }

// The step of a checkpoint-<step> folder; -1 for any other name, a step too large for a long
// included (a stray "checkpoint-99999999999999999999999" is not one of ours).
long checkpoint_step(const fs::path& p) {
  const std::string name = p.filename().string();
  if (!name.starts_with("checkpoint-")) return -1;
  const std::string_view digits = std::string_view(name).substr(11);
  long step = -1;
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
  if (digits.empty() || error != std::errc() || end != digits.data() + digits.size() || step < 0) return -1;
  return step;
}

std::vector<fs::path> checkpoints_in(const std::string& dir) {
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_directory()) continue;
    if (checkpoint_step(e.path()) < 0) {
      if (e.path().filename().string().starts_with("checkpoint-"))
        spdlog::warn("{}: not a checkpoint-<step> folder; ignored", e.path().string());
      continue;
    }
    if (fs::exists(e.path() / "trainer_state.json")) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end(), [](const fs::path& a, const fs::path& b) { return checkpoint_step(a) < checkpoint_step(b); });
  return out;
}

// The dataset's label names go into the saved config (default_label_name's rule: --label-names,
// else the data's words, else LABEL_i); default names do not replace a model's own ones (a
// fine-tuned classifier trained further on integer labels keeps its names, as the Trainer does).
void adopt_label_names(Model& model, const data::TokenizedDataset& train) {
  const auto& names = train.manifest().id2label;
  if (!default_label_names(names) && names.size() == static_cast<std::size_t>(model.config().num_labels))
    set_labels(model.mutable_config(), names);
  // The data says what is learnt (transformers takes problem_type from the config the script sets).
  model.mutable_config().problem_type = train.manifest().problem_type;
}

// The model's head fits the data: its outputs, its problem type, every class id.
void check_head(const ModelConfig& config, const data::TokenizedDataset& d, const char* what) {
  const data::Manifest& m = d.manifest();
  const int K = config.num_labels;
  if (!config.problem_type.empty() && config.problem_type != m.problem_type)
    fail("the model is trained for {} (config.json problem_type) but the {} data is {} (prep --problem-type)",
         config.problem_type, what, m.problem_type);
  if (m.float_targets() && d.num_labels() != static_cast<std::size_t>(K))
    fail("the {} data has {} {} per row ({}) but the model's head has {} outputs (config num_labels)", what,
         d.num_labels(), m.regression() ? "targets" : "labels", m.problem_type, K);
  if (!m.float_targets() && d.num_labels() > static_cast<std::size_t>(K))
    fail("the {} data has {} labels but the model's head has {} (config num_labels / id2label)", what, d.num_labels(), K);
  for (std::int32_t y : d.labels()) {
    if (y < 0 || y >= K) fail("{} data: label {} outside the model's {} labels", what, y, K);
  }
}

struct LoopState {
  long global_step = 0;
  long epoch = 0;             // current epoch (0-based)
  long next_batch = 0;        // index of the next batch in this epoch's order
  std::uint64_t dropout_offset = 0;
  double log_loss_sum = 0;    // sum of step losses since the last training log
  long log_steps = 0;
  double total_loss_sum = 0;  // sum of all step losses (train_loss = mean)
  long total_loss_steps = 0;
  std::optional<double> best_metric;
  std::string best_checkpoint;
  nlohmann::json log_history = nlohmann::json::array();

  nlohmann::json to_json() const {
    nlohmann::json j = {{"global_step", global_step}, {"epoch", epoch}, {"next_batch", next_batch},
                        {"dropout_offset", dropout_offset}, {"log_loss_sum", log_loss_sum},
                        {"log_steps", log_steps}, {"total_loss_sum", total_loss_sum},
                        {"total_loss_steps", total_loss_steps}, {"best_checkpoint", best_checkpoint},
                        {"log_history", log_history}};
    j["best_metric"] = best_metric ? nlohmann::json(*best_metric) : nlohmann::json();
    return j;
  }
  static LoopState from_json(const nlohmann::json& j, const std::string& where) {
    LoopState s;
    try {
      s.global_step = j.at("global_step").get<long>();
      s.epoch = j.at("epoch").get<long>();
      s.next_batch = j.at("next_batch").get<long>();
      s.dropout_offset = j.at("dropout_offset").get<std::uint64_t>();
      s.log_loss_sum = j.at("log_loss_sum").get<double>();
      s.log_steps = j.at("log_steps").get<long>();
      s.total_loss_sum = j.at("total_loss_sum").get<double>();
      s.total_loss_steps = j.at("total_loss_steps").get<long>();
      s.best_checkpoint = j.at("best_checkpoint").get<std::string>();
      if (!j.at("best_metric").is_null()) s.best_metric = j.at("best_metric").get<double>();
      s.log_history = j.at("log_history");
    } catch (const nlohmann::json::exception& e) {
      fail("{}: trainer state is incomplete or malformed: {}", where, e.what());
    }
    return s;
  }
};

// What must match between a checkpoint and the resuming run for the trajectory to be the same. The
// batch is the global one (per-rank batch x ranks): a job may resume on another number of ranks that
// keeps it, e.g. 2 x 8 -> 1 x 16.
nlohmann::json trajectory_identity(const TrainArgs& a, long global_batch, std::size_t rows, long total_steps) {
  return {{"train_rows", rows}, {"train_batch_size", global_batch},
          {"gradient_accumulation_steps", a.gradient_accumulation_steps}, {"seed", a.seed},
          {"total_steps", total_steps}, {"learning_rate", a.learning_rate},
          {"lr_scheduler_type", a.lr_scheduler_type}, {"dropout", a.dropout}};
}

// Replaces `model`'s weights by those saved in checkpoint `dir`, in place, so the optimizer's
// references stay valid. The checkpoint is read on the host and uploaded to the model's device
// (no second copy of the weights on a GPU).
void load_weights_into(Model& model, const std::string& dir, long seed, const char* what) {
  const Backend& backend = backend_for(model.device());
  LoadOptions host;
  host.init_seed = static_cast<std::uint64_t>(seed);
  Model saved = Model::load(dir, nullptr, host);
  auto& dst = model.parameters();
  const auto& src = saved.parameters();
  if (dst.size() != src.size()) fail("{} {}: checkpoint has {} parameters, model {}", what, dir, src.size(), dst.size());
  for (std::size_t i = 0; i < dst.size(); i++) {
    if (dst[i].name != src[i].name || dst[i].numel != src[i].numel)
      fail("{} {}: parameter {} does not match the model's {}", what, dir, src[i].name, dst[i].name);
    backend.upload(dst[i].data, src[i].data, src[i].numel * sizeof(float));
  }
  model.mark_weights_changed();
}

// Every token id of rows order[first*B, (first+count)*B) (cut at n): what a data-parallel step may
// write into the word-embedding gradient on any rank.
std::vector<std::int32_t> step_word_ids(const data::TokenizedDataset& train, const std::vector<std::int64_t>& order,
                                        long first, long count, long B) {
  const auto n = static_cast<std::int64_t>(order.size());
  std::vector<std::int32_t> ids;
  for (std::int64_t i = first * B; i < std::min<std::int64_t>(n, (first + count) * B); i++) {
    const auto row = train.input_ids(static_cast<std::size_t>(order[static_cast<std::size_t>(i)]));
    ids.insert(ids.end(), row.begin(), row.end());
  }
  return ids;
}

// The loss's targets for a batch: class ids, or (B, K) floats (regression, multi-hot).
Labels batch_labels(const data::LabeledBatch& b) {
  Labels l;
  if (!b.labels.empty()) l.class_ids = b.labels.data();
  else l.values = b.values.data();
  return l;
}

}  // namespace

void copy_tokenizer_files(const std::string& from_dir, const std::string& to_dir, long model_max_length) {
  if (from_dir.empty() || !fs::is_directory(from_dir)) return;
  bool copied = false;
  for (const std::string& name : tokenizer_file_names()) {
    const fs::path src = fs::path(from_dir) / name;
    if (!fs::exists(src)) continue;
    copied = true;
    if (fs::weakly_canonical(src) != fs::weakly_canonical(fs::path(to_dir) / name))
      fs::copy_file(src, fs::path(to_dir) / name, fs::copy_options::overwrite_existing);
  }
  if (!copied || model_max_length <= 0) return;
  const fs::path config_path = fs::path(to_dir) / "tokenizer_config.json";
  nlohmann::json config = fs::exists(config_path) ? read_json(config_path.string()) : nlohmann::json::object();
  if (!config.is_object()) fail("{}: not a JSON object", config_path.string());
  // Untouched when it already says so: the files stay byte for byte what the user brought.
  if (config.contains("model_max_length") && config["model_max_length"] == model_max_length) return;
  config["model_max_length"] = model_max_length;
  write_json(config_path.string(), config);
}

std::string latest_checkpoint(const std::string& dir) {
  auto all = checkpoints_in(dir);
  return all.empty() ? "" : all.back().string();
}

EvalMetrics evaluate(const Model& model, const data::TokenizedDataset& dataset, long batch_size,
                     std::vector<std::int64_t>* predictions, const ProcessGroup* group) {
  if (!dataset.has_labels()) fail("evaluation needs labels; the dataset has none");
  check_head(model.config(), dataset, "evaluation");
  const int K = model.config().num_labels;
  const std::size_t n = dataset.size();
  std::vector<std::int64_t> order(n);
  for (std::size_t i = 0; i < n; i++) order[i] = static_cast<std::int64_t>(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int64_t a, std::int64_t b) { return dataset.length(a) < dataset.length(b); });
  const int W = group ? group->size() : 1;
  if (W > 1) {  // rank r: sorted rows r, r + W, ... (the same lengths, so the same work, on each rank)
    std::vector<std::int64_t> mine;
    for (std::size_t i = static_cast<std::size_t>(group->rank()); i < n; i += static_cast<std::size_t>(W))
      mine.push_back(order[i]);
    order = std::move(mine);
  }
  // Every row's K outputs (logits; regression: predictions) and its targets (a class id, or K floats),
  // in row order; rows of other ranks stay 0 until the sum below.
  const bool classes = !dataset.manifest().float_targets();
  const auto Ks = static_cast<std::size_t>(K);
  const std::size_t T = classes ? 1 : Ks;  // targets per row
  std::vector<double> outputs(n * Ks + n * T + 1, 0.0);  // + the loss sum
  const std::span<double> scores(outputs.data(), n * Ks), targets(outputs.data() + n * Ks, n * T);
  double& loss_sum = outputs.back();
  for (std::size_t start = 0; start < order.size(); start += static_cast<std::size_t>(batch_size)) {
    const std::size_t count = std::min<std::size_t>(static_cast<std::size_t>(batch_size), order.size() - start);
    const data::LabeledBatch b = dataset.batch(std::span<const std::int64_t>(order.data() + start, count));
    const std::vector<float> logits = model.forward(b.tokens);
    loss_sum += static_cast<double>(model.loss(logits.data(), static_cast<int>(b.size()), batch_labels(b))) *
                static_cast<double>(b.size());
    for (std::size_t r = 0; r < static_cast<std::size_t>(b.size()); r++) {
      const auto row = static_cast<std::size_t>(b.rows[r]);
      std::copy_n(logits.begin() + static_cast<std::ptrdiff_t>(r * Ks), Ks, scores.begin() + static_cast<std::ptrdiff_t>(row * Ks));
      if (classes) targets[row] = b.labels[r];
      else std::copy_n(b.values.begin() + static_cast<std::ptrdiff_t>(r * T), T, targets.begin() + static_cast<std::ptrdiff_t>(row * T));
    }
  }
  if (W > 1) group->allreduce_sum(outputs);
  if (dataset.manifest().regression()) return compute_regression_metrics(scores, targets, K, loss_sum);
  if (dataset.manifest().multi_label()) return compute_multi_label_metrics(scores, targets, K, loss_sum);
  std::vector<std::int64_t> preds(n), labels(n);
  for (std::size_t i = 0; i < n; i++) {
    const double* row = scores.data() + i * Ks;
    preds[i] = std::max_element(row, row + Ks) - row;
    labels[i] = static_cast<std::int64_t>(targets[i]);
  }
  if (predictions) *predictions = preds;
  return compute_metrics(preds, labels, K, loss_sum);
}

TrainOutcome train_model(Model& model, const TrainArgs& args, const data::TokenizedDataset& train,
                         const data::TokenizedDataset* test, const TrainPaths& paths, const TrainHooks& hooks) {
  if (!train.has_labels()) fail("training data has no labels");
  if (train.size() == 0) fail("training data has no rows");
  adopt_label_names(model, train);  // the data's problem type too
  check_head(model.config(), train, "training");
  if (test) check_head(model.config(), *test, "test");
  const ProcessGroup& group = hooks.group ? *hooks.group : ProcessGroup::single();
  const int W = group.size();
  const bool writer = group.rank() == 0;  // the one rank that writes files and reports
  const std::string ckpt_root = paths.checkpoint_dir.empty() ? paths.output_dir : paths.checkpoint_dir;
  if (writer) {
    fs::create_directories(paths.output_dir);
    fs::create_directories(ckpt_root);
    // overwrite_output_dir: this run starts afresh; an earlier run's checkpoints would otherwise sit
    // beside (and be overwritten step by step by) this run's, and `--resume latest` could pick them.
    if (args.overwrite_output_dir) {
      for (const fs::path& old : checkpoints_in(ckpt_root)) {
        spdlog::info("overwrite_output_dir: removing {}", old.string());
        fs::remove_all(old);
      }
    }
    if (!args.logging_dir.empty()) fs::create_directories(args.logging_dir);
  }
  if (group.distributed()) require_same_job(group, job_fingerprint(args, train, test, model));

  const auto n = static_cast<std::int64_t>(train.size());
  // Counts from hyperparameters.json are hostile: products that do not fit a long are errors, not wraps
  // (a quarter of the range for the global batch, so n + B - 1 below cannot wrap either).
  if (args.train_batch_size > std::numeric_limits<long>::max() / 4 / W)
    fail("hyperparameter train_batch_size: {} per rank on {} ranks is too large", args.train_batch_size, W);
  const long B = args.train_batch_size * W;  // the global batch: every rank computes its share of it
  const long batches_per_epoch = static_cast<long>((n + B - 1) / B);
  const long steps_per_epoch = update_steps_per_epoch(batches_per_epoch, args.gradient_accumulation_steps);
  const double planned_steps = std::ceil(args.epochs * static_cast<double>(steps_per_epoch));
  if (args.max_steps <= 0 && !(planned_steps < 0x1p62))
    fail("hyperparameter epochs: {} epochs of {} steps each is too many steps", args.epochs, steps_per_epoch);
  if (args.max_steps >= (1L << 62)) fail("hyperparameter max_steps: {} is too many steps", args.max_steps);
  const long total_steps = args.max_steps > 0 ? args.max_steps : static_cast<long>(planned_steps);
  const long num_epochs = (total_steps + steps_per_epoch - 1) / steps_per_epoch;
  Schedule schedule{parse_schedule(args.lr_scheduler_type), args.learning_rate,
                    resolve_warmup_steps(total_steps, args.warmup_steps, args.warmup_ratio), total_steps};

  std::vector<ParamRef> refs;
  for (Parameter& p : model.parameters()) refs.push_back({p.name, p.data, p.grad, p.numel});
  // Moments live beside the parameters, on the model's device; only the grad norm comes back per step.
  AdamW optimizer(backend_for(model.device()), refs,
                  AdamWOptions{args.adam_beta1, args.adam_beta2, args.adam_epsilon, args.weight_decay});
  // Data-parallel: gradients summed across ranks while backward runs (the reducer goes first).
  std::unique_ptr<GradientCollective> collective;
  std::optional<GradientReducer> reducer;
  if (group.distributed()) {
    collective = group.gradient_collective(model.device());
    reducer.emplace(model, *collective, static_cast<std::size_t>(args.ddp_bucket_cap_mb) << 20);
  }

  const nlohmann::json identity = trajectory_identity(args, B, train.size(), total_steps);
  LoopState st;
  if (!args.resume.empty()) {
    std::string found;  // rank 0 reads the checkpoint and sends it to the others
    if (writer) {
      found = args.resume == "latest" ? latest_checkpoint(ckpt_root) : args.resume;
      if (found.empty()) fail("--resume latest: no checkpoint-<step> folder under {}", ckpt_root);
      if (!fs::exists(fs::path(found) / "trainer_state.json")) fail("--resume {}: not a checkpoint (no trainer_state.json)", found);
    }
    const SharedCheckpoint shared(group, found);
    const std::string& dir = shared.dir();
    const std::string state_path = (fs::path(dir) / "trainer_state.json").string();
    const nlohmann::json saved = read_json(state_path);
    if (saved.value("identity", nlohmann::json()) != identity)
      fail("--resume {}: the checkpoint was made with other settings ({}) than this run ({}); "
           "resume with the same data, global batch (per-device batch x ranks), accumulation, seed, steps and schedule",
           dir, json_excerpt(saved.value("identity", nlohmann::json())), json_excerpt(identity));
    st = LoopState::from_json(saved.at("state"), state_path);
    load_weights_into(model, dir, args.seed, "--resume");
    optimizer.load_state(SafeTensorsReader((fs::path(dir) / "optimizer.safetensors").string()));
    if (optimizer.steps_taken() != st.global_step)
      fail("--resume {}: optimizer state is at step {} but the trainer state at {}", dir, optimizer.steps_taken(), st.global_step);
    if (writer) spdlog::info("resuming from {} at step {} (epoch {}, batch {})", dir, st.global_step, st.epoch, st.next_batch);
  }
  model.set_dropout_enabled(args.dropout);
  model.set_dropout(static_cast<std::uint64_t>(args.seed), st.dropout_offset);

  // metrics.jsonl in the model folder, and in logging_dir too (where Trainer keeps its logs).
  std::vector<std::string> metrics_files{(fs::path(paths.output_dir) / "metrics.jsonl").string()};
  if (!args.logging_dir.empty()) metrics_files.push_back((fs::path(args.logging_dir) / "metrics.jsonl").string());
  auto log = [&](nlohmann::json record) {
    st.log_history.push_back(record);
    if (!writer) return;
    for (const std::string& file : metrics_files) std::ofstream(file, std::ios::app) << record.dump() << "\n";
    if (hooks.on_log) hooks.on_log(record);
  };
  auto epoch_float = [&]() {
    return static_cast<double>(st.epoch) + static_cast<double>(st.next_batch) / static_cast<double>(batches_per_epoch);
  };
  std::optional<nlohmann::json> last_eval;
  // Metrics with Trainer's speed figures (eval_runtime, eval_samples_per_second, eval_steps_per_second).
  auto evaluate_timed = [&]() {
    const auto start = Clock::now();
    EvalMetrics m = evaluate(model, *test, args.eval_batch_size, nullptr, &group);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    nlohmann::json record = metrics_to_json(m, "eval_", model.config().id2label);
    add_eval_speed(record, m, args.eval_batch_size, seconds);
    return record;
  };
  auto run_eval = [&]() {
    nlohmann::json record = evaluate_timed();
    record["step"] = st.global_step;
    record["epoch"] = epoch_float();
    log(record);
    last_eval = record;
    const std::string key = "eval_" + args.metric_for_best_model;
    if (args.load_best_model_at_end) {
      if (!record.contains(key) || !record[key].is_number())
        fail("metric_for_best_model: evaluation has no metric '{}'", args.metric_for_best_model);
      const double v = record[key].get<double>();
      const bool better = !st.best_metric || (*args.greater_is_better ? v > *st.best_metric : v < *st.best_metric);
      if (better) {
        st.best_metric = v;
        st.best_checkpoint = (fs::path(ckpt_root) / fmt::format("checkpoint-{}", st.global_step)).string();
      }
    }
  };
  std::string last_checkpoint;
  auto save_checkpoint = [&]() {
    st.dropout_offset = model.dropout_offset();
    if (!writer) return;
    const fs::path dir = fs::path(ckpt_root) / fmt::format("checkpoint-{}", st.global_step);
    fs::create_directories(dir);
    model.save(dir.string());
    copy_tokenizer_files(paths.tokenizer_dir, dir.string(), model_max_tokens(model.config()));
    SafeTensorsWriter writer;
    optimizer.save_state(writer);
    writer.write((dir / "optimizer.safetensors").string());
    write_json((dir / "trainer_state.json").string(),
               {{"identity", identity}, {"state", st.to_json()}, {"args", args_to_json(args)}});
    last_checkpoint = dir.string();
    if (args.save_total_limit > 0) {
      auto all = checkpoints_in(ckpt_root);
      long excess = static_cast<long>(all.size()) - args.save_total_limit;
      for (const fs::path& p : all) {
        if (excess <= 0) break;
        if (p == dir || (!st.best_checkpoint.empty() && fs::equivalent(p, st.best_checkpoint))) continue;
        fs::remove_all(p);
        excess--;
      }
    }
  };

  if (writer) {  // metrics.jsonl holds exactly the history up to where this run starts
    for (const std::string& file : metrics_files) {
      std::ofstream out(file, std::ios::trunc);
      for (const auto& record : st.log_history) out << record.dump() << "\n";
    }
  }
  TrainOutcome outcome;
  outcome.total_steps = total_steps;
  const auto started = Clock::now();
  auto window_start = Clock::now();
  long window_samples = 0, samples_seen = 0;
  double last_grad_norm = 0;
  double last_lr = 0;
  double comm_wait = 0;  // seconds blocked on other ranks (sums of gradients and of step losses)
  bool stopped = false;

  while (st.global_step < total_steps && st.epoch < num_epochs && !stopped) {
    const std::vector<std::int64_t> order = epoch_order(n, static_cast<std::uint64_t>(args.seed), st.epoch);
    while (st.next_batch < batches_per_epoch && st.global_step < total_steps) {
      const long group_size = std::min(args.gradient_accumulation_steps, batches_per_epoch - st.next_batch);
      model.zero_grad();
      double step_loss = 0;
      for (long g = 0; g < group_size; g++) {
        // Gradients are summed across ranks during the step's last backward only; earlier
        // micro-batches add up locally (a sum started earlier would miss what they add later).
        if (reducer && g == group_size - 1) reducer->arm(step_word_ids(train, order, st.next_batch, group_size, B));
        const long bi = st.next_batch + g;
        const std::int64_t begin = bi * B;
        const std::int64_t count = std::min<std::int64_t>(B, n - begin);
        window_samples += count;
        samples_seen += count;
        // This rank's rows of the global batch, their gradients weighted share / count so that the
        // sum over ranks is the mean over the batch.
        const RowShare share = row_share(count, group.rank(), W);
        if (share.size() == 0) {  // a last batch with fewer rows than ranks; the dropout stream keeps pace
          model.set_dropout(static_cast<std::uint64_t>(args.seed), model.dropout_offset() + 1);
          continue;
        }
        const std::span<const std::int64_t> rows(order.data() + begin, static_cast<std::size_t>(count));
        data::LabeledBatch b = train.batch(rows.subspan(static_cast<std::size_t>(share.begin), static_cast<std::size_t>(share.size())));
        if (W > 1) {  // draw the dropout masks of these rows' places in the global batch
          b.tokens.sequence_offset = static_cast<int>(share.begin);
          for (std::int64_t row : rows)
            b.tokens.padded_length = std::max(b.tokens.padded_length, static_cast<int>(train.length(static_cast<std::size_t>(row))));
        }
        const Labels l = batch_labels(b);
        const float weight = static_cast<float>(share.size()) / static_cast<float>(count) / static_cast<float>(group_size);
        const float loss = model.forward_backward(b.tokens, l, weight);
        if (!std::isfinite(loss)) fail("training diverged: loss is {} at step {}", loss, st.global_step + 1);
        step_loss += static_cast<double>(loss) * static_cast<double>(share.size()) / static_cast<double>(count) /
                     static_cast<double>(group_size);
      }
      // Sums of host values over the ranks (the step loss, the stop request), timed as waiting.
      auto sum_over_ranks = [&](double value) {
        const auto sum_start = Clock::now();
        group.allreduce_sum(std::span<double>(&value, 1));
        comm_wait += std::chrono::duration<double>(Clock::now() - sum_start).count();
        return value;
      };
      if (reducer) {
        comm_wait += reducer->finish();
        step_loss = sum_over_ranks(step_loss);
      }
      last_grad_norm = optimizer.grad_norm();
      // A NaN in the gradients makes every weight it reaches NaN, while the loss can stay finite (the
      // head's ReLU reads NaN as 0), so the loss check above alone would let the run go on as garbage.
      if (!std::isfinite(last_grad_norm))
        fail("training diverged: the gradient norm is {} at step {} (the weights were not updated; a lower "
             "--learning-rate or --max-grad-norm may help)", last_grad_norm, st.global_step + 1);
      last_lr = schedule.lr(st.global_step);
      optimizer.step(last_lr, clip_coefficient(last_grad_norm, args.max_grad_norm));
      model.mark_weights_changed();
      st.global_step++;
      st.next_batch += group_size;
      st.log_loss_sum += step_loss;
      st.log_steps++;
      st.total_loss_sum += step_loss;
      st.total_loss_steps++;
      if (hooks.on_step && writer) hooks.on_step(st.global_step, total_steps, st.log_loss_sum / static_cast<double>(st.log_steps));

      const bool epoch_end = st.next_batch >= batches_per_epoch;
      const bool last = st.global_step >= total_steps;
      auto due = [&](const std::string& strategy, long every) {
        return (strategy == "steps" && st.global_step % every == 0) || (strategy == "epoch" && epoch_end);
      };
      if (due(args.logging_strategy, args.logging_steps) || (last && args.logging_strategy != "no")) {
        const double seconds = std::chrono::duration<double>(Clock::now() - window_start).count();
        log({{"step", st.global_step}, {"epoch", epoch_float()},
             {"loss", st.log_loss_sum / static_cast<double>(st.log_steps)}, {"lr", last_lr},
             {"grad_norm", last_grad_norm},
             {"samples_per_second", seconds > 0 ? static_cast<double>(window_samples) / seconds : 0.0}});
        st.log_loss_sum = 0;
        st.log_steps = 0;
        window_samples = 0;
        window_start = Clock::now();
      }
      const auto pause_start = Clock::now();  // evaluation and saving do not count as training speed
      if (test && due(args.eval_strategy, args.eval_steps)) run_eval();
      bool stop_requested = hooks.stop && hooks.stop->load();
      if (group.distributed()) stop_requested = sum_over_ranks(stop_requested ? 1.0 : 0.0) > 0;  // all stop at one step
      if (due(args.save_strategy, args.save_steps) || stop_requested) {
        if (epoch_end) {  // the checkpoint resumes at the start of the next epoch
          st.epoch++;
          st.next_batch = 0;
          save_checkpoint();
          st.epoch--;
          st.next_batch = batches_per_epoch;
        } else {
          save_checkpoint();
        }
      }
      window_start += Clock::now() - pause_start;
      if (stop_requested) {
        stopped = true;
        break;
      }
    }
    if (!stopped && st.next_batch >= batches_per_epoch) {
      st.epoch++;
      st.next_batch = 0;
    }
  }
  const double runtime = std::chrono::duration<double>(Clock::now() - started).count();
  outcome.global_step = st.global_step;
  outcome.epoch = st.next_batch == 0 ? static_cast<double>(st.epoch) : epoch_float();
  outcome.last_checkpoint = last_checkpoint;
  outcome.best_checkpoint = st.best_checkpoint;
  outcome.interrupted = stopped;
  outcome.train_results = {{"epoch", outcome.epoch}, {"global_step", st.global_step},
                           {"train_loss", st.total_loss_steps ? st.total_loss_sum / static_cast<double>(st.total_loss_steps) : 0.0},
                           {"train_runtime", runtime}, {"train_samples", n},
                           {"train_samples_per_second", runtime > 0 ? static_cast<double>(samples_seen) / runtime : 0.0},
                           {"train_steps_per_second", runtime > 0 ? static_cast<double>(st.global_step) / runtime : 0.0}};
  if (group.distributed()) {  // the mean over ranks of the time each spent blocked on the others
    std::vector<double> wait{comm_wait};
    group.allreduce_sum(wait);
    outcome.train_results["world_size"] = W;
    outcome.train_results["communication_wait_seconds"] = wait[0] / W;
  }
  if (stopped) return outcome;

  if (args.load_best_model_at_end && !st.best_checkpoint.empty()) {
    if (writer)
      spdlog::info("loading the best model ({} = {}) from {}", args.metric_for_best_model, *st.best_metric, st.best_checkpoint);
    const SharedCheckpoint best(group, st.best_checkpoint);
    load_weights_into(model, best.dir(), args.seed, "load_best_model_at_end");
    if (test) last_eval = evaluate_timed();
  } else if (test && (args.eval_strategy != "no" || args.do_eval) &&
             !(last_eval && (*last_eval)["step"] == st.global_step)) {
    run_eval();
  }
  if (!writer) {
    if (last_eval) outcome.eval_results = *last_eval;
    return outcome;
  }
  model.save(paths.output_dir);
  copy_tokenizer_files(paths.tokenizer_dir, paths.output_dir, model_max_tokens(model.config()));
  write_json((fs::path(paths.output_dir) / "train_results.json").string(), outcome.train_results);
  if (last_eval) {
    nlohmann::json e = *last_eval;
    e["epoch"] = outcome.epoch;
    e.erase("step");
    write_json((fs::path(paths.output_dir) / "eval_results.json").string(), e);
    outcome.eval_results = e;
  }
  write_json((fs::path(paths.output_dir) / "trainer_state.json").string(),
             {{"global_step", st.global_step}, {"epoch", outcome.epoch}, {"max_steps", total_steps},
              {"num_train_epochs", num_epochs}, {"best_metric", st.best_metric ? nlohmann::json(*st.best_metric) : nlohmann::json()},
              {"best_model_checkpoint", st.best_checkpoint}, {"log_history", st.log_history},
              {"args", args_to_json(args)}});
  return outcome;
}

}  // namespace tuneserve::train
