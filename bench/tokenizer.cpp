// Tokenizer throughput, one thread: every `content` of ../shared/data/amazon_polarity/train.jsonl
// (4,000 reviews) encoded by each tokenizer family on the same texts: WordPiece (BERT cased and
// uncased), byte-level BPE (RoBERTa, GPT-2), Unigram (T5) and SentencePiece .model files (ALBERT,
// DeBERTa-v3, through libsentencepiece). Passes run round-robin over the tokenizers (best of N
// each), so a busy machine slows them alike; each line prints its tokens/s as a ratio of
// WordPiece's (cased) in the same run.
// Peer in the same run: transformers.js (npm, installed by scripts/setup.sh; bench/tokenizer_peer.mjs)
// on the tokenizer.json files, when node has it. Hugging Face `tokenizers` (Rust) is not on this
// machine: ../shared/README.md cites ~733k tokens/s on one thread of another CPU (indicative only).
//   build/bench/bench_tokenizer [passes=5]
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace {

struct Entry {
  std::string name;
  tuneserve::Tokenizer tokenizer;
  double best = 1e30;
  std::size_t tokens = 0;
};

// transformers.js's {name: {"tokens", "seconds"}} for the tokenizer.json directories, or {} when
// node or the package is missing.
nlohmann::json peer(const std::string& data, int passes, const std::vector<std::string>& dirs) {
  const std::string modules = std::string(TUNESERVE_SOURCE_DIR) + "/third_party/npm/node_modules";
  if (!std::filesystem::exists(modules + "/@huggingface/transformers/package.json")) return nlohmann::json::object();
  std::string command = "NODE_PATH=" + modules + " node " + TUNESERVE_SOURCE_DIR + "/bench/tokenizer_peer.mjs " + data +
                        " " + std::to_string(passes);
  for (const auto& d : dirs) command += " " + d;
  FILE* pipe = popen((command + " 2>/dev/null").c_str(), "r");
  if (!pipe) return nlohmann::json::object();
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe)) out += buf;
  if (pclose(pipe) != 0) return nlohmann::json::object();
  try {
    return nlohmann::json::parse(out);
  } catch (const nlohmann::json::exception&) {
    return nlohmann::json::object();
  }
}

}  // namespace

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
  std::printf("amazon_polarity/train.jsonl: %zu contents, %.2f MB, one thread, best of %d round-robin passes\n",
              texts.size(), bytes / 1e6, passes);

  std::vector<Entry> entries;
  std::vector<std::string> json_dirs;
  for (const char* name : {"bert-base-cased", "bert-base-uncased", "roberta-base", "gpt2", "t5-small",
                           "albert-base-v2", "deberta-v3-base"}) {
    const std::string dir = shared + "/tokenizers/" + name;
    if (!std::filesystem::is_directory(dir)) continue;
    entries.push_back(Entry{name, tuneserve::Tokenizer::from_dir(dir)});
    if (std::filesystem::exists(dir + "/tokenizer.json")) json_dirs.push_back(dir);
  }
  for (int pass = 0; pass < passes; ++pass)
    for (Entry& e : entries) {
      std::size_t count = 0;
      const auto start = std::chrono::steady_clock::now();
      for (const std::string& text : texts) count += e.tokenizer.encode(text).size();
      e.best = std::min(e.best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      e.tokens = count;
    }
  const nlohmann::json js = peer(data_path, passes, json_dirs);

  const double wordpiece = entries.empty() ? 0 : entries[0].tokens / entries[0].best;
  std::printf("%-18s %-13s %9s %9s %12s %8s %11s %14s\n", "tokenizer", "kind", "tokens", "ms", "tokens/s", "MB/s",
              "/WordPiece", "/transformers.js");
  for (const Entry& e : entries) {
    const double rate = e.tokens / e.best;
    std::string vs_js = "-";
    if (js.contains(e.name)) {
      const double js_rate = js[e.name]["tokens"].get<double>() / js[e.name]["seconds"].get<double>();
      vs_js = fmt::format("{:.1f}x", rate / js_rate);
    }
    std::printf("%-18s %-13s %9zu %9.1f %12.0f %8.1f %10.2fx %14s\n", e.name.c_str(), e.tokenizer.kind(), e.tokens,
                e.best * 1e3, rate, bytes / e.best / 1e6, rate / wordpiece, vs_js.c_str());
  }
  if (js.empty()) std::printf("peer: transformers.js not found (scripts/setup.sh installs it); no same-run ratio\n");
  std::printf("Hugging Face tokenizers (Rust): ~733k tokens/s on one thread of another CPU "
              "(../shared/README.md; indicative only)\n");
  return 0;
}
