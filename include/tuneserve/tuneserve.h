// tuneserve's public C++ API: classify texts with a Hugging Face text classifier (DistilBERT, BERT,
// RoBERTa) and fine-tune one, in your own program. It is a thin, stable face over the library the
// `tuneserve` binary is made of; nothing of the library's internals shows through it.
//
//   find_package(tuneserve REQUIRED)            # CMake
//   target_link_libraries(app PRIVATE tuneserve::tuneserve)
//   c++ -std=c++17 app.cpp $(pkg-config --cflags --libs tuneserve)   # or pkg-config
//
//   tuneserve::Classifier classifier("my-model");          // config.json, model.safetensors, tokenizer
//   tuneserve::ScoredLabel best = classifier.classify("This is a very good product!");
//   // best.label == "positive", best.score == 0.97...
//
// Scores are what transformers' pipeline("text-classification") returns for the same model. Every
// function reports failure by throwing std::runtime_error whose what() says what is wrong and
// where (the file, line or field), as the tuneserve binary prints it.
// Thread safety: a Classifier may be used from several threads at once.
// CPUs: x86-64 with AVX2 and FMA; on an older CPU, loading the library stops the program with one
// line naming the missing features (TUNESERVE_CPU_ISA works as for the binary, see README "CPUs").
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#define TUNESERVE_API __attribute__((visibility("default")))

namespace tuneserve {

// "0.1.0 (commit 1a2b3c4d5e6f, Release, kernels avx512)": the library's version, the git commit it
// was built from, its build type and the CPU kernels chosen on this machine.
TUNESERVE_API std::string version();

// A label and its score, as in transformers' [{"label": ..., "score": ...}].
struct ScoredLabel {
  std::string label;
  float score = 0;
};

struct ClassifierOptions {
  // Where the tokenizer is (tokenizer.json, vocab.json + merges.txt, a SentencePiece .model or
  // vocab.txt; README "Tokenizing"); empty: the model directory.
  std::string tokenizer_dir;
  std::string device = "cpu";  // "cpu", or "cuda" / "cuda:N" in a build with the CUDA backend
  int threads = 0;             // CPU threads for the model; 0: the OpenMP default (all cores)
  int max_length = 0;          // tokens per text, longer ones are cut; 0: the model's limit
  int max_batch_size = 32;     // texts per forward pass in classify(texts)
};

class TUNESERVE_API Classifier {
 public:
  // Loads a Hugging Face model directory (config.json + model.safetensors, as transformers'
  // save_pretrained or `tuneserve train` writes it) and its tokenizer.
  explicit Classifier(const std::string& model_dir, const ClassifierOptions& options = {});
  ~Classifier();
  Classifier(Classifier&&) noexcept;
  Classifier& operator=(Classifier&&) noexcept;

  // The best label of one text, scored with the function the pipeline picks for the model
  // (softmax for single-label models, sigmoid for multi-label or single-output ones).
  ScoredLabel classify(const std::string& text) const;
  // Every label of each text, best first; texts are batched by length, results in input order.
  std::vector<std::vector<ScoredLabel>> classify(const std::vector<std::string>& texts) const;
  // The same for text pairs (sentence-pair tasks such as NLI or paraphrase detection).
  std::vector<std::vector<ScoredLabel>> classify_pairs(
      const std::vector<std::pair<std::string, std::string>>& pairs) const;

  // The model's labels in id order (config.json's id2label; "LABEL_i" where it has none).
  std::vector<std::string> labels() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct FineTuneResult {
  long steps = 0;                      // optimizer steps taken
  double epochs = 0;
  double train_loss = 0;               // mean training loss
  std::map<std::string, double> eval;  // last evaluation: eval_loss, eval_accuracy, eval_f1, ...; empty without test data
  std::string output_dir;              // the fine-tuned model: loads with Classifier and with transformers
  std::vector<std::string> notes;      // what was done beyond the asked: truncation, a new head, unused tensors
};

// Called after each optimizer step with (step, total steps, running mean loss).
using FineTuneProgress = std::function<void(long step, long total_steps, double loss)>;

// Fine-tunes a model as `tuneserve train` does (transformers Trainer semantics: AdamW, schedules,
// evaluation, checkpoints), on local paths (model and tokenizer directories, data files or
// `tuneserve prep` directories, output directory). `hyperparameters` are that command's options
// without the dashes, in either spelling or under transformers' names, with their values as text:
//
//   tuneserve::fine_tune({{"model", "distilbert-dir"}, {"train", "train.jsonl"}, {"test", "test.jsonl"},
//                         {"text", "content"}, {"label", "label"}, {"epochs", "3"},
//                         {"learning_rate", "5e-4"}, {"output_dir", "out"}});
//
// An unknown name or a bad value throws naming it, before any data is read.
TUNESERVE_API FineTuneResult fine_tune(const std::vector<std::pair<std::string, std::string>>& hyperparameters,
                                       const FineTuneProgress& progress = {});

}  // namespace tuneserve
