// classify MODEL_DIR [--tokenizer DIR] TEXT...: every label of each text, best first, one line per
// text: "LABEL score LABEL score ..." (scores as transformers' text-classification pipeline gives them).
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <tuneserve/tuneserve.h>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: classify MODEL_DIR [--tokenizer DIR] TEXT...\n");
    return 2;
  }
  tuneserve::ClassifierOptions options;
  std::vector<std::string> texts;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) {
      options.tokenizer_dir = argv[++i];
    } else {
      texts.emplace_back(argv[i]);
    }
  }
  try {
    std::fprintf(stderr, "tuneserve %s\n", tuneserve::version().c_str());
    const tuneserve::Classifier classifier(argv[1], options);
    for (const auto& labels : classifier.classify(texts)) {
      for (std::size_t i = 0; i < labels.size(); ++i)
        std::printf("%s%s %.9g", i ? " " : "", labels[i].label.c_str(), static_cast<double>(labels[i].score));
      std::printf("\n");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "classify: %s\n", e.what());
    return 1;
  }
  return 0;
}
