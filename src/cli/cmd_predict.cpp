// `tuneserve predict`: classify texts with a Hugging Face model directory and print exactly what
// transformers' text-classification pipeline returns, as Python's json.dumps would print it.
//
//   tuneserve predict --model DIR [--tokenizer DIR] TEXT...          one JSON value on stdout
//   tuneserve predict --model DIR --input IN.{jsonl,csv,tsv}[.gz]|- [--output OUT.jsonl]   one JSON line per row
// One TEXT prints pipeline("TEXT"); several print pipeline([TEXT, ...]). A JSONL line is
// {"text": ..., "text_pair"?: ...} (other keys ignored; --text / --text-pair name other keys) ->
// pipeline({"text", "text_pair"}), or {"inputs": str | {...} | [...]} -> pipeline(inputs); a
// CSV/TSV row (with a header) gives pipeline({"text": row[--text], "text_pair": row[--text-pair]}).
// Rows are classified in blocks (sorted by length inside each), with progress on stderr.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "kernels/device_select.h"
#include "kernels/ops.h"
#include "core/error.h"
#include "core/progress.h"
#include "data/reader.h"
#include "core/json.h"
#include "pipeline/pipeline.h"
#include "storage/resolve.h"

namespace tuneserve::cli {
namespace {

struct PredictArgs {
  std::string model_dir;
  std::string tokenizer_dir;
  std::string revision = "main";
  std::vector<std::string> texts;
  std::string text_pair;
  std::string input_path;
  std::string input_format = "auto";
  std::string text_column;  // --text: the key or column of the texts (default "text")
  std::vector<std::string> columns;  // names of a header-less CSV/TSV's columns
  std::string output_path;
  bool quiet = false;
  std::string function_to_apply = "default";
  std::string top_k;
  int max_length = 0;
  bool no_truncation = false;
  bool no_weight_check = false;
  int threads = 0;
  int batch_size = 32;
  std::string device;
  std::string dtype = "fp32";
};

// One JSONL line: which inputs it contributes and the call shape its output takes.
struct Line {
  std::size_t first = 0;
  std::size_t count = 0;
  CallShape shape = CallShape::Dict;
};

struct Columns {
  std::string text = "text";
  std::string pair;  // empty: "text_pair" when a JSONL line has it; CSV/TSV: none
};

Line parse_line(const std::string& text, const std::string& path, std::int64_t line_number, const Columns& columns,
                std::vector<TextInput>& inputs) {
  const nlohmann::json value = parse_json(text, fmt::format("{}: line {}", path, line_number), {kJsonRecordBytes});
  if (!value.is_object()) fail("{}: line {}: expected an object with \"text\" or \"inputs\"", path, line_number);
  ParsedInputs parsed;
  try {
    if (value.contains("inputs")) {
      parsed = parse_inputs(value["inputs"]);
    } else if (value.contains(columns.text)) {
      // Dataset rows carry other fields (label, id...): only the pipeline's keys are passed on.
      nlohmann::json dict = {{"text", value[columns.text]}};
      const std::string pair = columns.pair.empty() ? "text_pair" : columns.pair;
      if (value.contains(pair)) {
        dict["text_pair"] = value[pair];
      } else if (!columns.pair.empty()) {
        fail("no \"{}\" key (--text-pair)", text_excerpt(pair));
      }
      parsed = parse_inputs(dict);
    } else {
      fail("expected \"{}\" (--text; and optionally \"text_pair\") or \"inputs\"", text_excerpt(columns.text));
    }
  } catch (const Error& e) {
    fail("{}: line {}: {}", path, line_number, e.what());
  }
  Line line{inputs.size(), parsed.inputs.size(), parsed.shape};
  for (auto& input : parsed.inputs) inputs.push_back(std::move(input));
  return line;
}

// Rows of --input: JSONL lines, or CSV/TSV records (with a header) picked by column name. "-" is
// stdin. Every problem names the file and line.
std::vector<Line> read_input(const PredictArgs& args, std::vector<TextInput>& inputs) {
  const bool from_stdin = args.input_path == "-";
  const std::string path = from_stdin ? "/dev/stdin" : args.input_path;
  const std::string name = from_stdin ? "<stdin>" : args.input_path;
  data::Format format = data::parse_format(args.input_format);
  if (format == data::Format::Auto) format = from_stdin ? data::Format::Jsonl : data::detect_format(args.input_path);
  Columns columns;
  if (!args.text_column.empty()) columns.text = args.text_column;
  columns.pair = args.text_pair;
  std::vector<Line> lines;
  if (format == data::Format::Jsonl) {
    data::LineReader reader(path);
    std::string text;
    try {
      while (reader.next(text)) {
        if (text.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank lines carry no input
        lines.push_back(parse_line(text, name, reader.line_number(), columns, inputs));
      }
    } catch (const data::InvalidUtf8& e) {
      fail("{}: line {}: {}", name, e.line, e.detail);
    }
    return lines;
  }
  data::TableOptions options;
  options.format = format;
  options.columns = args.columns;
  std::vector<std::string> selectors{columns.text};
  if (!columns.pair.empty()) selectors.push_back(columns.pair);
  data::TableReader reader(path, options, selectors);
  data::SelectedRow row;
  std::string reason;
  for (;;) {
    const auto status = reader.next(row, reason);
    if (status == data::TableReader::Status::End) break;
    if (status == data::TableReader::Status::Bad) fail("{}: line {}: {}", name, row.line, reason);
    lines.push_back(Line{inputs.size(), 1, CallShape::Dict});
    inputs.push_back(TextInput{std::move(row.values[0]),
                               columns.pair.empty() ? std::nullopt : std::optional<std::string>(std::move(row.values[1]))});
  }
  return lines;
}

int run_predict(const PredictArgs& args) {
  const Device device = select_device({.value = args.device}).device;
  const DType dtype = parse_compute_dtype(args.dtype);
  ops::require(backend_for(device), dtype, fmt::format("--dtype {}", args.dtype));
  if (args.texts.empty() == args.input_path.empty())
    fail("predict: give either TEXT arguments or --input FILE (.jsonl, .csv, .tsv; - for stdin)");
  if (args.input_path.empty() && !args.text_pair.empty() && args.texts.size() != 1)
    fail("predict: --text-pair goes with exactly one TEXT (or names a column of --input)");
  if (args.input_path.empty() && !args.text_column.empty()) fail("predict: --text names a column of --input");

  CallOptions options;
  options.postprocess.function = parse_score_function(args.function_to_apply);
  if (!args.top_k.empty()) options.postprocess.top_k = parse_top_k(args.top_k);
  options.tokenize.truncation = !args.no_truncation;
  if (args.max_length > 0) options.tokenize.max_length = args.max_length;

  // Read (and validate) the input before the slower model load.
  std::vector<TextInput> inputs;
  std::vector<Line> lines;
  if (!args.input_path.empty()) {
    lines = read_input(args, inputs);
  } else if (!args.text_pair.empty()) {
    inputs.push_back(TextInput{args.texts[0], args.text_pair});
    lines.push_back(Line{0, 1, CallShape::Dict});
  } else {
    for (const auto& text : args.texts) inputs.push_back(TextInput{text, std::nullopt});
    lines.push_back(Line{0, inputs.size(), inputs.size() == 1 ? CallShape::Text : CallShape::List});
  }

  Pipeline::Options pipeline_options;
  pipeline_options.threads = args.threads;
  pipeline_options.max_batch_size = args.batch_size;
  pipeline_options.device = device;
  pipeline_options.dtype = dtype;
  pipeline_options.check_weights = !args.no_weight_check;
  const storage::ModelPaths paths = storage::resolve_model(args.model_dir, args.tokenizer_dir, {args.revision});
  auto pipeline = Pipeline::load(paths.model, paths.tokenizer, pipeline_options);
  // stderr, not spdlog's default stdout sink: stdout carries only the JSON results.
  for (const auto& note : pipeline->load_notes()) spdlog::warn("{}", note);

  // Blocks of inputs, so a long file shows progress; each block is sorted by length inside predict.
  const std::size_t block = std::max<std::size_t>(1024, static_cast<std::size_t>(args.batch_size) * 32);
  CountProgress progress(!args.input_path.empty() && !args.quiet, "predict: classified");
  std::vector<std::vector<LabelScore>> results;
  results.reserve(inputs.size());
  for (std::size_t first = 0; first < inputs.size(); first += block) {
    const auto part = std::span(inputs).subspan(first, std::min(block, inputs.size() - first));
    auto scored = pipeline->predict(part, options);
    for (auto& r : scored) results.push_back(std::move(r));
    progress.update(static_cast<std::int64_t>(results.size()), static_cast<std::int64_t>(inputs.size()), "inputs");
  }
  progress.finish(static_cast<std::int64_t>(results.size()), static_cast<std::int64_t>(inputs.size()), "inputs");

  std::ofstream file;
  if (!args.output_path.empty()) {
    file.open(args.output_path);
    if (!file) fail("{}: cannot open for writing", args.output_path);
  }
  std::ostream& out = args.output_path.empty() ? std::cout : file;
  for (const Line& line : lines) {
    const auto span = std::span(results).subspan(line.first, line.count);
    out << python_json(call_json(span, line.shape, options.postprocess.top_k)) << '\n';
  }
  out.flush();
  if (!out) fail("{}: write failed", args.output_path.empty() ? "stdout" : args.output_path);
  return 0;
}

const Registration registration{Command{
    "predict", "Classify texts; prints what transformers' text-classification pipeline returns",
    [](CLI::App& app) -> std::function<int()> {
      auto args = std::make_shared<PredictArgs>();
      app.add_option("--model", args->model_dir, "Model directory, Hub id, s3:// URI or model.tar.gz")->required();
      app.add_option("--tokenizer", args->tokenizer_dir,
                     "Tokenizer directory (tokenizer.json, vocab.json + merges.txt, a .model or vocab.txt) or Hub id; "
                     "default: the model's");
      app.add_option("--revision", args->revision, "Hub branch, tag or commit of --model/--tokenizer")->capture_default_str();
      app.add_option("texts", args->texts, "Texts to classify (one: pipeline(text); several: pipeline([...]))");
      app.add_option("--text-pair,--text_pair", args->text_pair,
                     "Second text of a pair, with exactly one TEXT; with --input, the key or column of second texts");
      app.add_option("--input", args->input_path,
                     "JSONL ({\"text\", \"text_pair\"?} or {\"inputs\": ...} per line), CSV or TSV with a header, "
                     "optionally .gz; - reads stdin");
      app.add_option("--input-format,--input_format", args->input_format,
                     "auto (from the extension; stdin: jsonl) | jsonl | csv | tsv")
          ->capture_default_str();
      app.add_option("--text", args->text_column, "With --input: the key or column of the texts (default text)");
      app.add_option("--columns", args->columns, "With --input: names of a header-less CSV/TSV's columns, e.g. id,text")
          ->delimiter(',');
      app.add_flag("--quiet", args->quiet, "No progress lines on stderr");
      app.add_option("--output", args->output_path, "Write the JSON lines here instead of stdout");
      app.add_option("--function-to-apply", args->function_to_apply, "default | sigmoid | softmax | none")
          ->capture_default_str();
      app.add_option("--top-k", args->top_k, "K best labels, or 'all' (default: the best label, legacy shape)");
      app.add_option("--max-length", args->max_length, "Truncate to this many tokens (default: the model's)")
          ->check(CLI::PositiveNumber);
      app.add_flag("--no-truncation", args->no_truncation, "Reject over-long inputs instead of truncating");
      app.add_flag("--no-weight-check", args->no_weight_check, "Load weights holding NaN or Inf instead of refusing them");
      app.add_option("--threads", args->threads, "CPU threads (default: all cores)")->check(CLI::NonNegativeNumber);
      app.add_option("--batch-size", args->batch_size, "Inputs per forward pass")
          ->capture_default_str()
          ->check(CLI::PositiveNumber);
      app.add_option("--device", args->device, "cpu | cuda | cuda:N (default: cpu)");
      app.add_option("--dtype", args->dtype, "fp32 | bf16: what the matrix products compute in")->capture_default_str();
      return [args] { return run_predict(*args); };
    }}};

}  // namespace
}  // namespace tuneserve::cli
