// libFuzzer target for the tokenizer.json loader (tokenizer/load.cpp, with the WordPiece, BPE and
// Unigram models): the input is written as a tokenizer.json in a directory of its own and loaded; a
// tokenizer that loads then encodes a text, a pair with truncation and a padded batch. Any exception
// other than tuneserve::Error is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

using namespace tuneserve;

namespace {

const std::string& path() {
  static const std::string p = [] {
    char dir[] = "/tmp/tuneserve_tokenizer_fuzz_XXXXXX";
    if (!::mkdtemp(dir)) std::abort();
    return std::string(dir) + "/tokenizer.json";
  }();
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  {
    std::ofstream out(path(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const Tokenizer tokenizer = Tokenizer::from_tokenizer_json(path());
    for (const Encoding& e : {tokenizer.encode("Hello, WORLD! héllo 你好 [SEP] don't"),
                              tokenizer.encode("a b c d e f g", "h i j k", EncodeOptions{true, Truncation::LongestFirst, Padding::MaxLength, 8, 0})}) {
      if (e.ids.size() != e.type_ids.size()) __builtin_trap();
      for (std::int32_t id : e.ids)
        if (id >= 0 && static_cast<std::size_t>(id) < tokenizer.vocab_size()) tokenizer.id_to_token(id);
    }
    EncodeOptions pad;
    pad.padding = Padding::Longest;
    tokenizer.encode_batch({"one", "two three four"}, {}, pad);
  } catch (const Error&) {
  }
  return 0;
}
