// The server's backend over pipeline/pipeline.h (see pipeline_backend.h).
#include "serve/pipeline_backend.h"

#include "checkpoint/config.h"
#include "core/cpus.h"
#include "model/model.h"

namespace tuneserve::serve {

PipelineBackend::PipelineBackend(const std::string& model_dir, const std::string& tokenizer_dir,
                                 const Pipeline::Options& options, bool share_cpus)
    : pipeline_(Pipeline::load(model_dir, tokenizer_dir, options)), share_cpus_(share_cpus) {
  info_.id = model_dir;
  info_.model_type = arch_name(pipeline_->config().arch);
  info_.labels = pipeline_->labels();
  info_.max_input_length = pipeline_->max_length();
  info_.device = options.device.str();
  info_.dtype = compute_dtype_name(options.dtype);
}

void PipelineBackend::set_concurrency(int n) {
  pipeline_->set_concurrent_forwards(static_cast<std::size_t>(n));
  if (share_cpus_) pipeline_->set_threads(cpus_per_pass(n));
}

void PipelineBackend::release_threads() { Model::release_threads(); }

}  // namespace tuneserve::serve
