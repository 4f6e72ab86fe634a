// Files of Hugging Face Hub model repositories, downloaded into and read from the shared cache
// (cache.h) with huggingface_hub's semantics:
//
//   HEAD {endpoint}/{repo}/resolve/{revision}/{file}   (relative redirects followed: renamed repos)
//     X-Repo-Commit            the commit the revision points to -> refs/<revision>, snapshots/<commit>
//     X-Linked-Etag | ETag     the blob's name (X-Linked-Etag, the sha256, for LFS files)
//     X-Linked-Size | Content-Length, Location (an absolute redirect: where the bytes are, e.g. a CDN)
//   GET the bytes into blobs/<etag>.incomplete under .locks/.../<etag>.lock, resuming a partial file,
//   check the size (and the sha256 of LFS files), rename to blobs/<etag>, link the snapshot.
//   404 with X-Error-Code EntryNotFound -> .no_exist/<commit>/<file>.
//
// Environment: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (else the token file at
// HF_TOKEN_PATH or $HF_HOME/token, as `hf auth login` writes it), HF_HUB_OFFLINE=1 (cache only),
// HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT (seconds, default 10), HF_HUB_DISABLE_PROGRESS_BARS.
// A revision given as a commit hash whose file is cached is used without any request; when the Hub
// cannot be reached, the cached file of the revision is used with a warning, as huggingface_hub does.
#pragma once

#include <optional>
#include <string>

#include "hub/cache.h"
#include "net/http.h"

namespace tuneserve::hub {

struct HubSettings {
  std::string endpoint = "https://huggingface.co";  // no trailing '/'
  std::string cache_dir;
  std::string token;            // "" = anonymous
  std::string token_source;     // "HF_TOKEN" or the token file's path (named in 401 errors)
  bool offline = false;
  long etag_timeout_s = 10;
  long download_timeout_s = 10;
  bool progress = true;
  net::RetryPolicy retry;

  static HubSettings from_env();
};

class HubClient {
 public:
  explicit HubClient(HubSettings settings);
  const HubSettings& settings() const { return settings_; }

  // The snapshot path of `file` in `repo` at `revision` (branch, tag or commit), downloaded when
  // needed. A file the repo does not have: std::nullopt when !required, else an Error naming repo,
  // revision and file. Errors say what to do for 401 (HF_TOKEN), offline misses (HF_HUB_OFFLINE and
  // the cache path), unknown repos and revisions.
  std::optional<std::string> file(const std::string& repo, const std::string& file, const std::string& revision,
                                  bool required) const;

 private:
  HubSettings settings_;
};

}  // namespace tuneserve::hub
