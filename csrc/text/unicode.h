// UTF-8 decoding, the codepoint classes of the BPE pre-tokenizer, and GPT-2's
// bytes_to_unicode alphabet.
//
// The classes are those Hugging Face `tokenizers` actually applies (measured
// by tools/gen_unicode_tables.py), not those of any one Unicode version:
// \p{L}, \p{N} and \s follow the Oniguruma regex of the ByteLevel
// pre-tokenizer, "numeric" follows Rust's char::is_numeric used by Digits.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sc::unicode {

// Regex class of a codepoint: exactly one of these.
enum CpClass : uint8_t {
  kOther = 0,   // none of \s, \p{L}, \p{N}
  kLetter = 1,  // \p{L}
  kNumber = 2,  // \p{N}
  kSpace = 3,   // \s
};
constexpr uint8_t kClassMask = 3;
// Flag bit: char::is_numeric, so Digits(individual_digits) isolates it.
constexpr uint8_t kNumericSplit = 4;

// Returned by decode_utf8 for a byte that does not start a valid sequence.
constexpr uint32_t kInvalidCodepoint = 0xFFFFFFFFu;

// Class bits (CpClass | kNumericSplit) of a codepoint. kInvalidCodepoint and
// anything above U+10FFFF are kOther.
uint8_t classify(uint32_t cp);

inline bool is_letter(uint32_t cp) { return (classify(cp) & kClassMask) == kLetter; }
inline bool is_number(uint32_t cp) { return (classify(cp) & kClassMask) == kNumber; }
inline bool is_whitespace(uint32_t cp) { return (classify(cp) & kClassMask) == kSpace; }
inline bool is_numeric_split(uint32_t cp) { return (classify(cp) & kNumericSplit) != 0; }

struct Decoded {
  uint32_t cp;   // kInvalidCodepoint for a malformed sequence
  uint32_t len;  // bytes consumed, >= 1 whenever n >= 1
};

// Decodes the sequence at s[0..n). Strict RFC 3629 (no overlongs, no
// surrogates, nothing above U+10FFFF); anything malformed or truncated
// consumes exactly one byte and yields kInvalidCodepoint, so a caller that
// keeps the raw bytes loses nothing. Never reads past s[n-1]. n must be >= 1.
Decoded decode_utf8(const char* s, size_t n);

// Appends the UTF-8 encoding of cp (cp must be a valid scalar value).
void append_utf8(std::string& out, uint32_t cp);

// GPT-2 bytes_to_unicode: every byte maps to a printable codepoint; the
// token strings of the vocabulary are written in this alphabet.
uint32_t byte_to_codepoint(uint8_t b);
// Inverse mapping; -1 when cp is not one of the 256 alphabet codepoints.
int codepoint_to_byte(uint32_t cp);

}  // namespace sc::unicode
