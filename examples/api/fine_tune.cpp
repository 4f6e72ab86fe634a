// fine_tune KEY=VALUE...: fine-tunes a model with the hyperparameters of `tuneserve train`
// (model=DIR train=FILE output_dir=DIR epochs=3 ...), printing progress and the final metrics.
#include <cstdio>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <tuneserve/tuneserve.h>

int main(int argc, char** argv) {
  std::vector<std::pair<std::string, std::string>> hyperparameters;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto eq = arg.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "fine_tune: '%s' is not KEY=VALUE\n", argv[i]);
      return 2;
    }
    hyperparameters.emplace_back(arg.substr(0, eq), arg.substr(eq + 1));
  }
  try {
    const tuneserve::FineTuneResult result = tuneserve::fine_tune(hyperparameters, [](long step, long total, double loss) {
      std::fprintf(stderr, "step %ld/%ld loss %.4f\n", step, total, loss);
    });
    std::printf("steps %ld epochs %.2f train_loss %.6f\n", result.steps, result.epochs, result.train_loss);
    for (const auto& [name, value] : result.eval) std::printf("%s %.6f\n", name.c_str(), value);
    std::printf("model %s\n", result.output_dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fine_tune: %s\n", e.what());
    return 1;
  }
  return 0;
}
