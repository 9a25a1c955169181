#include "util/memory.h"

#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

namespace sc {

// The first line of a cgroup file as a byte count; 0 for "max", absent or
// anything else (no limit known).
static uint64_t cgroup_limit(const char* path) {
  std::ifstream f(path);
  std::string line;
  if (!f || !std::getline(f, line)) return 0;
  uint64_t v = 0;
  return parse_byte_size(line, &v) ? v : 0;
}

uint64_t host_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  uint64_t ram = (pages > 0 && page > 0) ? uint64_t(pages) * uint64_t(page) : 0;
  // cgroup v2, then v1 (which reports "no limit" as a huge number: the min handles it).
  for (const char* p : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    const uint64_t lim = cgroup_limit(p);
    if (lim > 0 && (ram == 0 || lim < ram)) ram = lim;
  }
  return ram;
}

bool parse_byte_size(const std::string& text, uint64_t* bytes) {
  size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  const size_t digits = i;
  uint64_t v = 0;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
    const uint64_t d = uint64_t(text[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  if (i == digits) return false;
  int shift = 0;
  if (i < text.size()) {
    switch (std::toupper(static_cast<unsigned char>(text[i]))) {
      case 'K': shift = 10; ++i; break;
      case 'M': shift = 20; ++i; break;
      case 'G': shift = 30; ++i; break;
      case 'T': shift = 40; ++i; break;
      default: break;
    }
    if (shift && i < text.size() && text[i] == 'i') ++i;
    if (i < text.size() && std::toupper(static_cast<unsigned char>(text[i])) == 'B') ++i;
  }
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  if (i != text.size()) return false;
  if (shift && v > (UINT64_MAX >> shift)) return false;
  *bytes = v << shift;
  return true;
}

uint64_t memory_limit_from_env() {
  const char* s = std::getenv("STARCODER_MEMORY_LIMIT");
  if (!s || !*s) return 0;
  uint64_t v = 0;
  if (!parse_byte_size(s, &v) || v == 0)
    throw std::invalid_argument(std::string("STARCODER_MEMORY_LIMIT='") + s +
                                "' is not a size in bytes (examples: 8G, 512M, 1073741824)");
  return v;
}

std::string format_bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(n);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

}  // namespace sc
