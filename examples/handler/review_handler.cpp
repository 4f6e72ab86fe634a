// Example handler plugin (`tuneserve serve --handler libreview_handler.so`): overrides input_fn
// and output_fn, the model runs as usual in between.
//   input_fn:  JSON lines of {"review": "..."}  ->  {"inputs": [...]} for the pipeline
//   output_fn: the pipeline's [{"label", "score"}] -> JSON lines {"sentiment", "confidence"},
//              LABEL_0/LABEL_1 renamed negative/positive (other labels pass through).
// model_fn reads an optional labels.json ({"LABEL_0": "negative", ...}) from the model directory.
// Built with -DREVIEW_HANDLER_TRANSFORM it exports transform_fn as well, which the server must
// refuse to load (transform_fn excludes the other hooks); the tests use that build.
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include <tuneserve/tuneserve_handler.h>

namespace {

using nlohmann::json;

struct Context {
  std::map<std::string, std::string> names = {{"LABEL_0", "negative"}, {"LABEL_1", "positive"}};
};

char* copy(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

int error(char** out, int status, const std::string& message) {
  *out = copy(message);
  return status;
}

}  // namespace

extern "C" {

int tuneserve_handler_abi(void) { return TUNESERVE_HANDLER_ABI; }

void* tuneserve_model_fn(const char* model_dir, char** error_out) {
  auto* context = new Context();
  std::ifstream in(std::string(model_dir) + "/labels.json");
  if (in) {
    const json names = json::parse(in, nullptr, false);
    if (!names.is_object()) {
      delete context;
      *error_out = copy("labels.json: expected an object of label -> name");
      return nullptr;
    }
    for (const auto& [label, name] : names.items()) context->names[label] = name.get<std::string>();
  }
  return context;
}

int tuneserve_input_fn(void*, const char* body, size_t size, const char* content_type,
                       char** request_json, char** error_out) {
  json inputs = json::array();
  std::string text(body, size);
  std::size_t line_no = 0, start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const json row = json::parse(line, nullptr, false);
    if (!row.is_object() || !row.contains("review") || !row["review"].is_string())
      return error(error_out, 400, "line " + std::to_string(line_no) +
                                       ": expected {\"review\": \"...\"} (content type was " +
                                       content_type + ")");
    inputs.push_back(row["review"]);
  }
  if (inputs.empty()) return error(error_out, 400, "no reviews in the body");
  *request_json = copy(json{{"inputs", inputs}}.dump());
  return 0;
}

int tuneserve_output_fn(void* context, const char* prediction_json, const char*, char** body,
                        size_t* size, char** content_type, char** error_out) {
  const auto& names = static_cast<Context*>(context)->names;
  const json prediction = json::parse(prediction_json, nullptr, false);
  if (!prediction.is_array()) return error(error_out, 500, "unexpected prediction shape");
  std::string out;
  for (const auto& p : prediction) {
    const std::string label = p.value("label", "");
    auto it = names.find(label);
    out += json{{"sentiment", it == names.end() ? label : it->second},
                {"confidence", p.value("score", 0.0)}}.dump() + "\n";
  }
  *body = copy(out);
  *size = out.size();
  *content_type = copy("application/jsonlines");
  return 0;
}

#ifdef REVIEW_HANDLER_TRANSFORM
int tuneserve_transform_fn(void*, const tuneserve_model*, const char*, size_t, const char*, const char*, char**, size_t*,
                           char**, char** error_out) {
  return error(error_out, 500, "never called: the server refuses this combination");
}
#endif

}  // extern "C"
