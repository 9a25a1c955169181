// How much memory this process may plan to use, so that a configuration
// that cannot fit (64 server slots of 8K context on a laptop) is refused
// with a clear message at start-up instead of being killed by the kernel
// mid-request: host allocations are overcommitted, so nothing fails earlier.
#pragma once
#include <cstdint>
#include <string>

namespace sc {

// Physical RAM, capped by the cgroup's memory limit when one is set (a
// container); 0 when unknown.
uint64_t host_memory_bytes();

// The limit from STARCODER_MEMORY_LIMIT ("8G", "512M", "1073741824"; K, M,
// G, T are powers of 1024), or 0 when it is unset. Throws
// std::invalid_argument naming the variable for a value that is not a size.
uint64_t memory_limit_from_env();

// Parses "<number>[K|M|G|T][B|iB]" as bytes; false when it is not such a size.
bool parse_byte_size(const std::string& text, uint64_t* bytes);

// "1.5 GiB", "300 MiB": for messages.
std::string format_bytes(uint64_t n);

}  // namespace sc
