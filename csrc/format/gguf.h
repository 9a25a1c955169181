// GGUF reader: memory-maps a file and validates every byte it interprets.
// Any malformed input (truncation, bad magic, absurd counts, offsets outside
// the file, misaligned or unknown tensor types) throws GGUFError; nothing is
// read outside the mapping.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "format/tensor_types.h"

namespace sc {

class GGUFError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class GGUFType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char* gguf_type_name(GGUFType t);

// One metadata value. Scalars are decoded; arrays point into the mapping.
struct GGUFValue {
  GGUFType type = GGUFType::UINT8;
  // scalar payloads
  int64_t i = 0;       // any integer type (uint64 values above INT64_MAX are rejected)
  double f = 0.0;      // FLOAT32 / FLOAT64
  bool b = false;
  std::string_view str;
  // arrays
  GGUFType elem_type = GGUFType::UINT8;
  uint64_t count = 0;
  const uint8_t* elems = nullptr;          // raw element bytes (numeric arrays)
  std::vector<std::string_view> strings;   // string arrays, decoded
};

struct GGUFTensor {
  std::string name;
  int n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
  TensorType type = TensorType::F32;
  uint64_t offset = 0;           // relative to the data section
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr; // inside the mapping
  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class GGUFFile {
 public:
  // Maps and parses `path`. Throws GGUFError with the path in the message.
  static std::unique_ptr<GGUFFile> open(const std::string& path);
  ~GGUFFile();
  GGUFFile(const GGUFFile&) = delete;
  GGUFFile& operator=(const GGUFFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t file_size() const { return size_; }
  uint32_t alignment() const { return alignment_; }

  // Metadata access. get_* throw GGUFError when the key is missing or has a
  // type that cannot represent the request.
  const GGUFValue* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key) const;
  double get_float(const std::string& key, double fallback) const;
  const std::vector<std::string_view>& get_string_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  const std::map<std::string, GGUFValue>& metadata() const { return kv_; }

  const GGUFTensor* find_tensor(const std::string& name) const;
  const std::vector<GGUFTensor>& tensors() const { return tensors_; }

 private:
  GGUFFile() = default;
  void parse();

  std::string path_;
  int fd_ = -1;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  std::map<std::string, GGUFValue> kv_;
  std::vector<GGUFTensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace sc
