#include "text/unicode.h"

#include <array>
#include <map>
#include <string>
#include <vector>

namespace sc::unicode {
namespace {

struct CodepointRange {
  uint32_t first;
  uint32_t last;
  uint8_t flags;
};

#include "text/unicode_tables.inc"

constexpr uint32_t kMaxCodepoint = 0x10FFFF;
constexpr uint32_t kBlockBits = 8;
constexpr uint32_t kBlockSize = 1u << kBlockBits;
constexpr uint32_t kNumBlocks = (kMaxCodepoint + 1) >> kBlockBits;

// Two-level lookup built once from the ranges: block_index[cp >> 8] names a
// 256-entry block of flags. Identical blocks (most of the codespace is
// unassigned or uniformly one class) are stored once, so the table stays
// around 100 KiB while a lookup is two loads instead of a binary search.
struct ClassTable {
  std::vector<uint16_t> block_index;
  std::vector<uint8_t> blocks;

  ClassTable() {
    std::vector<uint8_t> flat(kMaxCodepoint + 1, 0);
    for (const CodepointRange& r : kCodepointRanges)
      for (uint32_t cp = r.first; cp <= r.last; ++cp) flat[cp] = r.flags;

    block_index.resize(kNumBlocks);
    for (uint32_t b = 0; b < kNumBlocks; ++b) {
      const uint8_t* src = flat.data() + b * kBlockSize;
      block_index[b] = static_cast<uint16_t>(find_or_add_block(src));
    }
    seen_blocks.clear();
  }

  std::map<std::string, size_t> seen_blocks;  // only used while building

  size_t find_or_add_block(const uint8_t* src) {
    std::string key(reinterpret_cast<const char*>(src), kBlockSize);
    auto it = seen_blocks.find(key);
    if (it != seen_blocks.end()) return it->second;
    size_t index = blocks.size() / kBlockSize;
    blocks.insert(blocks.end(), src, src + kBlockSize);
    seen_blocks.emplace(std::move(key), index);
    return index;
  }

  uint8_t lookup(uint32_t cp) const {
    return blocks[size_t(block_index[cp >> kBlockBits]) * kBlockSize + (cp & (kBlockSize - 1))];
  }
};

const ClassTable& class_table() {
  static const ClassTable table;  // thread-safe lazy init (C++11 statics)
  return table;
}

// ASCII is by far the common case; answer it from a table built from the
// same generated ranges so the two paths can never disagree.
// constexpr so it is constant-initialised: usable from any static initialiser.
struct AsciiTable {
  std::array<uint8_t, 128> flags{};
  constexpr AsciiTable() {
    for (const CodepointRange& r : kCodepointRanges)
      for (uint32_t cp = r.first; cp <= r.last && cp < 128; ++cp) flags[cp] = r.flags;
  }
};
constexpr AsciiTable kAscii;

// bytes_to_unicode from GPT-2: printable Latin-1 bytes keep their codepoint,
// the other 68 bytes take 256, 257, ... in byte order.
struct ByteAlphabet {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 324> to_byte{};  // 256 + 68 codepoints at most

  constexpr ByteAlphabet() {
    for (auto& v : to_byte) v = -1;
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      bool keeps = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      to_cp[b] = keeps ? b : next++;
      to_byte[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};
constexpr ByteAlphabet kByteAlphabet;

inline bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

}  // namespace

uint8_t classify(uint32_t cp) {
  if (cp < 128) return kAscii.flags[cp];
  if (cp > kMaxCodepoint) return kOther;
  return class_table().lookup(cp);
}

Decoded decode_utf8(const char* s, size_t n) {
  const auto* u = reinterpret_cast<const unsigned char*>(s);
  const unsigned char c0 = u[0];
  if (c0 < 0x80) return {c0, 1};
  const Decoded invalid{kInvalidCodepoint, 1};

  if (c0 >= 0xC2 && c0 <= 0xDF) {  // 0xC0, 0xC1 would be overlong
    if (n < 2 || !is_continuation(u[1])) return invalid;
    return {uint32_t(c0 & 0x1F) << 6 | (u[1] & 0x3F), 2};
  }
  if (c0 >= 0xE0 && c0 <= 0xEF) {
    if (n < 3 || !is_continuation(u[1]) || !is_continuation(u[2])) return invalid;
    uint32_t cp = uint32_t(c0 & 0x0F) << 12 | uint32_t(u[1] & 0x3F) << 6 | (u[2] & 0x3F);
    if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return invalid;  // overlong / surrogate
    return {cp, 3};
  }
  if (c0 >= 0xF0 && c0 <= 0xF4) {
    if (n < 4 || !is_continuation(u[1]) || !is_continuation(u[2]) || !is_continuation(u[3]))
      return invalid;
    uint32_t cp = uint32_t(c0 & 0x07) << 18 | uint32_t(u[1] & 0x3F) << 12 |
                  uint32_t(u[2] & 0x3F) << 6 | (u[3] & 0x3F);
    if (cp < 0x10000 || cp > kMaxCodepoint) return invalid;
    return {cp, 4};
  }
  return invalid;  // stray continuation byte or 0xC0/0xC1/0xF5..0xFF
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t byte_to_codepoint(uint8_t b) { return kByteAlphabet.to_cp[b]; }

int codepoint_to_byte(uint32_t cp) {
  return cp < kByteAlphabet.to_byte.size() ? kByteAlphabet.to_byte[cp] : -1;
}

}  // namespace sc::unicode
