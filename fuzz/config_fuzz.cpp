// libFuzzer target for config.json (checkpoint/config.cpp): the input is the file's text, parsed
// with the program's one JSON parser and read as a model configuration, then written back.
// Any exception other than tuneserve::Error is a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "checkpoint/config.h"
#include "core/error.h"
#include "core/json.h"

using namespace tuneserve;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const ModelConfig config =
        parse_config(parse_json(std::string_view(reinterpret_cast<const char*>(data), size), "config.json"), "config.json");
    if (config.num_labels != static_cast<int>(config.id2label.size())) __builtin_trap();
    config_to_json(config).dump();
  } catch (const Error&) {
  }
  return 0;
}
