// References to local paths (see resolve.h).
#include "storage/resolve.h"

#include <filesystem>

#include "core/error.h"
#include "hub/repo_files.h"

namespace tuneserve::storage {
namespace {

namespace fs = std::filesystem;

enum class Kind { Model, Tokenizer };

const char* kind_name(Kind kind) { return kind == Kind::Model ? "model" : "tokenizer"; }

// A local path as it is; else a Hub id's snapshot folder (tokenizer files fetched when `tokenizer`
// is not Absent).
enum class Tokenizer { Absent, Optional, Required };
std::string resolve_local_or_hub(const std::string& ref, const ResolveOptions& options, Kind kind,
                                 Tokenizer tokenizer) {
  if (ref.empty()) fail("no {} given", kind_name(kind));
  if (fs::exists(ref)) return ref;
  if (!hub::is_repo_id(ref))
    fail("{}: no such {} directory, and not a Hugging Face Hub id (name or org/name)", ref, kind_name(kind));
  const hub::HubClient client(hub::HubSettings::from_env());
  std::string dir = kind == Kind::Model ? hub::fetch_model(client, ref, options.revision) : "";
  if (tokenizer != Tokenizer::Absent) {
    const std::string tok = hub::fetch_tokenizer(client, ref, options.revision, tokenizer == Tokenizer::Required);
    if (dir.empty()) dir = tok;
  }
  return dir;
}

}  // namespace

bool is_s3_uri(std::string_view ref) { return ref.starts_with("s3://"); }

std::string tuneserve_cache_dir() {
  if (std::string c = hub::env("TUNESERVE_CACHE"); !c.empty()) return c;
  if (std::string x = hub::env("XDG_CACHE_HOME"); !x.empty()) return x + "/tuneserve";
  const std::string home = hub::env("HOME");
  return (home.empty() ? std::string(".") : home) + "/.cache/tuneserve";
}

ModelPaths resolve_model(const std::string& model, const std::string& tokenizer, const ResolveOptions& options) {
  ModelPaths out;
  out.model = resolve_local_or_hub(model, options, Kind::Model, tokenizer.empty() ? Tokenizer::Optional : Tokenizer::Absent);
  out.tokenizer = tokenizer.empty() ? out.model : resolve_tokenizer(tokenizer, options);
  return out;
}

std::string resolve_tokenizer(const std::string& ref, const ResolveOptions& options) {
  return resolve_local_or_hub(ref, options, Kind::Tokenizer, Tokenizer::Required);
}

std::string resolve_data(const std::string& ref) { return ref; }

}  // namespace tuneserve::storage
