// The report page: self-contained (Chart.js inlined, no external script or stylesheet), the run's
// records inside it, "</script>" in user text cannot end the script early, clear errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "train/report.h"

namespace {

namespace fs = std::filesystem;

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

TEST(Report, SelfContainedPageWithTheRunsRecords) {
  if (tuneserve::embedded_chartjs().empty()) GTEST_SKIP() << "built without Chart.js (scripts/setup.sh installs it from npm)";
  const fs::path dir = fs::temp_directory_path() / ("tuneserve_report_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    std::ofstream m(dir / "metrics.jsonl");
    m << R"({"step":10,"epoch":0.5,"loss":0.6931,"lr":0.0004,"grad_norm":0.81,"samples_per_second":120.5})" << "\n";
    m << R"({"step":20,"epoch":1.0,"loss":0.5123,"lr":0.0002,"grad_norm":1.25,"samples_per_second":118.0})" << "\n";
    m << R"({"step":20,"epoch":1.0,"eval_loss":0.4987,"eval_accuracy":0.8125,"eval_f1":0.8})" << "\n";
  }
  std::ofstream(dir / "trainer_state.json") << R"({"args": {"model": "</script><script>alert(1)</script>"}})";
  const std::string page = tuneserve::train::render_report(dir.string());
  EXPECT_NE(page.find("Chart.js v4"), std::string::npos);
  EXPECT_EQ(page.find("<script src"), std::string::npos);      // nothing fetched from elsewhere
  EXPECT_EQ(page.find("<link"), std::string::npos);
  EXPECT_NE(page.find("0.8125"), std::string::npos);
  EXPECT_NE(page.find("0.5123"), std::string::npos);
  EXPECT_EQ(count(page, "</script>"), 2u);  // the two real script elements only
  EXPECT_NE(page.find("<\\/script>"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Report, ErrorsNameTheProblem) {
  const fs::path dir = fs::temp_directory_path() / ("tuneserve_report_bad_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  try {
    tuneserve::train::render_report(dir.string());
    ADD_FAILURE() << "no error without metrics.jsonl";
  } catch (const tuneserve::Error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl"), std::string::npos) << e.what();
  }
  if (!tuneserve::embedded_chartjs().empty()) {
    std::ofstream(dir / "metrics.jsonl") << "{\"step\":1,\"loss\":0.5}\nnot json\n";
    try {
      tuneserve::train::render_report(dir.string());
      ADD_FAILURE() << "no error for a bad line";
    } catch (const tuneserve::Error& e) {
      EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
    }
  }
  fs::remove_all(dir);
}

}  // namespace
