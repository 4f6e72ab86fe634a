// Pre-tokenizers of Hugging Face `tokenizers`: split normalized text into words (and, for
// ByteLevel / Metaspace, rewrite them) before the model sees them. Each word keeps, per char, the
// original index it is aligned to.
//
// Supported: BertPreTokenizer, ByteLevel (GPT-2's split regex, add_prefix_space), Metaspace
// (replacement, prepend_scheme / add_prefix_space, split), WhitespaceSplit, Whitespace, Sequence.
//
// Legend: n code points of the text being split.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

namespace tuneserve::tok {

// A non-owning reference to a callable (the per-word callback of the encode path; no allocation).
template <typename Signature>
class FunctionRef;
template <typename R, typename... Args>
class FunctionRef<R(Args...)> {
 public:
  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FunctionRef>>>
  FunctionRef(F&& f)  // NOLINT: implicit like std::function
      : object_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* o, Args... args) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<Args>(args)...);
        }) {}
  R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

 private:
  void* object_;
  R (*call_)(void*, Args...);
};

// One word: chars[0, n) and the original index of each.
using WordFn = FunctionRef<void(const char32_t* chars, const std::int32_t* orig, std::size_t n)>;

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Calls word() for each word of chars[0, n), in order.
  virtual void split(const char32_t* chars, const std::int32_t* orig, std::size_t n, WordFn word) const = 0;
};

std::unique_ptr<PreTokenizer> make_bert_pre_tokenizer();
std::unique_ptr<PreTokenizer> make_byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex = true);

// tokenizer.json's "pre_tokenizer" object (not null). Throws Error naming `where` and an
// unsupported type.
std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const nlohmann::json& j, const std::string& where);

// ByteLevel's byte -> char map (GPT-2's bytes_to_unicode): printable bytes map to themselves,
// the others to U+0100 onwards.
char32_t byte_level_char(unsigned char byte);

}  // namespace tuneserve::tok
