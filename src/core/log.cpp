// Logging set-up: spdlog's default logger on stderr, text or JSON lines (see log.h).
#include "core/log.h"

#include <atomic>
#include <chrono>
#include <cstdlib>

#include <fmt/chrono.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/error.h"

namespace tuneserve::logging {
namespace {

constexpr const char* kAccessLogger = "access";
std::atomic<Format> g_format{Format::text};

// One JSON object per line: time (UTC, ISO 8601 with milliseconds), level, message; an access
// record's payload is already a JSON object whose keys are spliced in after time and level.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count();
    const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
    const auto level = spdlog::level::to_string_view(msg.level);
    std::string head = fmt::format(R"({{"time":"{:%Y-%m-%dT%H:%M:%S}.{:03}Z","level":"{}")", fmt::gmtime(seconds),
                                   ms % 1000, std::string_view(level.data(), level.size()));
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    if (msg.logger_name == kAccessLogger && payload.size() > 2 && payload.front() == '{') {
      head += ',';
      head += payload.substr(1);
    } else {
      head += R"(,"message":)";
      // Invalid UTF-8 in a message (a file name, an excerpt of input) is replaced, never fatal.
      head += nlohmann::json(std::string(payload)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      head += '}';
    }
    head += '\n';
    dest.append(head.data(), head.data() + head.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

std::string from_env(std::string_view given, const char* variable, std::string& source) {
  if (!given.empty()) return std::string(given);
  const char* value = std::getenv(variable);
  if (value == nullptr || *value == '\0') return "";
  source = variable;
  return value;
}

spdlog::level::level_enum parse_level(const std::string& value, const std::string& source) {
  using spdlog::level::level_enum;
  static const std::pair<const char*, level_enum> levels[] = {
      {"trace", level_enum::trace}, {"debug", level_enum::debug}, {"info", level_enum::info},
      {"warn", level_enum::warn},   {"warning", level_enum::warn}, {"error", level_enum::err},
      {"critical", level_enum::critical}, {"off", level_enum::off}};
  for (const auto& [name, level] : levels) {
    if (value == name) return level;
  }
  fail("{}: '{}' is not a log level (trace, debug, info, warn, error, critical, off)", source, value);
}

}  // namespace

void configure(std::string_view level, std::string_view format, std::shared_ptr<spdlog::sinks::sink> sink) {
  std::string level_source = "--log-level", format_source = "--log-format";
  const std::string level_text = from_env(level, "TUNESERVE_LOG_LEVEL", level_source);
  const std::string format_text = from_env(format, "TUNESERVE_LOG_FORMAT", format_source);
  const spdlog::level::level_enum lvl = level_text.empty() ? spdlog::level::info : parse_level(level_text, level_source);
  Format fmt_kind = Format::text;
  if (format_text == "json") {
    fmt_kind = Format::json;
  } else if (!format_text.empty() && format_text != "text") {
    fail("{}: '{}' is not a log format (text, json)", format_source, format_text);
  }
  if (!sink) sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  if (fmt_kind == Format::json) {
    sink->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    sink->set_formatter(std::make_unique<spdlog::pattern_formatter>("[%Y-%m-%d %H:%M:%S.%e] [%l] %v"));
  }
  auto main_logger = std::make_shared<spdlog::logger>("", sink);
  auto access_logger = std::make_shared<spdlog::logger>(kAccessLogger, sink);
  main_logger->set_level(lvl);
  access_logger->set_level(lvl);
  spdlog::drop(kAccessLogger);
  spdlog::register_logger(access_logger);
  spdlog::set_default_logger(main_logger);
  g_format = fmt_kind;
}

Format format() { return g_format.load(); }

void access(const nlohmann::ordered_json& fields, std::string_view text) {
  std::shared_ptr<spdlog::logger> logger = spdlog::get(kAccessLogger);
  if (!logger) logger = spdlog::default_logger();
  if (!logger->should_log(spdlog::level::info)) return;
  if (g_format.load() == Format::json) {
    logger->info(fields.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
  } else {
    logger->info(text);
  }
}

}  // namespace tuneserve::logging
