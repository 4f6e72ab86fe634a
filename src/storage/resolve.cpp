// References to local paths (see resolve.h).
#include "storage/resolve.h"

#include <filesystem>

#include <fstream>

#include "aws/s3.h"
#include "core/error.h"
#include "hub/repo_files.h"
#include "storage/archive.h"

namespace tuneserve::storage {
namespace {

namespace fs = std::filesystem;

enum class Kind { Model, Tokenizer };

const char* kind_name(Kind kind) { return kind == Kind::Model ? "model" : "tokenizer"; }

// A local path as it is; else a Hub id's snapshot folder (tokenizer files fetched when `tokenizer`
// is not Absent).
enum class Tokenizer { Absent, Optional, Required };
// s3://bucket/key into <cache>/s3/bucket/key: one object, or the objects under key/ as a folder.
// Each object is fetched again only when its ETag differs from the one recorded beside the copy.
std::string fetch_s3(const std::string& ref) {
  const aws::S3Uri uri = aws::S3Uri::parse(ref);
  const aws::S3Client s3 = aws::S3Client::from_env();
  const fs::path root = fs::path(tuneserve_cache_dir()) / "s3" / uri.bucket;
  auto fetch = [&](const aws::S3Object& o) {
    hub::check_repo_filename(o.key, ref);  // keys become paths: no "..", no absolute
    const fs::path local = root / o.key;
    const std::string etag_file = local.string() + ".etag";
    std::string cached;
    std::getline(std::ifstream(etag_file), cached);
    if (!fs::exists(local) || cached != o.etag || o.etag.empty()) {
      s3.download({uri.bucket, o.key}, local.string());
      std::ofstream(etag_file) << o.etag;
    }
    return local.string();
  };
  if (!uri.key.empty() && uri.key.back() != '/')
    if (const auto object = s3.head(uri)) return fetch(*object);
  const aws::S3Uri folder{uri.bucket, uri.key.empty() || uri.key.back() == '/' ? uri.key : uri.key + "/"};
  const std::vector<aws::S3Object> objects = s3.list(folder);
  if (objects.empty())
    fail("{}: 404 NoSuchKey: no object and no folder there (bucket {}, key {})", ref, uri.bucket, uri.key);
  for (const auto& o : objects)
    if (!o.key.ends_with("/")) fetch(o);
  return (root / folder.key).string();
}

std::string resolve_local_or_hub(const std::string& ref, const ResolveOptions& options, Kind kind,
                                 Tokenizer tokenizer) {
  if (ref.empty()) fail("no {} given", kind_name(kind));
  if (is_s3_uri(ref) || (fs::is_regular_file(ref) && is_archive_name(ref))) {
    const std::string local = is_s3_uri(ref) ? fetch_s3(ref) : ref;
    return is_archive_name(local) ? unpack_model_archive(local, tuneserve_cache_dir()) : local;
  }
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

std::string resolve_data(const std::string& ref) { return is_s3_uri(ref) ? fetch_s3(ref) : ref; }

OutputDir prepare_output_dir(const std::string& ref) {
  if (!is_s3_uri(ref)) return {ref, ""};
  const aws::S3Uri uri = aws::S3Uri::parse(ref);
  std::string key = uri.key;
  while (!key.empty() && key.back() == '/') key.pop_back();
  if (!key.empty()) hub::check_repo_filename(key, ref);
  aws::AwsSettings::from_env();  // no credentials: say so now, not after training
  return {(fs::path(tuneserve_cache_dir()) / "s3-output" / uri.bucket / key).string(),
          "s3://" + uri.bucket + "/" + (key.empty() ? "" : key + "/")};
}

std::string finish_output_dir(const OutputDir& out) {
  const std::string archive = (fs::path(out.local) / "model.tar.gz").string();
  pack_model_dir(out.local, archive);
  if (out.remote.empty()) return archive;
  const aws::S3Client s3 = aws::S3Client::from_env();
  const aws::S3Uri base = aws::S3Uri::parse(out.remote);
  for (const char* name : {"train_results.json", "eval_results.json", "metrics.jsonl"})
    if (fs::exists(fs::path(out.local) / name)) s3.upload((fs::path(out.local) / name).string(), {base.bucket, base.key + name});
  s3.upload(archive, {base.bucket, base.key + "model.tar.gz"});
  return out.remote + "model.tar.gz";
}

}  // namespace tuneserve::storage
