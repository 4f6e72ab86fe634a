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

// Sets up glibc's malloc for a long-running server that loads and unloads models and scales its
// workers: blocks of kServerMmapThreshold or more (activation arenas, weights, large request bodies)
// are mapped on their own, so freeing them gives the memory back to the system. glibc's default
// raises that threshold to the size of every large block freed (up to 32 MiB); after that such
// blocks come from the heaps of whichever threads allocated them, and fragmentation there kept
// what a scaled-down worker or an unloaded model had used: bench/soak.sh saw a server's RSS grow
// by ~12 MB per load/scale cycle (346 MB -> 596 MB in 10 minutes) while the bytes malloc had in
// use stayed at ~115 MB. Without glibc: nothing.
inline constexpr std::size_t kServerMmapThreshold = std::size_t{1} << 20;
void tune_allocator_for_server();

// Hands the free memory malloc holds in every heap back to the system (glibc's malloc_trim): after
// a model is unloaded or workers retire, so that RSS follows what is in use. Without glibc: nothing.
void release_free_memory();

// "512 MiB", "1.5 GiB": for messages.
std::string format_bytes(std::size_t bytes);

}  // namespace tuneserve
