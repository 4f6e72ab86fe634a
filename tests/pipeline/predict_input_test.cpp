// `tuneserve predict --input` on CSV, TSV, JSONL (and .gz) files and stdin: the same results as
// {"text", "text_pair"} JSONL rows of the same texts, --text / --text-pair naming the columns, file:line errors for bad
// rows, and progress on stderr (a final line when stderr is not a terminal; none with --quiet).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using tuneserve::testing::binary_path;
using tuneserve::testing::shared_path;

class PredictInput : public ::testing::Test {
 protected:
  void SetUp() override {
    TUNESERVE_REQUIRE_SHARED("models/distilbert-tiny-init/model.safetensors");
    dir = fs::temp_directory_path() / ("tuneserve_predict_input_" + std::to_string(::getpid()) + "_" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string predict() const {
    return binary_path() + " predict --model " + shared_path("models/distilbert-tiny-init") + " --tokenizer " +
           shared_path("tokenizers/bert-base-cased");
  }
  // Runs `command`, stdout and stderr apart.
  int run(const std::string& command, std::string& out, std::string& err) const {
    const fs::path o = dir / "stdout", e = dir / "stderr";
    const int status = std::system((command + " > " + o.string() + " 2> " + e.string()).c_str());
    std::ifstream so(o), se(e);
    std::stringstream a, b;
    a << so.rdbuf();
    b << se.rdbuf();
    out = a.str();
    err = b.str();
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::vector<nlohmann::json> lines_of(const std::string& out) const {
    std::vector<nlohmann::json> lines;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
    return lines;
  }
  fs::path dir;
};

TEST_F(PredictInput, CsvTsvGzJsonlAndStdinGiveTheJsonlRowsResults) {
  std::string out, err;
  // The reference: each text alone, as pipeline({"text": ..., "text_pair": ...}) via JSONL.
  std::ofstream(dir / "ref.jsonl") << R"({"text": "I love it, \"really\"", "text_pair": "A"})" << "\n"
                                   << R"({"text": "awful", "text_pair": "B"})" << "\n";
  ASSERT_EQ(run(predict() + " --input " + (dir / "ref.jsonl").string(), out, err), 0) << err;
  const auto want = lines_of(out);
  ASSERT_EQ(want.size(), 2u);
  ASSERT_TRUE(want[0].contains("score")) << out;

  std::ofstream(dir / "in.csv") << "id,review,title\n1,\"I love it, \"\"really\"\"\",A\n2,awful,B\n";
  std::ofstream(dir / "in.tsv") << "review\ttitle\nI love it, \"really\"\tA\nawful\tB\n";
  std::ofstream(dir / "in.jsonl") << R"({"review": "I love it, \"really\"", "title": "A", "id": 1})" << "\n\n"
                                  << R"({"review": "awful", "title": "B"})" << "\n";
  const std::string columns = " --text review --text-pair title";
  for (const char* file : {"in.csv", "in.tsv", "in.jsonl"}) {
    ASSERT_EQ(run(predict() + " --input " + (dir / file).string() + columns, out, err), 0) << file << ": " << err;
    EXPECT_EQ(lines_of(out), want) << file;
  }
  ASSERT_EQ(std::system(("gzip -k " + (dir / "in.csv").string()).c_str()), 0);
  ASSERT_EQ(run(predict() + " --input " + (dir / "in.csv.gz").string() + columns, out, err), 0) << err;
  EXPECT_EQ(lines_of(out), want) << "in.csv.gz";
  ASSERT_EQ(run("cat " + (dir / "in.tsv").string() + " | " + predict() + " --input - --input-format tsv" + columns,
                out, err), 0) << err;
  EXPECT_EQ(lines_of(out), want) << "stdin";
  ASSERT_EQ(run("cat " + (dir / "in.jsonl").string() + " | " + predict() + " --input -" + columns, out, err), 0) << err;
  EXPECT_EQ(lines_of(out), want) << "stdin, JSONL by default";
  std::ofstream(dir / "noheader.csv") << "1,\"I love it, \"\"really\"\"\",A\n2,awful,B\n";
  ASSERT_EQ(run(predict() + " --input " + (dir / "noheader.csv").string() + " --columns id,review,title" + columns, out,
                err), 0) << err;
  EXPECT_EQ(lines_of(out), want) << "--columns";

  // Stderr is a file here, not a terminal: one closing progress line, nothing on stdout but results.
  EXPECT_NE(err.find("predict: classified 2/2 inputs (100%)"), std::string::npos) << err;
  ASSERT_EQ(run(predict() + " --quiet --input " + (dir / "in.csv").string() + columns, out, err), 0) << err;
  EXPECT_EQ(err.find("classified"), std::string::npos) << err;
}

TEST_F(PredictInput, BadRowsNameTheFileAndLine) {
  std::string out, err;
  std::ofstream(dir / "open.csv") << "review\nfine\n\"never closed\n";
  EXPECT_NE(run(predict() + " --input " + (dir / "open.csv").string() + " --text review", out, err), 0);
  EXPECT_NE(err.find("open.csv: line 3: "), std::string::npos) << err;
  std::ofstream(dir / "short.tsv") << "review\ttitle\nfine\tA\nno title here\n";
  EXPECT_NE(run(predict() + " --input " + (dir / "short.tsv").string() + " --text review --text-pair title", out, err), 0);
  EXPECT_NE(err.find("short.tsv: line 3: "), std::string::npos) << err;
  std::ofstream(dir / "keys.jsonl") << R"({"review": "fine"})" << "\n" << R"({"body": "x"})" << "\n";
  EXPECT_NE(run("cat " + (dir / "keys.jsonl").string() + " | " + predict() + " --input - --text review", out, err), 0);
  EXPECT_NE(err.find("<stdin>: line 2: expected \"review\" (--text"), std::string::npos) << err;
  std::ofstream(dir / "json.jsonl") << R"({"text": "fine"})" << "\n" << "{not json\n";
  EXPECT_NE(run(predict() + " --input " + (dir / "json.jsonl").string(), out, err), 0);
  EXPECT_NE(err.find("json.jsonl: line 2"), std::string::npos) << err;
  std::ofstream(dir / "utf8.csv") << "review\nfine\nbad \xff byte\n";
  EXPECT_NE(run(predict() + " --input " + (dir / "utf8.csv").string() + " --text review", out, err), 0);
  EXPECT_NE(err.find("utf8.csv: line 3"), std::string::npos) << err;
  std::ofstream(dir / "cols.csv") << "title\nx\n";
  EXPECT_NE(run(predict() + " --input " + (dir / "cols.csv").string() + " --text review", out, err), 0);
  EXPECT_NE(err.find("'review' not found"), std::string::npos) << err;
  EXPECT_EQ(out, "") << "no partial results on stdout";
}

}  // namespace
