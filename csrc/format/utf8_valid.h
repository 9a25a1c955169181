// Strict UTF-8 validation for the strings a GGUF file declares (keys, string
// values, token strings, tensor names). The GGUF spec says they are UTF-8;
// checking here means a broken file fails as GGUFError at open instead of
// surfacing later as a decoding error in whatever reads the string.
#pragma once
#include <cstdint>
#include <string_view>

namespace sc {

// True when `s` is well-formed UTF-8 as Python's strict decoder accepts it:
// no overlong forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
inline bool is_valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t b = p[i];
    if (b < 0x80) { ++i; continue; }
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b >= 0xC2 && b <= 0xDF) len = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      if (b == 0xE0) lo = 0xA0;       // overlong
      else if (b == 0xED) hi = 0x9F;  // surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      if (b == 0xF0) lo = 0x90;       // overlong
      else if (b == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return false;  // continuation byte, C0/C1, or F5..FF as a lead
    }
    if (n - i < len) return false;
    if (p[i + 1] < lo || p[i + 1] > hi) return false;
    for (size_t k = 2; k < len; ++k)
      if ((p[i + k] & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

}  // namespace sc
