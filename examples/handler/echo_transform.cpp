// Example handler plugin with transform_fn only: the whole request in, the whole response out,
// the model not asked. Answers {"echo": <body>, "content_type": ..., "accept": ...}; a body of "fail"
// is refused with 422, to show how a hook reports an error.
#include <cstdlib>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include <tuneserve/tuneserve_handler.h>

namespace {
char* copy(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}
}  // namespace

extern "C" {

int tuneserve_handler_abi(void) { return TUNESERVE_HANDLER_ABI; }

int tuneserve_transform_fn(void*, const tuneserve_model*, const char* body, size_t size, const char* content_type,
                           const char* accept, char** out_body, size_t* out_size,
                           char** out_content_type, char** error) {
  const std::string text(body, size);
  if (text == "fail") {
    *error = copy("echo_transform: asked to fail");
    return 422;
  }
  const std::string out = nlohmann::json{{"echo", text}, {"content_type", content_type}, {"accept", accept}}
                              .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  *out_body = copy(out);
  *out_size = out.size();
  *out_content_type = copy("application/json");
  return 0;
}

}  // extern "C"
