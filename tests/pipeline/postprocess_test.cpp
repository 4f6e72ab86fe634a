// Postprocessing of the text-classification pipeline against hand-computed values: logits chosen
// so that softmax/sigmoid have closed forms (ln 3 -> 3/4), plus the output shapes transformers returns.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "pipeline/pipeline.h"

namespace tuneserve {
namespace {

LabelInfo labels(int n, std::string problem_type = "") {
  LabelInfo info;
  for (int i = 0; i < n; ++i) info.id2label.push_back("LABEL_" + std::to_string(i));
  info.problem_type = std::move(problem_type);
  return info;
}

const float kLn3 = static_cast<float>(std::log(3.0));

TEST(ScoreFunction, DefaultFollowsTransformersOrderOfChecks) {
  EXPECT_EQ(resolve_score_function(ScoreFunction::Default, labels(2)), ScoreFunction::Softmax);
  EXPECT_EQ(resolve_score_function(ScoreFunction::Default, labels(5)), ScoreFunction::Softmax);
  EXPECT_EQ(resolve_score_function(ScoreFunction::Default, labels(1)), ScoreFunction::Sigmoid);
  EXPECT_EQ(resolve_score_function(ScoreFunction::Default, labels(3, "multi_label_classification")),
            ScoreFunction::Sigmoid);
  EXPECT_EQ(resolve_score_function(ScoreFunction::Default, labels(1, "regression")), ScoreFunction::None);
  EXPECT_EQ(resolve_score_function(ScoreFunction::Default, labels(3, "regression")), ScoreFunction::None);
  // transformers tests "multi_label or num_labels == 1" before "single_label": one output is a sigmoid.
  EXPECT_EQ(resolve_score_function(ScoreFunction::Default, labels(1, "single_label_classification")),
            ScoreFunction::Sigmoid);
  // An explicit request always wins.
  EXPECT_EQ(resolve_score_function(ScoreFunction::None, labels(2)), ScoreFunction::None);
  EXPECT_EQ(resolve_score_function(ScoreFunction::Sigmoid, labels(2)), ScoreFunction::Sigmoid);
}

TEST(ScoreFunction, ClosedFormValues) {
  const std::vector<float> logits = {0.0f, kLn3};
  const auto softmax = apply_score_function(ScoreFunction::Softmax, logits);
  EXPECT_NEAR(softmax[0], 0.25, 1e-7);
  EXPECT_NEAR(softmax[1], 0.75, 1e-7);
  const auto sigmoid = apply_score_function(ScoreFunction::Sigmoid, std::vector<float>{0.0f, kLn3, -kLn3});
  EXPECT_NEAR(sigmoid[0], 0.5, 1e-7);
  EXPECT_NEAR(sigmoid[1], 0.75, 1e-7);
  EXPECT_NEAR(sigmoid[2], 0.25, 1e-7);
  const auto none = apply_score_function(ScoreFunction::None, std::vector<float>{-2.5f, 7.0f});
  EXPECT_EQ(none, (std::vector<float>{-2.5f, 7.0f}));
  // Shifting by the max keeps large logits finite: softmax(1000, 1000 + ln 3) = (1/4, 3/4).
  const auto big = apply_score_function(ScoreFunction::Softmax, std::vector<float>{1000.0f, 1000.0f + kLn3});
  EXPECT_NEAR(big[0], 0.25, 1e-4);
  EXPECT_NEAR(big[1], 0.75, 1e-4);
  // Three classes: logits ln 1, ln 2, ln 5 -> 1/8, 2/8, 5/8.
  const auto three = apply_score_function(
      ScoreFunction::Softmax,
      std::vector<float>{0.0f, static_cast<float>(std::log(2.0)), static_cast<float>(std::log(5.0))});
  EXPECT_NEAR(three[0], 0.125, 1e-7);
  EXPECT_NEAR(three[1], 0.25, 1e-7);
  EXPECT_NEAR(three[2], 0.625, 1e-7);
}

TEST(Postprocess, DefaultTopKIsTheBestLabelOnly) {
  const auto result = postprocess(std::vector<float>{kLn3, 0.0f}, labels(2), {});
  ASSERT_EQ(result.size(), 1u);
  EXPECT_EQ(result[0].label, "LABEL_0");
  EXPECT_NEAR(result[0].score, 0.75, 1e-7);
  // numpy argmax takes the first of equal maxima.
  const auto tie = postprocess(std::vector<float>{1.0f, 2.0f, 2.0f}, labels(3), {});
  EXPECT_EQ(tie[0].label, "LABEL_1");
}

TEST(Postprocess, TopKSortsDescendingAndCuts) {
  const std::vector<float> logits = {0.0f, static_cast<float>(std::log(5.0)), static_cast<float>(std::log(2.0))};
  PostprocessOptions all{ScoreFunction::Default, TopK::all()};
  const auto sorted = postprocess(logits, labels(3), all);
  ASSERT_EQ(sorted.size(), 3u);
  EXPECT_EQ(sorted[0].label, "LABEL_1");
  EXPECT_EQ(sorted[1].label, "LABEL_2");
  EXPECT_EQ(sorted[2].label, "LABEL_0");
  EXPECT_NEAR(sorted[0].score, 0.625, 1e-7);
  EXPECT_NEAR(sorted[2].score, 0.125, 1e-7);

  const auto two = postprocess(logits, labels(3), {ScoreFunction::Default, TopK::best(2)});
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[1].label, "LABEL_2");
  EXPECT_TRUE(postprocess(logits, labels(3), {ScoreFunction::Default, TopK::best(0)}).empty());
  EXPECT_EQ(postprocess(logits, labels(3), {ScoreFunction::Default, TopK::best(10)}).size(), 3u);

  // Equal scores keep label order (Python's sort is stable, also with reverse=True).
  const auto ties = postprocess(std::vector<float>{1.0f, 3.0f, 1.0f, 1.0f}, labels(4), all);
  EXPECT_EQ(ties[0].label, "LABEL_1");
  EXPECT_EQ(ties[1].label, "LABEL_0");
  EXPECT_EQ(ties[2].label, "LABEL_2");
  EXPECT_EQ(ties[3].label, "LABEL_3");

  // "none" returns raw logits, sorted.
  const auto raw = postprocess(std::vector<float>{-1.5f, 4.25f}, labels(2), {ScoreFunction::None, TopK::all()});
  EXPECT_EQ(raw[0].score, 4.25f);
  EXPECT_EQ(raw[1].score, -1.5f);
}

TEST(Postprocess, WrongLogitCountIsAnError) {
  EXPECT_THROW(postprocess(std::vector<float>{1.0f}, labels(2), {}), Error);
}

TEST(OutputShape, MatchesTransformersPerCallShape) {
  const std::vector<std::vector<LabelScore>> one = {{{"LABEL_1", 0.75f}}};
  const std::vector<std::vector<LabelScore>> two = {{{"LABEL_1", 0.75f}}, {{"LABEL_0", 0.5f}}};
  // classifier("text") -> [{"label", "score"}]
  EXPECT_EQ(python_json(call_json(one, CallShape::Text, TopK::unset())), R"([{"label": "LABEL_1", "score": 0.75}])");
  // classifier({"text": ...}) -> {"label", "score"}
  EXPECT_EQ(python_json(call_json(one, CallShape::Dict, TopK::unset())), R"({"label": "LABEL_1", "score": 0.75})");
  // classifier(["a", "b"]) -> [{...}, {...}]
  EXPECT_EQ(python_json(call_json(two, CallShape::List, TopK::unset())),
            R"([{"label": "LABEL_1", "score": 0.75}, {"label": "LABEL_0", "score": 0.5}])");
  // top_k given: a list per input, and a list of those for a list call.
  EXPECT_EQ(python_json(call_json(one, CallShape::Text, TopK::best(1))), R"([{"label": "LABEL_1", "score": 0.75}])");
  EXPECT_EQ(python_json(call_json(one, CallShape::Dict, TopK::all())), R"([{"label": "LABEL_1", "score": 0.75}])");
  EXPECT_EQ(python_json(call_json(two, CallShape::List, TopK::all())),
            R"([[{"label": "LABEL_1", "score": 0.75}], [{"label": "LABEL_0", "score": 0.5}]])");
}

TEST(PythonJson, FloatsPrintAsPythonRepr) {
  // Values and strings as CPython 3 prints repr(float(numpy.float32(x))).
  EXPECT_EQ(python_float_repr(static_cast<double>(0.1f)), "0.10000000149011612");
  EXPECT_EQ(python_float_repr(1.0), "1.0");
  EXPECT_EQ(python_float_repr(0.0), "0.0");
  EXPECT_EQ(python_float_repr(-3.0), "-3.0");
  EXPECT_EQ(python_float_repr(1e-05), "1e-05");
  EXPECT_EQ(python_float_repr(static_cast<double>(2.5e-7f)), "2.499999993688107e-07");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(123456.0), "123456.0");
  // A tie between two 17-digit candidates, where Grisu-style printers differ from repr().
  EXPECT_EQ(python_float_repr(static_cast<double>(0.62152862548828125)), "0.6215286254882812");
  EXPECT_EQ(python_json(nlohmann::json{std::nan("")}), "[NaN]");
}

TEST(PythonJson, StringsAreEnsureAscii) {
  EXPECT_EQ(python_json("n\xC3\xA9gatif"), R"("n\u00e9gatif")");
  EXPECT_EQ(python_json("\xF0\x9F\x98\x80"), R"("\ud83d\ude00")");
  EXPECT_EQ(python_json("a\"b\\c\nd\x01\x7F"), R"("a\"b\\c\nd\u0001\u007f")");
  EXPECT_EQ(python_json(nlohmann::json::parse(R"({"b": [1, true, null], "a": "x"})")),
            R"({"a": "x", "b": [1, true, null]})");
}

TEST(Inputs, ParsesEveryPipelineForm) {
  auto text = parse_inputs("hello");
  EXPECT_EQ(text.shape, CallShape::Text);
  ASSERT_EQ(text.inputs.size(), 1u);
  EXPECT_EQ(text.inputs[0].text, "hello");
  EXPECT_FALSE(text.inputs[0].text_pair);

  auto pair = parse_inputs(nlohmann::json::parse(R"({"text": "q", "text_pair": "a"})"));
  EXPECT_EQ(pair.shape, CallShape::Dict);
  EXPECT_EQ(pair.inputs[0].text, "q");
  EXPECT_EQ(pair.inputs[0].text_pair.value_or(""), "a");

  auto list = parse_inputs(nlohmann::json::parse(R"(["x", {"text": "y"}, {"text": "z", "text_pair": null}])"));
  EXPECT_EQ(list.shape, CallShape::List);
  ASSERT_EQ(list.inputs.size(), 3u);
  EXPECT_EQ(list.inputs[1].text, "y");
  EXPECT_FALSE(list.inputs[2].text_pair);
}

TEST(Inputs, ErrorsNameTheElement) {
  auto message = [](const char* json) {
    try {
      parse_inputs(nlohmann::json::parse(json));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(R"(["a", 3])").find("inputs[1]"), std::string::npos);
  EXPECT_NE(message(R"([["a", "b"]])").find("text_pair"), std::string::npos);
  EXPECT_NE(message(R"({"text_pair": "b"})").find("missing \"text\""), std::string::npos);
  EXPECT_NE(message(R"({"text": "a", "txt": "b"})").find("'txt'"), std::string::npos);
  EXPECT_NE(message(R"({"text": 5})").find("inputs.text"), std::string::npos);
}

TEST(Parameters, ParsesAndRejects) {
  auto options = parse_parameters(nlohmann::json::parse(
      R"({"top_k": null, "function_to_apply": "SIGMOID", "truncation": false, "max_length": 64})"));
  EXPECT_EQ(options.postprocess.top_k.kind, TopK::Kind::All);
  EXPECT_EQ(options.postprocess.function, ScoreFunction::Sigmoid);
  EXPECT_FALSE(options.tokenize.truncation);
  EXPECT_EQ(options.tokenize.max_length.value_or(0), 64);

  EXPECT_EQ(parse_parameters(nlohmann::json::parse(R"({"top_k": 2})")).postprocess.top_k.k, 2);
  EXPECT_EQ(parse_parameters(nlohmann::json()).postprocess.top_k.kind, TopK::Kind::Unset);
  EXPECT_THROW(parse_parameters(nlohmann::json::parse(R"({"top_k": -1})")), Error);
  EXPECT_THROW(parse_parameters(nlohmann::json::parse(R"({"top_k": 1.5})")), Error);
  EXPECT_THROW(parse_parameters(nlohmann::json::parse(R"({"function_to_apply": "relu"})")), Error);
  EXPECT_THROW(parse_parameters(nlohmann::json::parse(R"({"max_length": 0})")), Error);
  EXPECT_THROW(parse_parameters(nlohmann::json::parse(R"({"temperature": 1})")), Error);

  EXPECT_EQ(parse_top_k("all").kind, TopK::Kind::All);
  EXPECT_EQ(parse_top_k("3").k, 3);
  EXPECT_THROW(parse_top_k("3x"), Error);
  EXPECT_THROW(parse_top_k("-2"), Error);
}

}  // namespace
}  // namespace tuneserve
