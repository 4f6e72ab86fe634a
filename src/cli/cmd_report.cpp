// `tuneserve report RUN_DIR`: writes RUN_DIR/report.html (or --output), a self-contained page
// plotting a training run's loss, learning rate, grad norm and eval metrics against steps.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "cli/command.h"
#include "core/error.h"
#include "train/report.h"

namespace tuneserve::cli {
namespace {

struct ReportArgs {
  std::string run_dir, output;
};

int run(const ReportArgs& a) {
  const std::string page = train::render_report(a.run_dir);
  const std::string out = a.output.empty() ? (std::filesystem::path(a.run_dir) / "report.html").string() : a.output;
  std::ofstream file(out, std::ios::trunc | std::ios::binary);
  if (!file) fail("cannot write {}", out);
  file << page;
  if (!file) fail("cannot write {}", out);
  std::printf("%s\n", out.c_str());
  return 0;
}

const Registration registration{Command{
    "report", "Write an HTML page with plots of a training run's loss, lr, grad norm and eval metrics",
    [](CLI::App& app) -> std::function<int()> {
      auto a = std::make_shared<ReportArgs>();
      app.add_option("run_dir", a->run_dir, "Output directory of `tuneserve train` (holds metrics.jsonl)")->required();
      app.add_option("--output,-o", a->output, "HTML file to write (default: RUN_DIR/report.html)");
      return [a] { return run(*a); };
    }}};

}  // namespace
}  // namespace tuneserve::cli
