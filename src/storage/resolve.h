// The one place a model, tokenizer or data reference becomes a local path. Every command calls
// these before reading anything, so each takes the same references:
//
//   a local directory or file          used as it is
//   a local model.tar.gz (.tgz)        unpacked into the tuneserve cache (archive.h checks)
//   a Hub id ("distilbert-base-cased", "org/name"), when no such local path exists
//                                      the needed files in the Hugging Face cache (hub/)
//   s3://bucket/key                    downloaded into the tuneserve cache (aws/): an object, or every
//                                      object under key/ (a folder); a .tar.gz model is unpacked
//                                      (reused while the objects' ETags are unchanged)
//
// The tuneserve cache is $TUNESERVE_CACHE, else $XDG_CACHE_HOME/tuneserve, else ~/.cache/tuneserve.
#pragma once

#include <string>
#include <string_view>

namespace tuneserve::storage {

struct ResolveOptions {
  std::string revision = "main";  // Hub branch, tag or commit
};

bool is_s3_uri(std::string_view ref);
std::string tuneserve_cache_dir();

struct ModelPaths {
  std::string model;      // a directory with config.json and the weights
  std::string tokenizer;  // a directory with tokenizer.json or a vocabulary (may be `model`)
};

// The model and its tokenizer. An empty `tokenizer` means the model's own: the model directory,
// with the tokenizer files fetched too when the model comes from the Hub and has them.
ModelPaths resolve_model(const std::string& model, const std::string& tokenizer, const ResolveOptions& options = {});
// A tokenizer alone (tuneserve tokenize, prep).
std::string resolve_tokenizer(const std::string& ref, const ResolveOptions& options = {});
// A data file or directory (a `tuneserve prep` output, a channel folder).
std::string resolve_data(const std::string& ref);

// Where a training run writes: a local folder as it is; for s3://bucket/prefix, a staging folder in
// the tuneserve cache (the same one for the same URI, so --resume latest finds its checkpoints).
struct OutputDir {
  std::string local;
  std::string remote;  // "" for a local output
};
OutputDir prepare_output_dir(const std::string& ref);
// The end of a training job, as SageMaker's: <local>/model.tar.gz with the model's files at the
// root; for an S3 output, uploaded with the results files (train/eval_results.json, metrics.jsonl)
// to <remote>/. Returns where the archive went.
std::string finish_output_dir(const OutputDir& out);

}  // namespace tuneserve::storage
