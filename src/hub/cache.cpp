// Hugging Face Hub cache layout (see cache.h).
#include "hub/cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"

namespace tuneserve::hub {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string hf_home() {
  if (std::string h = env("HF_HOME"); !h.empty()) return h;
  if (std::string x = env("XDG_CACHE_HOME"); !x.empty()) return x + "/huggingface";
  const std::string home = env("HOME");
  return (home.empty() ? std::string(".") : home) + "/.cache/huggingface";
}

std::string default_cache_dir() {
  if (std::string c = env("HF_HUB_CACHE"); !c.empty()) return c;
  if (std::string c = env("HUGGINGFACE_HUB_CACHE"); !c.empty()) return c;
  return hf_home() + "/hub";
}

bool is_commit_hash(std::string_view s) {
  if (s.size() != 40) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c)) && (c < 'a' || c > 'f')) return false;
  return true;
}

namespace {

bool is_name_part(std::string_view part) {
  if (part.empty() || part.size() > 96) return false;
  for (char c : part)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  if (part.find("--") != std::string_view::npos || part.find("..") != std::string_view::npos) return false;
  return part.front() != '-' && part.front() != '.' && part.back() != '-' && part.back() != '.';
}

}  // namespace

bool is_repo_id(std::string_view s) {
  const std::size_t slash = s.find('/');
  if (slash == std::string_view::npos) return is_name_part(s);
  return is_name_part(s.substr(0, slash)) && is_name_part(s.substr(slash + 1));
}

void check_repo_filename(std::string_view name, std::string_view what) {
  auto bad = [&](const char* why) { fail("{}: file name \"{}\" {}", what, name, why); };
  if (name.empty()) bad("is empty");
  if (name.front() == '/') bad("is absolute");
  if (name.find('\\') != std::string_view::npos || name.find('\0') != std::string_view::npos)
    bad("holds a backslash or NUL");
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = name.find('/', start);
    const std::string_view part = name.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (part.empty() || part == "." || part == "..") bad("has an empty, '.' or '..' part");
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
}

RepoCache::RepoCache(const fs::path& cache_dir, const std::string& repo_id) {
  std::string folder = "models--" + repo_id;
  for (std::size_t at = 0; (at = folder.find('/', at)) != std::string::npos;) folder.replace(at, 1, "--");
  root_ = cache_dir / folder;
  lock_dir_ = cache_dir / ".locks" / folder;
}

std::optional<std::string> RepoCache::commit_of(const std::string& revision) const {
  if (is_commit_hash(revision)) return revision;
  std::ifstream in(root_ / "refs" / revision);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  std::string commit = ss.str();
  while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) commit.pop_back();
  if (!is_commit_hash(commit)) return std::nullopt;  // damaged ref: resolve again
  return commit;
}

void RepoCache::remember_ref(const std::string& revision, const std::string& commit) const {
  if (revision == commit) return;
  if (commit_of(revision) == commit) return;
  write_file_atomically(root_ / "refs" / revision, commit);
}

void RepoCache::mark_absent(const std::string& commit, const std::string& file) const {
  const fs::path p = no_exist(commit, file);
  fs::create_directories(p.parent_path());
  std::ofstream touch(p, std::ios::app);
}

void RepoCache::link_snapshot(const std::string& commit, const std::string& file, const std::string& etag) const {
  const fs::path pointer = snapshot(commit, file);
  fs::create_directories(pointer.parent_path());
  const fs::path target = fs::relative(blob(etag), pointer.parent_path());
  // Created under a temporary name and renamed over the old one: readers see the old or the new link.
  const fs::path tmp = temp_sibling(pointer);
  fs::create_symlink(target, tmp);
  std::error_code ec;
  fs::rename(tmp, pointer, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    fail("cannot link {}: {}", pointer.string(), ec.message());
  }
}

FileLock::FileLock(const fs::path& path) {
  fs::create_directories(path.parent_path());
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot open lock file {}: {}", path.string(), std::strerror(errno));
  while (::flock(fd_, LOCK_EX) != 0) {
    if (errno != EINTR) {
      ::close(fd_);
      fail("cannot lock {}: {}", path.string(), std::strerror(errno));
    }
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace tuneserve::hub
