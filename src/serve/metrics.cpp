// Prometheus text exposition of the server's counters, gauges and histograms (see metrics.h).
#include "serve/metrics.h"

#include <cmath>

#include <fmt/format.h>

#include "core/error.h"

namespace tuneserve::serve {
namespace {

std::string escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string render_labels(const Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    if (!out.empty()) out += ',';
    out += fmt::format("{}=\"{}\"", k, escape(v));
  }
  return out;
}

std::string with_le(const std::string& labels, const std::string& le) {
  return "{" + labels + (labels.empty() ? "" : ",") + "le=\"" + le + "\"}";
}

std::string braces(const std::string& labels) {
  return labels.empty() ? std::string() : "{" + labels + "}";
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

}  // namespace

Metrics::Metrics() {
  const std::vector<double> seconds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,  0.5,    1,     2.5,  5,     10,   30};
  declare("tuneserve_requests_total", Kind::counter, "HTTP requests by route and status code");
  declare("tuneserve_request_success_total", Kind::counter, "Requests answered 2xx, by route");
  declare("tuneserve_request_failure_total", Kind::counter,
          "Requests answered with an error, by route and code");
  declare("tuneserve_request_duration_seconds", Kind::histogram,
          "Time from a request's last byte to its response, by route", seconds);
  declare("tuneserve_queue_duration_seconds", Kind::histogram,
          "Time a tokenized request waited in the batch queue", seconds);
  declare("tuneserve_tokenize_duration_seconds", Kind::histogram,
          "Time to decode and tokenize one request", seconds);
  declare("tuneserve_inference_duration_seconds", Kind::histogram,
          "Time of one batched forward pass", seconds);
  declare("tuneserve_batch_size", Kind::histogram, "Inputs per forward pass",
          {1, 2, 4, 8, 16, 32, 64, 128, 256});
  declare("tuneserve_batch_tokens", Kind::histogram, "Tokens per forward pass",
          {16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768});
  declare("tuneserve_queue_depth", Kind::gauge, "Requests admitted and not yet answered, per model");
  declare("tuneserve_in_flight", Kind::gauge, "HTTP requests being processed");
  declare("tuneserve_connections", Kind::gauge, "Open client connections");
  declare("tuneserve_model_load_seconds", Kind::gauge, "Time it took to load each model");
  declare("tuneserve_workers", Kind::gauge, "Worker threads per model");
}

void Metrics::declare(const std::string& name, Kind kind, std::string help,
                      std::vector<double> buckets) {
  Family& f = families_[name];
  f.kind = kind;
  f.help = std::move(help);
  f.buckets = std::move(buckets);
}

Metrics::Family& Metrics::family(const std::string& name) {
  auto it = families_.find(name);
  if (it == families_.end()) fail("metrics: {} is not declared", name);
  return it->second;
}

void Metrics::inc(const std::string& name, const Labels& labels, double by) {
  std::lock_guard lock(mutex_);
  family(name).values[render_labels(labels)] += by;
}

void Metrics::add(const std::string& name, const Labels& labels, double by) {
  inc(name, labels, by);
}

void Metrics::set(const std::string& name, const Labels& labels, double value) {
  std::lock_guard lock(mutex_);
  family(name).values[render_labels(labels)] = value;
}

void Metrics::observe(const std::string& name, const Labels& labels, double value) {
  std::lock_guard lock(mutex_);
  Family& f = family(name);
  Histogram& h = f.histograms[render_labels(labels)];
  if (h.counts.empty()) h.counts.assign(f.buckets.size() + 1, 0);
  std::size_t b = 0;
  while (b < f.buckets.size() && value > f.buckets[b]) ++b;
  h.counts[b] += 1;
  h.sum += value;
  h.count += 1;
}

double Metrics::value(const std::string& name, const Labels& labels) const {
  std::lock_guard lock(mutex_);
  const Family& f = families_.at(name);
  auto it = f.values.find(render_labels(labels));
  return it == f.values.end() ? 0 : it->second;
}

std::string Metrics::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, f] : families_) {
    const char* type = f.kind == Kind::counter ? "counter" : f.kind == Kind::gauge ? "gauge" : "histogram";
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, f.help, name, type);
    for (const auto& [labels, v] : f.values) out += fmt::format("{}{} {}\n", name, braces(labels), number(v));
    for (const auto& [labels, h] : f.histograms) {
      double cumulative = 0;
      for (std::size_t b = 0; b <= f.buckets.size(); ++b) {
        cumulative += h.counts[b];
        const std::string le = b < f.buckets.size() ? number(f.buckets[b]) : "+Inf";
        out += fmt::format("{}_bucket{} {}\n", name, with_le(labels, le), number(cumulative));
      }
      out += fmt::format("{}_sum{} {}\n", name, braces(labels), number(h.sum));
      out += fmt::format("{}_count{} {}\n", name, braces(labels), number(h.count));
    }
  }
  return out;
}

}  // namespace tuneserve::serve
