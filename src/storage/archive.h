// SageMaker's model.tar.gz, with libarchive: written at the end of training (the model
// directory's files at the archive root, as SageMaker packs /opt/ml/model), and unpacked for
// `serve --model` into a cache folder named by the archive's sha256.
//
// Unpacking treats the archive as hostile: absolute paths, ".." parts, links whose target leaves
// the folder, devices/FIFOs, more than 100,000 entries or more bytes than the limit
// (TUNESERVE_MAX_ARCHIVE_BYTES, default 64 GiB) are refused, naming the entry. It unpacks into a
// temporary folder renamed into place when complete, so an interrupted run leaves nothing used.
#pragma once

#include <cstdint>
#include <string>

namespace tuneserve::storage {

// Packs the regular files at the top of `dir` (not checkpoint-* folders, not model.tar.gz) into
// `archive_path` (.tar.gz), atomically.
void pack_model_dir(const std::string& dir, const std::string& archive_path);

// The folder holding the model: <cache>/models/<sha256 of the archive>/ (or its one subfolder,
// when the archive holds a folder rather than files at the root).
std::string unpack_model_archive(const std::string& archive_path, const std::string& cache_dir);

std::uint64_t max_archive_bytes();

bool is_archive_name(const std::string& path);  // *.tar.gz, *.tgz, *.tar

}  // namespace tuneserve::storage
