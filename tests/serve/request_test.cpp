// Request decoding (JSON, CSV, JSON lines, text) and response shapes, against the
// text-classification pipeline's documented behaviour and hand-computed scores.
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "serve/request.h"

namespace tuneserve::serve {
namespace {

using nlohmann::json;

ParsedRequest parse(std::string_view body, Format f = Format::json, std::size_t max_inputs = 8) {
  return parse_request(f, body, RequestLimits{max_inputs});
}

// Expects an HttpError with this status and error_type; returns its message.
std::string error_of(std::string_view body, int status, const std::string& type,
                     Format f = Format::json) {
  try {
    parse(body, f);
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status, status) << e.what();
    EXPECT_EQ(e.type, type) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error for " << body;
  return "";
}

TEST(Request, JsonForms) {
  auto r = parse(R"({"inputs": "I love it"})");
  ASSERT_EQ(r.inputs.inputs.size(), 1u);
  EXPECT_EQ(r.inputs.shape, CallShape::Text);
  EXPECT_EQ(r.inputs.inputs[0].text, "I love it");
  EXPECT_EQ(r.options.postprocess.top_k.kind, TopK::Kind::Unset);
  EXPECT_TRUE(r.options.tokenize.truncation);

  r = parse(R"({"inputs": ["a", {"text": "b", "text_pair": "c"}], "parameters": {"top_k": null,
              "function_to_apply": "Sigmoid", "truncation": false, "max_length": 16}})");
  ASSERT_EQ(r.inputs.inputs.size(), 2u);
  EXPECT_EQ(r.inputs.shape, CallShape::List);
  EXPECT_EQ(*r.inputs.inputs[1].text_pair, "c");
  EXPECT_EQ(r.options.postprocess.top_k.kind, TopK::Kind::All);
  EXPECT_EQ(r.options.postprocess.function, ScoreFunction::Sigmoid);
  EXPECT_FALSE(r.options.tokenize.truncation);
  EXPECT_EQ(*r.options.tokenize.max_length, 16);

  r = parse(R"({"inputs": {"text": "q", "text_pair": "p"}, "parameters": {"top_k": 2}, "options": {"wait_for_model": true}})");
  EXPECT_EQ(r.inputs.shape, CallShape::Dict);
  EXPECT_EQ(r.options.postprocess.top_k.k, 2);
}

TEST(Request, JsonErrorsNameTheProblem) {
  EXPECT_NE(error_of(R"({"inputs": "x")", 400, "validation").find("invalid JSON"), std::string::npos);
  EXPECT_NE(error_of(R"(["x"])", 400, "validation").find("JSON object"), std::string::npos);
  EXPECT_NE(error_of(R"({"text": "x"})", 400, "validation").find("unknown key \"text\""), std::string::npos);
  EXPECT_NE(error_of(R"({"inputs": 3})", 400, "validation").find("inputs"), std::string::npos);
  EXPECT_NE(error_of(R"({"inputs": ["a", 3]})", 400, "validation").find("inputs[1]"), std::string::npos);
  error_of(R"({"inputs": []})", 400, "empty");
  error_of(R"({"inputs": ""})", 400, "empty");
  // A 413 names the setting and the variable that raise the limit.
  EXPECT_NE(error_of(R"({"inputs": ["a","a","a","a","a","a","a","a","a"]})", 413, "too_many_inputs")
                .find("--max-client-batch-size or MAX_CLIENT_BATCH_SIZE"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"inputs": "x", "parameters": {"temperature": 1}})", 400, "validation")
                .find("temperature"),
            std::string::npos);
  error_of(R"({"inputs": "x", "parameters": {"top_k": -1}})", 400, "validation");
  error_of(R"({"inputs": "x", "parameters": {"top_k": "many"}})", 400, "validation");
  error_of(R"({"inputs": "x", "parameters": {"function_to_apply": "relu"}})", 400, "validation");
  error_of(R"({"inputs": "x", "parameters": {"truncation": 1}})", 400, "validation");
  error_of(R"({"inputs": "x", "parameters": {"max_length": -4}})", 400, "validation");
  error_of(R"({"inputs": "x", "parameters": []})", 400, "validation");
  error_of(R"({"inputs": {"text_pair": "x"}})", 400, "validation");
  // nlohmann reports a number it cannot hold as out_of_range, not parse_error (found by the fuzzer).
  error_of(R"({"inputs": "x", "parameters": {"top_k": 1e999}})", 400, "validation");
  error_of("\"a\"\n49999e999\n", 400, "validation", Format::jsonlines);
  // Invalid UTF-8 inside a JSON string (a lone continuation byte).
  error_of(std::string("{\"inputs\": \"a\x80z\"}"), 400, "validation");
}

TEST(Request, NestingAndSizeAreBoundedAndErrorsQuoteLittle) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_NE(error_of(R"({"inputs": "x", "parameters": {"truncation": )" + deep + "}}", 400, "validation")
                .find("body: JSON nested deeper than 64 levels"),
            std::string::npos);
  EXPECT_NE(error_of("\"a\"\n" + deep + "\n", 400, "validation", Format::jsonlines).find("line 2"), std::string::npos);
  // A long value that is wrong is quoted in part only.
  const std::string long_value(100000, 'x');
  EXPECT_LT(error_of(R"({"inputs": "x", "parameters": {"truncation": ")" + long_value + "\"}}", 400, "validation").size(), 600u);
  EXPECT_LT(error_of(R"({")" + long_value + R"(": 1})", 400, "validation").size(), 600u);
  EXPECT_LT(error_of(R"({"inputs": "x", "parameters": {"function_to_apply": ")" + long_value + "\"}}", 400, "validation").size(), 600u);
  EXPECT_LT(error_of(R"({"inputs": tru)" + long_value + "}", 400, "validation").size(), 600u);
  RequestLimits small{8, 64};
  try {
    parse_request(Format::json, R"({"inputs": "a longer text than sixty-four bytes, which is the limit set here"})", small);
    ADD_FAILURE() << "no error for a body over max_bytes";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_NE(std::string(e.what()).find("over the limit"), std::string::npos) << e.what();
  }
}

TEST(Request, CsvJsonLinesText) {
  auto r = parse("inputs\n\"I love it, really\"\r\nterrible\n", Format::csv);
  ASSERT_EQ(r.inputs.inputs.size(), 2u);
  EXPECT_EQ(r.inputs.inputs[0].text, "I love it, really");
  EXPECT_EQ(r.inputs.inputs[1].text, "terrible");
  r = parse("id,inputs,text_pair\n1,\"say \"\"hi\"\"\",b\n", Format::csv);
  ASSERT_EQ(r.inputs.inputs.size(), 1u);
  EXPECT_EQ(r.inputs.shape, CallShape::List);
  EXPECT_EQ(r.inputs.inputs[0].text, "say \"hi\"");
  EXPECT_EQ(*r.inputs.inputs[0].text_pair, "b");
  error_of("text\nabc\n", 400, "validation", Format::csv);
  error_of("inputs\n\"open\n", 400, "validation", Format::csv);
  error_of("inputs\n", 400, "empty", Format::csv);
  error_of("inputs,x\na\n", 400, "validation", Format::csv);

  r = parse("{\"inputs\": \"one\"}\n\n\"two\"\n{\"text\": \"a\", \"text_pair\": \"b\"}\n", Format::jsonlines);
  ASSERT_EQ(r.inputs.inputs.size(), 3u);
  EXPECT_EQ(r.inputs.inputs[1].text, "two");
  EXPECT_EQ(r.inputs.shape, CallShape::List);
  EXPECT_NE(error_of("\"ok\"\n{bad\n", 400, "validation", Format::jsonlines).find("line 2"),
            std::string::npos);

  r = parse("just text", Format::text);
  EXPECT_EQ(r.inputs.shape, CallShape::Text);
  EXPECT_EQ(r.inputs.inputs[0].text, "just text");
  error_of("  \n", 400, "empty", Format::text);
  error_of(std::string("bad \xC0\xAF utf8"), 400, "validation", Format::text);  // overlong '/'
}

TEST(Request, ContentNegotiation) {
  EXPECT_EQ(content_format("application/json; charset=utf-8"), Format::json);
  EXPECT_EQ(content_format(""), Format::json);
  EXPECT_EQ(content_format("Text/CSV"), Format::csv);
  EXPECT_EQ(content_format("application/jsonlines"), Format::jsonlines);
  EXPECT_EQ(content_format("text/plain"), Format::text);
  try {
    content_format("application/x-www-form-urlencoded");
    ADD_FAILURE();
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status, 415);
    EXPECT_NE(std::string(e.what()).find("text/csv"), std::string::npos);  // lists what works
  }
  EXPECT_EQ(accept_format(""), Format::json);
  EXPECT_EQ(accept_format("*/*"), Format::json);
  EXPECT_EQ(accept_format("text/html, text/csv;q=0.9"), Format::csv);
  EXPECT_EQ(accept_format("application/jsonlines"), Format::jsonlines);
  EXPECT_EQ(accept_format("application/json;q=0, text/csv"), Format::csv);
  // SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT: what an absent Accept or */* gets; a named type still wins.
  EXPECT_EQ(accept_format("", Format::jsonlines), Format::jsonlines);
  EXPECT_EQ(accept_format("*/*", Format::csv), Format::csv);
  EXPECT_EQ(accept_format("application/*", Format::jsonlines), Format::jsonlines);
  EXPECT_EQ(accept_format("application/*", Format::csv), Format::json);
  EXPECT_EQ(accept_format("application/json", Format::csv), Format::json);
  try {
    accept_format("image/png");
    ADD_FAILURE();
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status, 406);
  }
}

TEST(Request, Utf8Validation) {
  EXPECT_TRUE(valid_utf8("plain"));
  EXPECT_TRUE(valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  EXPECT_FALSE(valid_utf8("\xC3"));              // truncated
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));      // surrogate U+D800
  EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(valid_utf8("\xE0\x80\xAF"));      // overlong
}

TEST(Encode, ShapesPerClient) {
  LabelInfo labels;
  labels.id2label = {"NEGATIVE", "POSITIVE"};
  const std::vector<float> a = {0.f, 2.f}, b = {1.f, -1.f};
  auto run = [&](std::string_view body, Shape shape, Format f = Format::json) {
    ParsedRequest r = parse(body);
    PostprocessOptions options = r.options.postprocess;
    options.top_k = effective_top_k(r.options, shape);
    std::vector<std::vector<LabelScore>> results;
    for (std::size_t i = 0; i < r.inputs.inputs.size(); ++i)
      results.push_back(postprocess(i == 0 ? a : b, labels, options));
    return encode_response(r, results, shape, f);
  };
  // SageMaker / pipeline: a single string gives the flat list [{label, score}].
  json j = json::parse(run(R"({"inputs": "x"})", Shape::pipeline));
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["label"], "POSITIVE");
  EXPECT_NEAR(j[0]["score"].get<double>(), 1 / (1 + std::exp(-2.0)), 1e-6);  // softmax of (0, 2)
  // A list: one dict per input.
  j = json::parse(run(R"({"inputs": ["x", "y"]})", Shape::pipeline));
  ASSERT_EQ(j.size(), 2u);
  EXPECT_TRUE(j[0].is_object());
  EXPECT_EQ(j[1]["label"], "NEGATIVE");
  // top_k given: a single string gives its own list, a list gives a list of lists.
  j = json::parse(run(R"({"inputs": "x", "parameters": {"top_k": 2}})", Shape::pipeline));
  ASSERT_EQ(j.size(), 2u);
  EXPECT_TRUE(j[0].is_object());
  j = json::parse(run(R"({"inputs": ["x", "y"], "parameters": {"top_k": 1}})", Shape::pipeline));
  ASSERT_EQ(j.size(), 2u);
  ASSERT_TRUE(j[0].is_array());
  // Hugging Face Inference API (@huggingface/inference): a list per input, every label.
  j = json::parse(run(R"({"inputs": "x"})", Shape::inference_api));
  ASSERT_EQ(j.size(), 1u);
  ASSERT_TRUE(j[0].is_array());
  ASSERT_EQ(j[0].size(), 2u);
  EXPECT_EQ(j[0][0]["label"], "POSITIVE");
  EXPECT_GT(j[0][0]["score"].get<double>(), j[0][1]["score"].get<double>());
  j = json::parse(run(R"({"inputs": {"text": "x", "text_pair": "y"}})", Shape::inference_api));
  ASSERT_TRUE(j[0].is_array());

  EXPECT_EQ(run(R"({"inputs": ["x", "y"]})", Shape::pipeline, Format::csv),
            "input,label,score\n0,POSITIVE," + python_float_repr(1 / (1 + std::exp(-2.0f))) +
                "\n1,NEGATIVE," + python_float_repr(1 / (1 + std::exp(-2.0f))) + "\n");
  std::string lines = run(R"({"inputs": ["x", "y"]})", Shape::pipeline, Format::jsonlines);
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 2);
  EXPECT_EQ(json::parse(lines.substr(0, lines.find('\n')))["label"], "POSITIVE");
}

TEST(Request, ErrorBodyIsJsonEvenForBadBytes) {
  json j = json::parse(error_body("bad \xFF byte", "validation"));
  EXPECT_EQ(j["error_type"], "validation");
}

}  // namespace
}  // namespace tuneserve::serve
