// The Hugging Face Hub cache, laid out exactly as huggingface_hub (Python) and @huggingface/hub
// (JavaScript) lay it out, so a cache that either filled is used as it is, and the other way round:
//
//   <cache>/models--<org>--<name>/
//     refs/<revision>                 the commit a branch or tag pointed to when last resolved (no newline)
//     blobs/<etag>                    file contents, named by the Hub's ETag: the sha256 of LFS files,
//                                     the git blob sha1 of the others
//     blobs/<etag>.incomplete         a download in progress (resumed from its size)
//     snapshots/<commit>/<file>       relative symlink to ../../blobs/<etag> (deeper files: more ../)
//     .no_exist/<commit>/<file>       empty: the file is known to be absent at that commit
//   <cache>/.locks/models--<org>--<name>/<etag>.lock
//                                     flock(2)'d while a blob downloads (Python's filelock takes the same)
//
// <cache> is HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace tuneserve::hub {

namespace fs = std::filesystem;

// getenv, with "" for unset (an empty value counts as unset, as huggingface_hub reads them).
std::string env(const char* name);

std::string default_cache_dir();
std::string hf_home();  // $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface

bool is_commit_hash(std::string_view s);  // 40 lowercase hex digits
// "name" or "org/name": letters, digits, '-', '_', '.'; no "--" or ".." and no leading/trailing '-' or '.'.
bool is_repo_id(std::string_view s);
// A file name inside a repo ("config.json", "sub/dir/file"): relative, no "..", ".", empty parts or
// backslashes; Error naming `what` otherwise (names come from index files and servers: hostile).
void check_repo_filename(std::string_view name, std::string_view what);

class RepoCache {
 public:
  RepoCache(const fs::path& cache_dir, const std::string& repo_id);  // model repos

  const fs::path& root() const { return root_; }
  fs::path blob(const std::string& etag) const { return root_ / "blobs" / etag; }
  fs::path snapshot_dir(const std::string& commit) const { return root_ / "snapshots" / commit; }
  fs::path snapshot(const std::string& commit, const std::string& file) const { return snapshot_dir(commit) / file; }
  fs::path no_exist(const std::string& commit, const std::string& file) const {
    return root_ / ".no_exist" / commit / file;
  }
  fs::path lock(const std::string& etag) const { return lock_dir_ / (etag + ".lock"); }

  // The commit `revision` stands for: itself when a commit hash, else refs/<revision>'s content.
  std::optional<std::string> commit_of(const std::string& revision) const;
  // Writes refs/<revision> (atomically) unless revision is the commit itself or already points there.
  void remember_ref(const std::string& revision, const std::string& commit) const;
  void mark_absent(const std::string& commit, const std::string& file) const;
  // snapshots/<commit>/<file> -> relative path to blobs/<etag>, replacing what was there.
  void link_snapshot(const std::string& commit, const std::string& file, const std::string& etag) const;

 private:
  fs::path root_, lock_dir_;
};

// An exclusive flock(2) on `path` (created with its folders), held for the object's lifetime.
class FileLock {
 public:
  explicit FileLock(const fs::path& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace tuneserve::hub
