// How much memory this process may still take, to refuse work that would not fit (a model too
// large to load, more forward passes than activations fit for) with a clear error instead of
// being killed by the kernel or a container's OOM killer.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace tuneserve {

// Bytes that can still be allocated: the kernel's MemAvailable, or less when the process's cgroup
// (v2 or v1: a container) has a nearer limit; its reclaimable page cache counts as free.
// nullopt when neither can be read.
std::optional<std::size_t> available_memory();

// "512 MiB", "1.5 GiB": for messages.
std::string format_bytes(std::size_t bytes);

}  // namespace tuneserve
