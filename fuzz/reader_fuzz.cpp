// libFuzzer target for the CSV / TSV / JSON Lines readers (data/reader.cpp): byte 0 picks the
// format (and whether the file has a header), the rest is the file, read to its end. Every row has
// one value per selector and valid UTF-8. Any exception other than tuneserve::Error is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "core/error.h"
#include "data/reader.h"

using namespace tuneserve;
using namespace tuneserve::data;

namespace {

const std::string& dir() {
  static const std::string d = [] {
    char path[] = "/tmp/tuneserve_reader_fuzz_XXXXXX";
    if (!::mkdtemp(path)) std::abort();
    return std::string(path);
  }();
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const char* extensions[] = {".csv", ".tsv", ".jsonl"};
  const int format = data[0] % 3;
  const bool header = (data[0] / 3) % 2 == 1;
  const std::string path = dir() + "/input" + extensions[format];
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data + 1), static_cast<std::streamsize>(size - 1));
  }
  try {
    TableOptions options;
    std::vector<std::string> selectors = {"text", "label"};
    if (format != 2) {
      options.header = header ? HeaderMode::Yes : HeaderMode::No;
      if (!header) options.columns = {"label", "text"};
    }
    TableReader reader(path, options, selectors);
    SelectedRow row;
    std::string reason;
    for (;;) {
      const TableReader::Status status = reader.next(row, reason);
      if (status == TableReader::Status::End) break;
      if (status == TableReader::Status::Row) {
        if (row.values.size() != selectors.size()) __builtin_trap();
        for (const auto& v : row.values)
          if (invalid_utf8_at(v) != std::string_view::npos) __builtin_trap();
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
