// Tokenizer throughput, one thread: every `content` of ../shared/data/amazon_polarity/train.jsonl
// (4,000 reviews) encoded by each tokenizer family on the same texts: WordPiece (BERT cased and
// uncased), byte-level BPE (RoBERTa, GPT-2), Unigram (T5) and SentencePiece .model files
// (ALBERT, DeBERTa-v3, through libsentencepiece); best of N passes. The BPE and Unigram lines
// print their tokens/s as a ratio of WordPiece's (cased) in the same run.
// Peer (not run here: no Python tokenizers on this machine): ../shared/README.md cites Hugging
// Face `tokenizers` at ~733k tokens/s on one thread of a different CPU; indicative only.
//   build/bench/bench_tokenizer [passes=5]
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  const int passes = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  const std::string shared = TUNESERVE_SHARED_DIR;
  const std::string data_path = shared + "/data/amazon_polarity/train.jsonl";
  std::ifstream in(data_path);
  if (!in) {
    std::fprintf(stderr, "bench_tokenizer: cannot open %s (../shared beside the checkout)\n", data_path.c_str());
    return 1;
  }
  std::vector<std::string> texts;
  std::size_t bytes = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    texts.push_back(nlohmann::json::parse(line).at("content").get<std::string>());
    bytes += texts.back().size();
  }
  std::printf("amazon_polarity/train.jsonl: %zu contents, %.2f MB, one thread, best of %d passes\n",
              texts.size(), bytes / 1e6, passes);

  double wordpiece_rate = 0;
  for (const char* name : {"bert-base-cased", "bert-base-uncased", "roberta-base", "gpt2", "t5-small",
                           "albert-base-v2", "deberta-v3-base"}) {
    const std::string dir = shared + "/tokenizers/" + name;
    if (!std::filesystem::is_directory(dir)) continue;
    const auto tokenizer = tuneserve::Tokenizer::from_dir(dir);
    double best = 1e30;
    std::size_t tokens = 0;
    for (int pass = 0; pass < passes; ++pass) {
      std::size_t count = 0;
      const auto start = std::chrono::steady_clock::now();
      for (const std::string& text : texts) count += tokenizer.encode(text).size();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      best = std::min(best, seconds);
      tokens = count;
    }
    const double rate = tokens / best;
    if (wordpiece_rate == 0) wordpiece_rate = rate;
    std::printf("%-18s %-13s %9zu tokens  %7.1f ms  %8.0f tokens/s  %6.1f MB/s  %5.2fx WordPiece (cased)\n", name,
                tokenizer.kind(), tokens, best * 1e3, rate, bytes / best / 1e6, rate / wordpiece_rate);
  }
  std::printf("peer: Hugging Face tokenizers ~733k tokens/s on one thread of another CPU "
              "(../shared/README.md; indicative only)\n");
  return 0;
}
