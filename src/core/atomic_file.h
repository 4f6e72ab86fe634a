// Files that readers see whole or not at all: content is written under a temporary sibling name
// and renamed over the destination (rename(2) is atomic within a file system).
#pragma once

#include <filesystem>
#include <string_view>

namespace tuneserve {

// A sibling of `path` that no other process or thread picks at the same time
// ("<path>.tmp<pid>-<counter>"): two writers of the same destination never share a temporary.
std::filesystem::path temp_sibling(const std::filesystem::path& path);

// Writes `content` to `path` (creating its folder) through temp_sibling and rename(2).
void write_file_atomically(const std::filesystem::path& path, std::string_view content);

}  // namespace tuneserve
