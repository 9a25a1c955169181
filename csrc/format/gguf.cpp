#include "format/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "format/utf8_valid.h"

namespace sc {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint64_t kMaxString = uint64_t(1) << 30;
constexpr int kMaxDims = 4;

// Bounds-checked little-endian cursor over the mapping. Every read checks
// that the bytes exist before touching them.
class Cursor {
 public:
  Cursor(const uint8_t* base, uint64_t size, const std::string& path)
      : base_(base), size_(size), path_(path) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  [[noreturn]] void fail(const std::string& what) const {
    throw GGUFError(path_ + ": " + what + " (at byte " + std::to_string(pos_) + ")");
  }

  const uint8_t* take(uint64_t n, const char* what) {
    if (n > remaining())
      fail(std::string("file is truncated: needed ") + std::to_string(n) + " bytes for " + what +
           ", " + std::to_string(remaining()) + " left");
    const uint8_t* p = base_ + pos_;
    pos_ += n;
    return p;
  }

  template <typename T>
  T read(const char* what) {
    T v;
    std::memcpy(&v, take(sizeof(T), what), sizeof(T));
    return v;
  }

  // A length-prefixed string, which must be valid UTF-8.
  std::string_view read_string(const char* what) {
    const uint64_t start = pos_;
    const std::string_view s = read_string_bytes(what);
    if (!is_valid_utf8(s)) {
      pos_ = start;  // the error names where the string begins
      fail(std::string(what) + " is not valid UTF-8");
    }
    return s;
  }

  std::string_view read_string_bytes(const char* what) {
    const uint64_t n = read<uint64_t>(what);
    if (n > kMaxString) fail(std::string("absurd string length ") + std::to_string(n) + " for " + what);
    const uint8_t* p = take(n, what);
    return std::string_view(reinterpret_cast<const char*>(p), n);
  }

  void seek(uint64_t pos) { pos_ = pos; }

 private:
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& path_;
};

size_t scalar_size(GGUFType t) {
  switch (t) {
    case GGUFType::UINT8: case GGUFType::INT8: case GGUFType::BOOL: return 1;
    case GGUFType::UINT16: case GGUFType::INT16: return 2;
    case GGUFType::UINT32: case GGUFType::INT32: case GGUFType::FLOAT32: return 4;
    case GGUFType::UINT64: case GGUFType::INT64: case GGUFType::FLOAT64: return 8;
    default: return 0;  // STRING, ARRAY: variable size
  }
}

bool is_integer(GGUFType t) {
  switch (t) {
    case GGUFType::UINT8: case GGUFType::INT8: case GGUFType::UINT16: case GGUFType::INT16:
    case GGUFType::UINT32: case GGUFType::INT32: case GGUFType::UINT64: case GGUFType::INT64:
      return true;
    default: return false;
  }
}

// Decodes an integer of type t at p (which has scalar_size(t) valid bytes).
bool decode_int(GGUFType t, const uint8_t* p, int64_t* out) {
  switch (t) {
    case GGUFType::UINT8:  { uint8_t v;  std::memcpy(&v, p, 1); *out = v; return true; }
    case GGUFType::INT8:   { int8_t v;   std::memcpy(&v, p, 1); *out = v; return true; }
    case GGUFType::UINT16: { uint16_t v; std::memcpy(&v, p, 2); *out = v; return true; }
    case GGUFType::INT16:  { int16_t v;  std::memcpy(&v, p, 2); *out = v; return true; }
    case GGUFType::UINT32: { uint32_t v; std::memcpy(&v, p, 4); *out = v; return true; }
    case GGUFType::INT32:  { int32_t v;  std::memcpy(&v, p, 4); *out = v; return true; }
    case GGUFType::INT64:  { int64_t v;  std::memcpy(&v, p, 8); *out = v; return true; }
    case GGUFType::UINT64: {
      uint64_t v; std::memcpy(&v, p, 8);
      if (v > uint64_t(INT64_MAX)) return false;
      *out = int64_t(v); return true;
    }
    default: return false;
  }
}

}  // namespace

const char* gguf_type_name(GGUFType t) {
  static const char* names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                "bool", "string", "array", "uint64", "int64", "float64"};
  const uint32_t i = uint32_t(t);
  return i < sizeof(names) / sizeof(names[0]) ? names[i] : "unknown";
}

std::unique_ptr<GGUFFile> GGUFFile::open(const std::string& path) {
  std::unique_ptr<GGUFFile> f(new GGUFFile());
  f->path_ = path;
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer
  // forever; it changes nothing for a regular file, the only kind accepted.
  f->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (f->fd_ < 0) throw GGUFError(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (fstat(f->fd_, &st) != 0) throw GGUFError(path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw GGUFError(path + ": not a regular file (a FIFO, device or socket cannot be mapped)");
  f->size_ = uint64_t(st.st_size);
  if (f->size_ < 24) throw GGUFError(path + ": file is too small to be GGUF (" + std::to_string(f->size_) + " bytes)");
  void* m = mmap(nullptr, f->size_, PROT_READ, MAP_SHARED, f->fd_, 0);
  if (m == MAP_FAILED) throw GGUFError(path + ": mmap failed: " + std::strerror(errno));
  f->base_ = static_cast<const uint8_t*>(m);
  f->parse();
  return f;
}

GGUFFile::~GGUFFile() {
  if (base_) munmap(const_cast<uint8_t*>(base_), size_);
  if (fd_ >= 0) ::close(fd_);
}

void GGUFFile::parse() {
  Cursor c(base_, size_, path_);
  if (c.read<uint32_t>("magic") != kMagic) c.fail("bad magic: not a GGUF file");
  version_ = c.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3)
    c.fail("unsupported GGUF version " + std::to_string(version_) + " (supported: 2, 3)");
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  // Each KV needs at least 12 bytes and each tensor info at least 28: a count
  // the file cannot hold is corrupt, whatever the parser would do next.
  if (n_kv > c.remaining() / 12) c.fail("metadata count " + std::to_string(n_kv) + " is larger than the file can hold");
  if (n_tensors > c.remaining() / 28) c.fail("tensor count " + std::to_string(n_tensors) + " is larger than the file can hold");

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key(c.read_string("metadata key"));
    if (key.empty()) c.fail("empty metadata key");
    GGUFValue v;
    v.type = GGUFType(c.read<uint32_t>("metadata type"));
    if (v.type == GGUFType::ARRAY) {
      v.elem_type = GGUFType(c.read<uint32_t>("array element type"));
      v.count = c.read<uint64_t>("array length");
      if (v.elem_type == GGUFType::STRING) {
        if (v.count > c.remaining() / 8) c.fail("array length " + std::to_string(v.count) + " of '" + key + "' is larger than the file");
        v.strings.reserve(v.count);
        for (uint64_t j = 0; j < v.count; ++j) {
          const uint64_t start = c.pos();
          v.strings.push_back(c.read_string_bytes("string array element"));
          if (!is_valid_utf8(v.strings.back())) {
            c.seek(start);
            c.fail("element " + std::to_string(j) + " of '" + key + "' is not valid UTF-8");
          }
        }
      } else {
        const size_t es = scalar_size(v.elem_type);
        if (es == 0) c.fail("unsupported array element type " + std::to_string(uint32_t(v.elem_type)) + " for '" + key + "'");
        if (v.count > c.remaining() / es) c.fail("array '" + key + "' of " + std::to_string(v.count) + " elements runs past the end of the file");
        v.elems = c.take(v.count * es, "array data");
      }
    } else if (v.type == GGUFType::STRING) {
      const uint64_t start = c.pos();
      v.str = c.read_string_bytes("string value");
      if (!is_valid_utf8(v.str)) {
        c.seek(start);
        c.fail("the value of '" + key + "' is not valid UTF-8");
      }
    } else {
      const size_t sz = scalar_size(v.type);
      if (sz == 0) c.fail("unknown metadata type " + std::to_string(uint32_t(v.type)) + " for '" + key + "'");
      const uint8_t* p = c.take(sz, "metadata value");
      if (is_integer(v.type)) {
        if (!decode_int(v.type, p, &v.i)) c.fail("integer value of '" + key + "' is out of range");
      } else if (v.type == GGUFType::FLOAT32) {
        float x; std::memcpy(&x, p, 4); v.f = x;
      } else if (v.type == GGUFType::FLOAT64) {
        std::memcpy(&v.f, p, 8);
      } else {  // BOOL
        v.b = *p != 0;
      }
    }
    if (!kv_.emplace(std::move(key), std::move(v)).second) c.fail("duplicate metadata key");
  }

  if (const GGUFValue* a = find("general.alignment")) {
    if (!is_integer(a->type) || a->i <= 0 || a->i > 65536 || (a->i & (a->i - 1)) != 0)
      c.fail("general.alignment must be a power of two");
    alignment_ = uint32_t(a->i);
  }

  tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GGUFTensor t;
    t.name = std::string(c.read_string("tensor name"));
    const uint32_t n_dims = c.read<uint32_t>("tensor dimension count");
    if (n_dims == 0 || n_dims > kMaxDims) c.fail("tensor '" + t.name + "' has " + std::to_string(n_dims) + " dimensions (1 to 4 allowed)");
    t.n_dims = int(n_dims);
    int64_t n_el = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.read<uint64_t>("tensor dimension");
      if (ne == 0 || ne > (uint64_t(1) << 40) || uint64_t(n_el) > (uint64_t(1) << 50) / ne)
        c.fail("tensor '" + t.name + "' has an absurd dimension " + std::to_string(ne));
      t.ne[d] = int64_t(ne);
      n_el *= int64_t(ne);
    }
    const uint32_t type_id = c.read<uint32_t>("tensor type");
    const TensorTypeInfo info = tensor_type_info(type_id);
    if (!info.name) c.fail("tensor '" + t.name + "' has unknown type id " + std::to_string(type_id));
    t.type = TensorType(type_id);
    const int64_t rs = row_size(t.type, t.ne[0]);
    if (rs < 0)
      c.fail("tensor '" + t.name + "': row length " + std::to_string(t.ne[0]) + " is not a multiple of the " +
             info.name + " block size " + std::to_string(info.block_size));
    t.n_bytes = uint64_t(rs) * uint64_t(t.ne[1] * t.ne[2] * t.ne[3]);
    t.offset = c.read<uint64_t>("tensor offset");
    if (t.offset % alignment_ != 0) c.fail("tensor '" + t.name + "' offset is not aligned to " + std::to_string(alignment_));
    if (tensor_index_.count(t.name)) c.fail("duplicate tensor name '" + t.name + "'");
    tensor_index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }

  // Data section: starts at the next multiple of the alignment.
  const uint64_t data_start = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  if (!tensors_.empty() && data_start > size_) c.fail("file is truncated before the tensor data");
  for (GGUFTensor& t : tensors_) {
    if (t.offset > size_ - data_start || t.n_bytes > size_ - data_start - t.offset)
      throw GGUFError(path_ + ": tensor '" + t.name + "' (" + std::to_string(t.n_bytes) + " bytes at data offset " +
                      std::to_string(t.offset) + ") extends past the end of the file (" + std::to_string(size_) +
                      " bytes): the file is truncated or corrupt");
    t.data = base_ + data_start + t.offset;
  }
  // Tensors must not share bytes: a tensor whose type or shape was altered
  // would otherwise silently read its neighbour's data.
  std::vector<const GGUFTensor*> by_offset;
  for (const GGUFTensor& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GGUFTensor* a, const GGUFTensor* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GGUFTensor& prev = *by_offset[i - 1];
    if (prev.offset + prev.n_bytes > by_offset[i]->offset)
      throw GGUFError(path_ + ": tensors '" + prev.name + "' and '" + by_offset[i]->name +
                      "' overlap: a tensor's type or shape does not match its data");
  }
}

const GGUFValue* GGUFFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

std::string GGUFFile::get_string(const std::string& key) const {
  const GGUFValue* v = find(key);
  if (!v) throw GGUFError(path_ + ": missing metadata key '" + key + "'");
  if (v->type != GGUFType::STRING) throw GGUFError(path_ + ": metadata '" + key + "' is " + gguf_type_name(v->type) + ", expected string");
  return std::string(v->str);
}

std::string GGUFFile::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

int64_t GGUFFile::get_int(const std::string& key) const {
  const GGUFValue* v = find(key);
  if (!v) throw GGUFError(path_ + ": missing metadata key '" + key + "'");
  if (!is_integer(v->type)) throw GGUFError(path_ + ": metadata '" + key + "' is " + gguf_type_name(v->type) + ", expected an integer");
  return v->i;
}

int64_t GGUFFile::get_int(const std::string& key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}

double GGUFFile::get_float(const std::string& key) const {
  const GGUFValue* v = find(key);
  if (!v) throw GGUFError(path_ + ": missing metadata key '" + key + "'");
  if (v->type == GGUFType::FLOAT32 || v->type == GGUFType::FLOAT64) return v->f;
  if (is_integer(v->type)) return double(v->i);
  throw GGUFError(path_ + ": metadata '" + key + "' is " + gguf_type_name(v->type) + ", expected a number");
}

double GGUFFile::get_float(const std::string& key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}

const std::vector<std::string_view>& GGUFFile::get_string_array(const std::string& key) const {
  const GGUFValue* v = find(key);
  if (!v) throw GGUFError(path_ + ": missing metadata key '" + key + "'");
  if (v->type != GGUFType::ARRAY || v->elem_type != GGUFType::STRING)
    throw GGUFError(path_ + ": metadata '" + key + "' is not an array of strings");
  return v->strings;
}

std::vector<int64_t> GGUFFile::get_int_array(const std::string& key) const {
  const GGUFValue* v = find(key);
  if (!v) throw GGUFError(path_ + ": missing metadata key '" + key + "'");
  if (v->type != GGUFType::ARRAY || !is_integer(v->elem_type))
    throw GGUFError(path_ + ": metadata '" + key + "' is not an array of integers");
  const size_t es = scalar_size(v->elem_type);
  std::vector<int64_t> out(v->count);
  for (uint64_t i = 0; i < v->count; ++i)
    if (!decode_int(v->elem_type, v->elems + i * es, &out[i]))
      throw GGUFError(path_ + ": metadata '" + key + "' holds an out-of-range integer");
  return out;
}

const GGUFTensor* GGUFFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace sc
