// `tuneserve quickstart`: the whole job on CPU in one command: prepares the Amazon reviews,
// fine-tunes distilbert-tiny-init with the reference recipe, evaluates, classifies sentences and
// writes the report page. Every path and the main hyperparameters can be replaced.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/train_console.h"
#include "core/error.h"
#include "pipeline/pipeline.h"
#include "train/eval_metrics.h"
#include "train/report.h"

namespace tuneserve::cli {
namespace {

namespace fs = std::filesystem;

struct QuickstartArgs {
  std::string data_dir = "../shared/data/amazon_polarity";
  std::string train, test;  // default: DATA_DIR/train.jsonl, DATA_DIR/test.jsonl
  std::string model = "../shared/models/distilbert-tiny-init";
  std::string tokenizer = "../shared/tokenizers/bert-base-cased";
  std::string text = "content", label = "label", output = "quickstart";
  std::string label_names = "negative,positive";  // Amazon polarity: 0 negative, 1 positive
  double epochs = 3, learning_rate = 5e-4;
  long batch_size = 32, max_length = 256, seed = 0, threads = 0;
  std::vector<std::string> sentences{"This is a very good product!", "Terrible quality, it broke after two days."};
};

void section(int n, const char* title) { std::printf("\n[%d/5] %s\n", n, title); std::fflush(stdout); }

int run(const QuickstartArgs& q) {
  take_stop_signals();  // before the kernels start threads
  // The reference recipe (../shared/README.md): AdamW wd 0.01 except bias/LayerNorm, linear schedule,
  // 6% warmup, grad-norm clip 1.0, default dropouts.
  train::TrainArgs args;
  args.model = q.model;
  args.tokenizer = q.tokenizer;
  args.train = q.train.empty() ? (fs::path(q.data_dir) / "train.jsonl").string() : q.train;
  args.test = q.test.empty() ? (fs::path(q.data_dir) / "test.jsonl").string() : q.test;
  args.text = q.text;
  args.label = q.label;
  args.label_names = q.label_names;
  args.max_length = q.max_length;
  args.output_dir = (fs::path(q.output) / "model").string();
  args.epochs = q.epochs;
  args.train_batch_size = q.batch_size;
  args.eval_batch_size = 64;
  args.learning_rate = q.learning_rate;
  args.warmup_ratio = 0.06;
  args.weight_decay = 0.01;
  args.max_grad_norm = 1.0;
  args.seed = q.seed;
  args.logging_steps = 25;
  args.save_strategy = "no";
  args.threads = q.threads;
  train::finalize_args(args);

  section(1, "prepare: read, tokenize");
  train::RunInputs in = load_run_inputs(args, Device{});  // the quickstart runs on the CPU
  const fs::path data_out = fs::path(q.output) / "data";
  in.data.train.write((data_out / "train").string());
  in.data.test->write((data_out / "test").string());
  const auto& m = in.data.train.manifest();
  std::printf("%zu training rows, %zu test rows, %zu labels; token lengths mean %.1f, max %lld -> %s\n",
              in.data.train.size(), in.data.test->size(), in.data.train.num_labels(), m.lengths.mean,
              static_cast<long long>(m.lengths.max), data_out.string().c_str());

  section(2, "fine-tune");
  std::printf("%s, %g epochs, batch %ld, lr %g, warmup 6%%, weight decay 0.01, clip 1.0, seed %ld\n",
              args.model.c_str(), args.epochs, args.train_batch_size, args.learning_rate, args.seed);
  std::fflush(stdout);
  const train::TrainOutcome outcome =
      train_with_console(in.model, args, in.data.train, &*in.data.test, {args.output_dir, args.output_dir, in.tokenizer_dir});
  if (outcome.interrupted) {
    std::fprintf(stderr, "stopped; resume with: tuneserve train --resume latest --output-dir %s ...\n", args.output_dir.c_str());
    return interrupted_exit_code();
  }
  std::printf("trained %ld steps in %s (%.1f samples/s); model -> %s\n", outcome.global_step,
              format_duration(outcome.train_results["train_runtime"].get<double>()).c_str(),
              outcome.train_results["train_samples_per_second"].get<double>(), args.output_dir.c_str());

  section(3, "evaluate on the test set");
  const train::EvalMetrics metrics = train::evaluate(in.model, *in.data.test, args.eval_batch_size);
  std::printf("%s", train::metrics_table(metrics, in.model.config().id2label).c_str());

  section(4, "classify (the saved model, as `tuneserve predict` loads it)");
  const auto pipeline = Pipeline::load(args.output_dir, args.output_dir);
  std::vector<TextInput> inputs;
  for (const auto& s : q.sentences) inputs.push_back({s, std::nullopt});
  const auto results = pipeline->predict(inputs, CallOptions{});
  for (std::size_t i = 0; i < inputs.size(); i++)
    std::printf("%s -> %s\n", python_json(nlohmann::json(inputs[i].text)).c_str(),
                python_json(result_json(results[i], TopK::unset())).c_str());

  section(5, "report");
  const fs::path page = fs::path(args.output_dir) / "report.html";
  try {
    const std::string html = train::render_report(args.output_dir);
    std::ofstream(page, std::ios::trunc | std::ios::binary) << html;
    std::printf("plots of loss, lr, grad norm and eval metrics: %s (open in a browser)\n", page.string().c_str());
  } catch (const Error& e) {
    std::printf("no report: %s\n", e.what());  // the trained model is there all the same
  }
  return 0;
}

const Registration registration{Command{
    "quickstart", "Prepare Amazon reviews, fine-tune distilbert-tiny-init, evaluate, classify, report (CPU)",
    [](CLI::App& app) -> std::function<int()> {
      auto q = std::make_shared<QuickstartArgs>();
      app.add_option("--data-dir,--data_dir", q->data_dir, "Folder with train.jsonl and test.jsonl")->capture_default_str();
      app.add_option("--train", q->train, "Training file (default DATA_DIR/train.jsonl)");
      app.add_option("--test", q->test, "Test file (default DATA_DIR/test.jsonl)");
      app.add_option("--model", q->model, "Model directory to fine-tune")->capture_default_str();
      app.add_option("--tokenizer", q->tokenizer, "Tokenizer directory")->capture_default_str();
      app.add_option("--text", q->text, "Text column")->capture_default_str();
      app.add_option("--label", q->label, "Label column")->capture_default_str();
      app.add_option("--label-names,--label_names", q->label_names, "Names of label ids 0, 1, ... (\"\" keeps LABEL_i)")
          ->capture_default_str();
      app.add_option("--output,--output-dir,--output_dir", q->output, "Where data, model and report go")->capture_default_str();
      app.add_option("--epochs", q->epochs, "Epochs")->capture_default_str();
      app.add_option("--learning-rate,--learning_rate", q->learning_rate, "Peak learning rate")->capture_default_str();
      app.add_option("--batch-size,--batch_size", q->batch_size, "Training batch size")->capture_default_str();
      app.add_option("--max-length,--max_length", q->max_length, "Truncation length")->capture_default_str();
      app.add_option("--seed", q->seed, "Seed")->capture_default_str();
      app.add_option("--threads", q->threads, "CPU threads (0 = all cores)");
      app.add_option("--sentence", q->sentences, "Sentence(s) to classify at the end");
      return [q] { return run(*q); };
    }}};

}  // namespace
}  // namespace tuneserve::cli
