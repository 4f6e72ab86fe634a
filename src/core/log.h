// Diagnostics go through spdlog's default logger, set up once here for every command: on stderr
// (stdout carries command output: predictions, JSON), at a level from `--log-level` or
// TUNESERVE_LOG_LEVEL, as text or as one JSON object per line (`--log-format json`,
// TUNESERVE_LOG_FORMAT) for log collectors. Progress bars and the messages a command exists to
// print are not logging and do not come through here.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/sink.h>

namespace tuneserve::logging {

enum class Format { text, json };

// Sets the default logger's level and format. Empty values fall back to TUNESERVE_LOG_LEVEL and
// TUNESERVE_LOG_FORMAT, then to info and text. Levels: trace, debug, info, warn (warning), error,
// critical, off. An unknown value is an Error naming where it came from. `sink`: where lines go
// (default: stderr, coloured on a terminal); tests pass their own.
void configure(std::string_view level, std::string_view format, std::shared_ptr<spdlog::sinks::sink> sink = nullptr);

Format format();

// One access-log record (serve): `fields` (an object of strings and numbers) become keys of the
// JSON line in the json format; in the text format the line is `text`. Logged at info.
void access(const nlohmann::ordered_json& fields, std::string_view text);

}  // namespace tuneserve::logging
