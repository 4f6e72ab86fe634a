// `tuneserve report`: one self-contained HTML page for a training run (metrics.jsonl and the
// result files in RUN_DIR) with Chart.js inlined, so it opens in a browser without a network:
// loss (train and eval), learning rate, grad norm, eval metrics and throughput against steps.
#pragma once

#include <string>

namespace tuneserve {
// Chart.js's UMD bundle, embedded at build time (cmake/embed_text.cmake); "" when the build
// did not find it.
std::string embedded_chartjs();
}  // namespace tuneserve

namespace tuneserve::train {

// The page for `run_dir`; Error when it has no metrics.jsonl or a line is not JSON (naming it),
// or when the build has no Chart.js.
std::string render_report(const std::string& run_dir);

}  // namespace tuneserve::train
