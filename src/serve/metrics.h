// Prometheus metrics for the server: counters, gauges and histograms keyed by a label set,
// rendered in the text exposition format (version 0.0.4) on GET /metrics. Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace tuneserve::serve {

using Labels = std::vector<std::pair<std::string, std::string>>;  // name -> value, in order

class Metrics {
 public:
  Metrics();
  void inc(const std::string& name, const Labels& labels, double by = 1);
  void set(const std::string& name, const Labels& labels, double value);
  void add(const std::string& name, const Labels& labels, double by);  // gauge up/down
  void observe(const std::string& name, const Labels& labels, double value);
  std::string render() const;
  double value(const std::string& name, const Labels& labels) const;  // counter or gauge; tests

 private:
  enum class Kind { counter, gauge, histogram };
  struct Histogram {
    std::vector<double> counts;  // per bucket upper bound (not cumulative)
    double sum = 0;
    double count = 0;
  };
  struct Family {
    Kind kind = Kind::counter;
    std::string help;
    std::vector<double> buckets;
    std::map<std::string, double> values;        // rendered label set -> value
    std::map<std::string, Histogram> histograms;  // rendered label set -> histogram
  };
  void declare(const std::string& name, Kind kind, std::string help,
               std::vector<double> buckets = {});
  Family& family(const std::string& name);

  mutable std::mutex mutex_;
  std::map<std::string, Family> families_;
};

}  // namespace tuneserve::serve
