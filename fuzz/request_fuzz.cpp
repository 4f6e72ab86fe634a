// libFuzzer target for request decoding: HTTP header values (Content-Type, Accept) and bodies
// in every supported format, then the response encoders on what was decoded.
// Input layout: byte 0 picks the format, then "content-type\naccept\n" and the body.
// Any exception other than the documented HttpError / tuneserve::Error is a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "serve/request.h"

using namespace tuneserve;
using namespace tuneserve::serve;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const Format formats[] = {Format::json, Format::csv, Format::jsonlines, Format::text};
  const Format format = formats[data[0] % 4];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  auto line = [&] {
    const std::size_t nl = rest.find('\n');
    std::string_view out = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    return out;
  };
  const std::string_view content_type = line(), accept = line();
  try {
    content_format(content_type);
  } catch (const HttpError&) {
  }
  Format out = Format::json;
  try {
    out = accept_format(accept);
  } catch (const HttpError&) {
  }
  try {
    const ParsedRequest request = parse_request(format, rest, RequestLimits{64});
    LabelInfo labels;
    labels.id2label = {"NEGATIVE", "POSITIVE", "a,\"quoted\" label"};
    ModelInfo info;
    info.labels = labels;
    check_options(request.options, info);
    for (Shape shape : {Shape::pipeline, Shape::inference_api}) {
      PostprocessOptions options = request.options.postprocess;
      options.top_k = effective_top_k(request.options, shape);
      std::vector<std::vector<LabelScore>> results;
      for (std::size_t i = 0; i < request.inputs.inputs.size(); ++i) {
        const float logits[3] = {static_cast<float>(i), -1.5f, 0.25f};
        results.push_back(postprocess(logits, labels, options));
      }
      encode_response(request, results, shape, out);
    }
  } catch (const HttpError&) {
  } catch (const Error&) {
  }
  return 0;
}
