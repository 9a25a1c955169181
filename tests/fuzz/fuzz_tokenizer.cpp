// libFuzzer harness: the tokenizer on arbitrary input. The vocabulary comes
// from SC_FUZZ_VOCAB (a GGUF file with a StarCoder vocabulary: the demo
// model or a vocab GGUF). The first byte picks the mode:
//   0: encode the rest as text, special tokens off; valid UTF-8 must round-trip
//      when the vocabulary has a token for each of its bytes (StarCoder's
//      lacks a few lead bytes, such as 0xF1, and drops them as tokenizers does)
//   1: encode with special tokens parsed
//   2: decode the rest as little-endian int32 ids (out-of-range ids must throw)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "text/tokenizer.h"

namespace {

std::unique_ptr<sc::GGUFFile> g_file;
std::unique_ptr<sc::Tokenizer> g_tok;
bool g_byte_token[256];

bool every_byte_has_a_token(const uint8_t* s, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!g_byte_token[s[i]]) return false;
  return true;
}

bool valid_utf8(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    const uint8_t c = s[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > n) return false;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* path = std::getenv("SC_FUZZ_VOCAB");
  if (!path) {
    std::fprintf(stderr, "set SC_FUZZ_VOCAB to a GGUF file with a StarCoder vocabulary\n");
    std::exit(2);
  }
  g_file = sc::GGUFFile::open(path);
  g_tok = std::make_unique<sc::Tokenizer>(*g_file);
  for (int32_t id = 0; id < g_tok->n_vocab(); ++id) {
    const std::string b = g_tok->token_bytes(id);
    if (b.size() == 1) g_byte_token[uint8_t(b[0])] = true;
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] % 3;
  const uint8_t* rest = data + 1;
  const size_t n = size - 1;
  if (mode == 0 || mode == 1) {
    const std::string text(reinterpret_cast<const char*>(rest), n);
    const std::vector<int32_t> ids = g_tok->encode(text, mode == 1);
    for (int32_t id : ids)
      if (id < 0 || id >= g_tok->n_vocab()) std::abort();
    if (mode == 0 && valid_utf8(rest, n) && every_byte_has_a_token(rest, n) && g_tok->decode(ids) != text) {
      std::fprintf(stderr, "round trip failed\n");
      std::abort();
    }
  } else {
    std::vector<int32_t> ids(n / 4);
    if (!ids.empty()) std::memcpy(ids.data(), rest, ids.size() * 4);
    try {
      (void)g_tok->decode(ids);
    } catch (const std::exception&) {
    }
  }
  return 0;
}
