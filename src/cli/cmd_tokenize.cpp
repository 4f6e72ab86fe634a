// `tuneserve tokenize`: JSONL {"text", "text_pair"?} on stdin -> {"ids", "type_ids", "offsets"}
// per line on stdout, with the tokenizer of a Hugging Face directory. A bad line stops with its number.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/error.h"
#include "core/json.h"
#include "storage/resolve.h"
#include "tokenizer/tokenizer.h"

namespace tuneserve::cli {
namespace {

struct TokenizeArgs {
  std::string tokenizer_dir;
  std::string revision = "main";
  std::size_t max_length = 0;
  std::string truncation;  // empty: longest_first when --max-length is given, else none
  std::string padding = "none";
  std::size_t pad_to_multiple_of = 0;
  bool no_special_tokens = false;
};

void append_json(std::string& out, const Encoding& e, bool with_mask) {
  auto list = [&](const char* name, const std::vector<std::int32_t>& v) {
    fmt::format_to(std::back_inserter(out), "\"{}\": [{}]", name, fmt::join(v, ", "));
  };
  out += '{';
  list("ids", e.ids);
  out += ", ";
  list("type_ids", e.type_ids);
  out += ", \"offsets\": [";
  for (std::size_t i = 0; i < e.offsets.size(); ++i)
    fmt::format_to(std::back_inserter(out), "{}[{}, {}]", i ? ", " : "", e.offsets[i].first, e.offsets[i].second);
  out += ']';
  if (with_mask) {
    out += ", ";
    list("attention_mask", e.attention_mask);
  }
  out += "}\n";
}

// One input line -> (text, optional pair); errors name the line.
std::pair<std::string, std::optional<std::string>> parse_line(const std::string& line, std::size_t number) {
  const nlohmann::json j = parse_json(line, fmt::format("stdin: line {}", number), {kJsonRecordBytes});
  if (!j.is_object()) fail("stdin: line {}: expected a JSON object {{\"text\": ...}}", number);
  if (!j.contains("text") || !j["text"].is_string())
    fail("stdin: line {}: field \"text\" is missing or not a string", number);
  std::optional<std::string> pair;
  if (j.contains("text_pair") && !j["text_pair"].is_null()) {
    if (!j["text_pair"].is_string()) fail("stdin: line {}: field \"text_pair\" is not a string", number);
    pair = j["text_pair"].get<std::string>();
  }
  return {j["text"].get<std::string>(), std::move(pair)};
}

int run(const TokenizeArgs& args) {
  const Tokenizer tokenizer = Tokenizer::from_dir(storage::resolve_tokenizer(args.tokenizer_dir, {args.revision}));
  EncodeOptions options;
  options.add_special_tokens = !args.no_special_tokens;
  options.max_length = args.max_length;
  options.truncation = args.truncation.empty()
                           ? (args.max_length > 0 ? Truncation::LongestFirst : Truncation::None)
                           : parse_truncation(args.truncation);
  options.padding = parse_padding(args.padding);
  options.pad_to_multiple_of = args.pad_to_multiple_of;
  const bool with_mask = options.padding != Padding::None;

  std::string line, out;
  std::size_t number = 0;
  std::vector<Encoding> held;  // Padding::Longest needs every line before the first output
  while (std::getline(std::cin, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto [text, pair] = parse_line(line, number);
    Encoding e;
    try {
      e = tokenizer.encode(text, pair ? std::optional<std::string_view>(*pair) : std::nullopt, options);
    } catch (const Error& error) {
      fail("stdin: line {}: {}", number, error.what());
    }
    if (options.padding == Padding::Longest) {
      held.push_back(std::move(e));
      continue;
    }
    out.clear();
    append_json(out, e, with_mask);
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  if (!held.empty()) {
    tokenizer.pad(held, options);
    for (const Encoding& e : held) {
      out.clear();
      append_json(out, e, with_mask);
      std::fwrite(out.data(), 1, out.size(), stdout);
    }
  }
  std::fflush(stdout);
  return 0;
}

const Registration registration{Command{
    "tokenize", "Tokenize JSONL {\"text\", \"text_pair\"} lines from stdin with a Hugging Face tokenizer",
    [](CLI::App& app) -> std::function<int()> {
      auto args = std::make_shared<TokenizeArgs>();
      app.add_option("--tokenizer", args->tokenizer_dir,
                     "directory with tokenizer.json, vocab.json + merges.txt, a SentencePiece .model or vocab.txt, "
                     "or a Hub id")
          ->required();
      app.add_option("--revision", args->revision, "Hub branch, tag or commit of --tokenizer")->capture_default_str();
      app.add_option("--max-length", args->max_length,
                     "length limit incl. special tokens (truncation, --padding max_length); "
                     "0 = the tokenizer's model_max_length");
      app.add_option("--truncation", args->truncation,
                     "longest_first | only_first | only_second | none "
                     "(default: longest_first with --max-length, else none)");
      app.add_option("--padding", args->padding, "none | longest (over all input lines) | max_length");
      app.add_option("--pad-to-multiple-of", args->pad_to_multiple_of, "round padded lengths up to a multiple");
      app.add_flag("--no-special-tokens", args->no_special_tokens, "do not add [CLS]/[SEP]");
      return [args] { return run(*args); };
    }}};

}  // namespace
}  // namespace tuneserve::cli
