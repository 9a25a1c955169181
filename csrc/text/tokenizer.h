// Byte-level BPE tokenizer for the StarCoder vocabularies, built from a
// GGUF's tokenizer.ggml.* keys. Matches Hugging Face `tokenizers` token for
// token (pre-tokenizer: Digits(individual) then the GPT-2 ByteLevel regex).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sc {

class GGUFFile;

class Tokenizer {
 public:
  // Reads tokenizer.ggml.{model,tokens,token_type,merges,bos/eos ids}.
  // Throws GGUFError if the keys are missing or inconsistent.
  explicit Tokenizer(const GGUFFile& file);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;

  // Text -> ids. With parse_special, CONTROL-token strings in the text
  // (e.g. "<fim_prefix>") become their ids; otherwise they are plain text.
  std::vector<int32_t> encode(std::string_view text, bool parse_special) const;
  // Ids -> bytes (UTF-8 when the ids came from valid text). Throws
  // std::out_of_range for an id outside the vocabulary.
  std::string decode(const std::vector<int32_t>& ids) const;
  // Bytes of one token (special tokens: their text).
  std::string token_bytes(int32_t id) const;

  int32_t n_vocab() const;
  int32_t bos_id() const;
  int32_t eos_id() const;
  // -1 when the vocabulary has no such token.
  int32_t token_id(std::string_view token_text) const;
  bool is_special(int32_t id) const;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace sc
