// model.tar.gz packing and checked unpacking with libarchive (see archive.h).
#include "storage/archive.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/sha256.h"
#include "hub/cache.h"

namespace tuneserve::storage {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kMaxEntries = 100000;

using Archive = std::unique_ptr<archive, int (*)(archive*)>;

// "a/./b/../c" -> {"a", "c"}; false when a ".." would climb above the root, or the path is absolute.
bool normalized_inside(const std::string& path, std::vector<std::string>* parts) {
  if (path.empty() || path.front() == '/') return false;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t slash = std::min(path.find('/', start), path.size());
    const std::string part = path.substr(start, slash - start);
    if (part == "..") {
      if (parts->empty()) return false;
      parts->pop_back();
    } else if (!part.empty() && part != ".") {
      parts->push_back(part);
    }
    start = slash + 1;
  }
  return true;
}

}  // namespace

bool is_archive_name(const std::string& path) {
  return path.ends_with(".tar.gz") || path.ends_with(".tgz") || path.ends_with(".tar");
}

std::uint64_t max_archive_bytes() {
  const std::string v = hub::env("TUNESERVE_MAX_ARCHIVE_BYTES");
  if (v.empty()) return std::uint64_t{64} << 30;
  try {
    std::size_t used = 0;
    const unsigned long long n = std::stoull(v, &used);
    if (used == v.size() && n > 0) return n;
  } catch (const std::exception&) {
  }
  fail("TUNESERVE_MAX_ARCHIVE_BYTES={}: expected a number of bytes", v);
}

void pack_model_dir(const std::string& dir, const std::string& archive_path) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || name == "model.tar.gz" || name.ends_with(".tmp")) continue;
    files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  const std::string tmp = archive_path + ".tmp";
  {
    Archive a(archive_write_new(), archive_write_free);
    archive_write_add_filter_gzip(a.get());
    archive_write_set_format_pax_restricted(a.get());
    if (archive_write_open_filename(a.get(), tmp.c_str()) != ARCHIVE_OK)
      fail("{}: cannot write: {}", tmp, archive_error_string(a.get()));
    std::vector<char> buf(1 << 20);
    for (const fs::path& f : files) {
      std::unique_ptr<archive_entry, void (*)(archive_entry*)> entry(archive_entry_new(), archive_entry_free);
      archive_entry_set_pathname(entry.get(), f.filename().c_str());
      archive_entry_set_size(entry.get(), static_cast<la_int64_t>(fs::file_size(f)));
      archive_entry_set_filetype(entry.get(), AE_IFREG);
      archive_entry_set_perm(entry.get(), 0644);
      if (archive_write_header(a.get(), entry.get()) != ARCHIVE_OK)
        fail("{}: {}: {}", tmp, f.filename().string(), archive_error_string(a.get()));
      std::ifstream in(f, std::ios::binary);
      while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        const auto n = in.gcount();
        if (n > 0 && archive_write_data(a.get(), buf.data(), static_cast<std::size_t>(n)) != n)
          fail("{}: {}: {}", tmp, f.filename().string(), archive_error_string(a.get()));
      }
    }
    if (archive_write_close(a.get()) != ARCHIVE_OK) fail("{}: {}", tmp, archive_error_string(a.get()));
  }
  fs::rename(tmp, archive_path);
}

std::string unpack_model_archive(const std::string& archive_path, const std::string& cache_dir) {
  if (!fs::is_regular_file(archive_path)) fail("{}: no such archive", archive_path);
  const fs::path dest = fs::path(cache_dir) / "models" / sha256_file(archive_path);
  auto model_folder = [&]() -> std::string {
    if (fs::exists(dest / "config.json")) return dest.string();
    std::vector<fs::path> sub;
    for (const auto& e : fs::directory_iterator(dest))
      if (e.is_directory() && fs::exists(e.path() / "config.json")) sub.push_back(e.path());
    if (sub.size() == 1) return sub[0].string();
    fail("{}: no config.json at the archive's root (nor in a single folder inside it)", archive_path);
  };
  if (fs::is_directory(dest)) return model_folder();

  const fs::path tmp = temp_sibling(dest);
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const std::uint64_t limit = max_archive_bytes();
  try {
    Archive in(archive_read_new(), archive_read_free);
    archive_read_support_filter_all(in.get());
    archive_read_support_format_tar(in.get());
    archive_read_support_format_gnutar(in.get());
    if (archive_read_open_filename(in.get(), archive_path.c_str(), 1 << 16) != ARCHIVE_OK)
      fail("{}: refused: not a tar archive: {}", archive_path, archive_error_string(in.get()));
    Archive out(archive_write_disk_new(), archive_write_free);
    // libarchive's own guards as a second line behind the checks below (entries are written under
    // the absolute temporary folder, so its absolute-path guard cannot be one of them).
    archive_write_disk_set_options(out.get(), ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS);
    std::uint64_t total = 0;
    std::size_t count = 0;
    archive_entry* entry = nullptr;
    int rc;
    std::vector<char> buf(1 << 20);
    while ((rc = archive_read_next_header(in.get(), &entry)) == ARCHIVE_OK) {
      const char* raw_name = archive_entry_pathname(entry);
      const std::string name = raw_name ? raw_name : "";
      auto refuse = [&](const std::string& why) { fail("{}: refused: entry \"{}\": {}", archive_path, name, why); };
      if (++count > kMaxEntries) refuse(fmt::format("more than {} entries", kMaxEntries));
      std::vector<std::string> parts;
      if (!normalized_inside(name, &parts)) refuse("an absolute path or one leaving the folder");
      const auto type = archive_entry_filetype(entry);
      if (type == AE_IFLNK) {
        const char* t = archive_entry_symlink(entry);
        std::vector<std::string> target(parts.begin(), parts.end() - (parts.empty() ? 0 : 1));
        if (!t || !normalized_inside(std::string(t), &target)) refuse("a link that leaves the folder");
      } else if (archive_entry_hardlink(entry)) {
        std::vector<std::string> target;
        if (!normalized_inside(archive_entry_hardlink(entry), &target)) refuse("a link that leaves the folder");
        archive_entry_set_hardlink(entry, (tmp / archive_entry_hardlink(entry)).c_str());
      } else if (type != AE_IFREG && type != AE_IFDIR) {
        refuse("not a file, folder or link");
      }
      if (archive_entry_size_is_set(entry) && static_cast<std::uint64_t>(archive_entry_size(entry)) > limit)
        refuse(fmt::format("larger than the limit of {} bytes (TUNESERVE_MAX_ARCHIVE_BYTES)", limit));
      archive_entry_set_pathname(entry, (tmp / name).c_str());
      if (archive_write_header(out.get(), entry) != ARCHIVE_OK) refuse(archive_error_string(out.get()));
      la_ssize_t n;
      while ((n = archive_read_data(in.get(), buf.data(), buf.size())) > 0) {
        total += static_cast<std::uint64_t>(n);
        if (total > limit)
          fail("{}: refused: it unpacks to more than {} bytes (TUNESERVE_MAX_ARCHIVE_BYTES)", archive_path, limit);
        if (archive_write_data(out.get(), buf.data(), static_cast<std::size_t>(n)) != n)
          refuse(archive_error_string(out.get()));
      }
      if (n < 0) fail("{}: refused: corrupt archive at \"{}\": {}", archive_path, name, archive_error_string(in.get()));
      archive_write_finish_entry(out.get());
    }
    if (rc != ARCHIVE_EOF) fail("{}: refused: corrupt archive: {}", archive_path, archive_error_string(in.get()));
    if (count == 0) fail("{}: refused: the archive is empty", archive_path);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  std::error_code ec;
  fs::rename(tmp, dest, ec);
  if (ec) fs::remove_all(tmp, ec);  // another process unpacked the same archive first
  return model_folder();
}

}  // namespace tuneserve::storage
