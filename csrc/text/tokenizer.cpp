// Byte-level BPE, token for token what Hugging Face `tokenizers` produces for
// the StarCoder pipeline:
//
//   1. added tokens: special-token strings are split out of the text first,
//      leftmost-longest (HF's Aho-Corasick MatchKind::LeftmostLongest);
//   2. Digits(individual_digits=true): every char::is_numeric codepoint is a
//      piece of its own, and the regex below never crosses one;
//   3. ByteLevel's regex, hand-written (see next_pretoken_end):
//        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   4. BPE on each piece's bytes with HF's merge order: repeatedly apply the
//      lowest-ranked adjacent pair, leftmost first among equal ranks.
//
// Text that is not valid UTF-8 (HF never sees any: Python str is valid) is
// still tokenized, never read out of bounds: each stray byte is a codepoint
// of class "other" and keeps its raw byte. Like HF, a byte whose one-byte
// token is missing from the vocabulary is dropped; the StarCoder vocabs lack
// the 13 bytes that never occur in UTF-8 plus 0xF1, the lead byte of
// U+40000..U+7FFFF (all unassigned), so valid text otherwise round-trips.
#include "text/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "format/gguf.h"
#include "text/unicode.h"

namespace sc {
namespace {

// llama.cpp token types stored in tokenizer.ggml.token_type.
constexpr int64_t kTypeControl = 3;      // special: parsed only when asked
constexpr int64_t kTypeUserDefined = 4;  // added non-special: always parsed

// ---------------------------------------------------------------------------
// Hashing

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 32;
  x *= 0xD6E8FEB86659FD93ull;
  x ^= x >> 32;
  return x;
}

// Hash of a short byte string, 8 bytes per step.
uint64_t hash_bytes(const char* s, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, s, 8);
    h = mix64(h ^ w) * 0x9E3779B97F4A7C15ull;
    s += 8;
    n -= 8;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, s, n);
  return mix64(h ^ tail ^ (uint64_t(n) << 56));
}

// ---------------------------------------------------------------------------
// Merge table: (left id, right id) -> (rank, merged id), open addressing.

class PairTable {
 public:
  struct Merge {
    int32_t rank;
    int32_t merged;
  };

  void reserve(size_t n_pairs) {
    size_t cap = 16;
    while (cap < n_pairs * 2) cap <<= 1;  // load factor <= 0.5
    slots_.assign(cap, Slot{kEmptyKey, {0, 0}});
    mask_ = cap - 1;
  }

  // A pair listed twice keeps its last rank, as HF's HashMap collect does.
  void insert(int32_t left, int32_t right, Merge m) {
    const uint64_t key = make_key(left, right);
    for (size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == kEmptyKey || slots_[i].key == key) {
        slots_[i] = Slot{key, m};
        return;
      }
    }
  }

  const Merge* find(int32_t left, int32_t right) const {
    const uint64_t key = make_key(left, right);
    for (size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.merge;
      if (s.key == kEmptyKey) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmptyKey = ~0ull;  // ids are < 2^31: never a real key
  struct Slot {
    uint64_t key;
    Merge merge;
  };
  static uint64_t make_key(int32_t left, int32_t right) {
    return uint64_t(uint32_t(left)) << 32 | uint32_t(right);
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

// ---------------------------------------------------------------------------
// Merge cache: piece bytes -> BPE ids.
//
// Source code repeats the same identifiers and indentation runs endlessly, so
// most pieces are cache hits (Python's stdlib: 8.1M pieces, 87k distinct).
// encode() is const and may run on several threads at once, so the cache is
// split into shards, each behind its own mutex: uncontended locking costs a
// few ns, far less than the BPE it saves, and threads rarely want the same
// shard at the same moment. (A per-thread cache would avoid the lock but
// multiply memory by the thread count and need per-Tokenizer thread_local
// bookkeeping.) Shards start small and double as they fill, up to a fixed
// bound (~128k pieces, ~8 MiB in all); a full shard is simply emptied.
class MergeCache {
 public:
  static constexpr size_t kMaxKeyLen = 64;  // longer pieces are rare; not cached

  MergeCache() {
    for (Shard& s : shards_) s.reset(kInitialSlots);
  }

  // Appends the cached ids for `key` to `out`; false when absent.
  bool find(std::string_view key, uint64_t hash, std::vector<int32_t>& out) const {
    const Shard& s = shard(hash);
    std::lock_guard<std::mutex> lock(s.mu);
    const Entry* e = s.lookup(key, hash);
    if (!e) return false;
    const int32_t* ids = s.ids.data() + e->ids_off;
    out.insert(out.end(), ids, ids + e->n_ids);
    return true;
  }

  void insert(std::string_view key, uint64_t hash, const int32_t* ids, size_t n_ids) {
    if (key.empty() || key.size() > kMaxKeyLen || n_ids > kMaxKeyLen) return;
    Shard& s = shard(hash);
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.lookup(key, hash)) return;  // another thread got here first
    if (2 * (s.used + 1) > s.slots.size()) {  // keep the load factor <= 0.5
      if (s.slots.size() < kMaxSlots)
        s.grow();
      else
        s.reset(s.slots.size());
    }
    s.add(key, hash, ids, n_ids);
  }

 private:
  static constexpr size_t kShards = 16;
  static constexpr size_t kInitialSlots = 512;  // per shard, power of two
  static constexpr size_t kMaxSlots = 16384;

  struct Entry {
    uint32_t hash;  // low 32 bits of the key's hash
    uint32_t key_off;
    uint32_t ids_off;
    uint8_t key_len;  // 0: empty slot (pieces are never empty)
    uint8_t n_ids;
  };
  struct Shard {
    mutable std::mutex mu;
    std::vector<Entry> slots;
    std::string keys;          // all keys, back to back
    std::vector<int32_t> ids;  // all values, back to back
    size_t used = 0;

    size_t mask() const { return slots.size() - 1; }

    const Entry* lookup(std::string_view key, uint64_t hash) const {
      for (size_t i = hash & mask();; i = (i + 1) & mask()) {
        const Entry& e = slots[i];
        if (e.key_len == 0) return nullptr;
        if (e.hash == uint32_t(hash) && e.key_len == key.size() &&
            std::memcmp(keys.data() + e.key_off, key.data(), key.size()) == 0)
          return &e;
      }
    }

    void place(const Entry& entry) {
      size_t i = entry.hash & mask();
      while (slots[i].key_len != 0) i = (i + 1) & mask();
      slots[i] = entry;
    }

    void add(std::string_view key, uint64_t hash, const int32_t* v, size_t n) {
      place(Entry{uint32_t(hash), uint32_t(keys.size()), uint32_t(ids.size()),
                  uint8_t(key.size()), uint8_t(n)});
      keys.append(key.data(), key.size());
      ids.insert(ids.end(), v, v + n);
      ++used;
    }

    // Slot index uses only the low hash bits, which Entry keeps, so entries
    // can be re-placed without their keys.
    void grow() {
      std::vector<Entry> old = std::move(slots);
      slots.assign(old.size() * 2, Entry{});
      for (const Entry& e : old)
        if (e.key_len != 0) place(e);
    }

    void reset(size_t n_slots) {
      slots.assign(n_slots, Entry{});
      keys.clear();
      ids.clear();
      used = 0;
    }
  };
  static_assert(kMaxSlots <= (size_t(1) << 32), "slot index must fit the stored hash bits");

  // Low hash bits pick the slot, the top 4 bits the shard: independent.
  static_assert(kShards == 16, "shard() uses the top 4 hash bits");
  const Shard& shard(uint64_t hash) const { return shards_[hash >> 60]; }
  Shard& shard(uint64_t hash) { return shards_[hash >> 60]; }

  std::array<Shard, kShards> shards_;
};

// ---------------------------------------------------------------------------
// Pre-tokenizer classes. A codepoint isolated by Digits gets kIsolated
// whatever its regex class: it forms a piece alone and bounds every regex
// match around it, exactly as if the regex ran on separate strings.

enum PieceClass : uint8_t {
  kOther = unicode::kOther,
  kLetter = unicode::kLetter,
  kNumber = unicode::kNumber,
  kSpace = unicode::kSpace,
  kIsolated = 4,
  kEnd = 5,  // sentinel after the last codepoint
};

inline uint8_t piece_class(uint32_t cp) {
  const uint8_t f = unicode::classify(cp);
  return (f & unicode::kNumericSplit) ? kIsolated : (f & unicode::kClassMask);
}

struct AsciiClasses {
  std::array<uint8_t, 128> cls{};
  AsciiClasses() {
    for (uint32_t c = 0; c < 128; ++c) cls[c] = piece_class(c);
  }
};

// Reused buffers of one encode() call, so the per-piece loop never allocates
// once they have grown.
struct Scratch {
  std::vector<uint32_t> off;  // byte offset of each codepoint, plus the end
  std::vector<uint8_t> cls;   // PieceClass of each codepoint, plus kEnd

  struct Symbol {
    int32_t id;
    int32_t prev;  // -1: none
    int32_t next;  // -1: none
    bool alive;
  };
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t merged;
  };
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
};

}  // namespace

// ---------------------------------------------------------------------------

struct Tokenizer::Impl {
  std::vector<std::string> text;   // token strings as stored in the GGUF
  std::vector<std::string> bytes;  // what each token decodes to
  std::vector<uint8_t> special;    // CONTROL or USER_DEFINED
  std::unordered_map<std::string, int32_t> by_text;
  std::array<int32_t, 256> byte_token{};  // single-byte token ids, -1 if absent
  PairTable merges;
  int32_t bos = -1, eos = -1;

  // Added tokens matched in the raw text before pre-tokenization.
  struct Added {
    std::string text;
    int32_t id;
    bool control;  // matched only with parse_special
  };
  std::vector<Added> added;  // longest first
  std::array<std::vector<uint32_t>, 256> added_by_first{};  // indices into added
  bool has_user_defined = false;  // some added token is matched even without parse_special
  AsciiClasses ascii;
  mutable MergeCache cache;

  void load(const GGUFFile& file);
  void load_merges(const GGUFFile& file);
  void index_added_tokens();
  static std::string token_to_bytes(const std::string& token);

  void encode_with_added(std::string_view s, bool parse_special, Scratch& sc,
                         std::vector<int32_t>& out) const;
  const Added* match_added_at(std::string_view s, size_t pos, bool parse_special) const;
  void encode_text(std::string_view s, Scratch& sc, std::vector<int32_t>& out) const;
  void decode_codepoints(std::string_view s, Scratch& sc) const;
  size_t next_pretoken_end(std::string_view s, const Scratch& sc, size_t i) const;
  void encode_piece(const char* p, size_t n, Scratch& sc, std::vector<int32_t>& out) const;
  void bpe(const char* p, size_t n, Scratch& sc, std::vector<int32_t>& out) const;
};

// ---------------------------------------------------------------------------
// Loading

// GPT-2 alphabet -> bytes. A token with a char outside the alphabet decodes
// to its own UTF-8, as HF's ByteLevel decoder does.
std::string Tokenizer::Impl::token_to_bytes(const std::string& token) {
  std::string out;
  out.reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    unicode::Decoded d = unicode::decode_utf8(token.data() + i, token.size() - i);
    int b = d.cp == unicode::kInvalidCodepoint ? -1 : unicode::codepoint_to_byte(d.cp);
    if (b < 0) return token;
    out.push_back(static_cast<char>(b));
    i += d.len;
  }
  return out;
}

void Tokenizer::Impl::load(const GGUFFile& file) {
  const std::string model = file.get_string("tokenizer.ggml.model");
  if (model != "gpt2")
    throw GGUFError(file.path() + ": tokenizer model '" + model + "' is not byte-level BPE (gpt2)");

  const auto& tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (tokens.empty() || tokens.size() > size_t(std::numeric_limits<int32_t>::max()))
    throw GGUFError(file.path() + ": tokenizer.ggml.tokens has a bad size");
  const size_t n = tokens.size();

  std::vector<int64_t> types(n, 1);
  if (file.has("tokenizer.ggml.token_type")) {
    types = file.get_int_array("tokenizer.ggml.token_type");
    if (types.size() != n)
      throw GGUFError(file.path() + ": tokenizer.ggml.token_type and tokens differ in length");
  }

  text.reserve(n);
  bytes.reserve(n);
  special.reserve(n);
  by_text.reserve(n * 2);
  byte_token.fill(-1);
  for (size_t id = 0; id < n; ++id) {
    text.emplace_back(tokens[id]);
    const bool is_added = types[id] == kTypeControl || types[id] == kTypeUserDefined;
    special.push_back(is_added);
    bytes.push_back(is_added ? text.back() : token_to_bytes(text.back()));
    // A duplicated string keeps its first id for lookups.
    by_text.emplace(text.back(), int32_t(id));
    if (is_added && !text.back().empty())
      added.push_back({text.back(), int32_t(id), types[id] == kTypeControl});
  }
  for (int b = 0; b < 256; ++b) {
    std::string s;
    unicode::append_utf8(s, unicode::byte_to_codepoint(uint8_t(b)));
    auto it = by_text.find(s);
    if (it != by_text.end()) byte_token[b] = it->second;
  }

  load_merges(file);
  index_added_tokens();

  bos = int32_t(file.get_int("tokenizer.ggml.bos_token_id", -1));
  eos = int32_t(file.get_int("tokenizer.ggml.eos_token_id", -1));
  if (bos < -1 || bos >= int32_t(n) || eos < -1 || eos >= int32_t(n))
    throw GGUFError(file.path() + ": bos/eos token id outside the vocabulary");
}

void Tokenizer::Impl::load_merges(const GGUFFile& file) {
  const auto& list = file.get_string_array("tokenizer.ggml.merges");
  merges.reserve(list.size());
  std::string joined;
  for (size_t rank = 0; rank < list.size(); ++rank) {
    std::string_view m = list[rank];
    // "left right": the alphabet has no U+0020, so the one space separates.
    // Searching from 1 also allows a (theoretical) left part that is a space.
    size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
    if (sp == std::string_view::npos)
      throw GGUFError(file.path() + ": merge " + std::to_string(rank) + " has no separator");
    std::string_view left = m.substr(0, sp), right = m.substr(sp + 1);
    joined.assign(left);
    joined.append(right);
    auto l = by_text.find(std::string(left));
    auto r = by_text.find(std::string(right));
    auto j = by_text.find(joined);
    // HF refuses to load such a vocabulary (MergeTokenOutOfVocabulary).
    if (l == by_text.end() || r == by_text.end() || j == by_text.end())
      throw GGUFError(file.path() + ": merge " + std::to_string(rank) + " '" + std::string(m) +
                      "' uses a token outside the vocabulary");
    merges.insert(l->second, r->second, {int32_t(rank), j->second});
  }
}

void Tokenizer::Impl::index_added_tokens() {
  // Longest first, so the first candidate that matches at a position is the
  // longest one there (leftmost-longest).
  std::stable_sort(added.begin(), added.end(),
                   [](const Added& a, const Added& b) { return a.text.size() > b.text.size(); });
  for (uint32_t i = 0; i < added.size(); ++i) {
    added_by_first[uint8_t(added[i].text[0])].push_back(i);
    has_user_defined |= !added[i].control;
  }
}

// ---------------------------------------------------------------------------
// Encoding

const Tokenizer::Impl::Added* Tokenizer::Impl::match_added_at(std::string_view s, size_t pos,
                                                              bool parse_special) const {
  for (uint32_t idx : added_by_first[uint8_t(s[pos])]) {
    const Added& a = added[idx];
    if (a.control && !parse_special) continue;
    if (s.size() - pos >= a.text.size() && s.compare(pos, a.text.size(), a.text) == 0) return &a;
  }
  return nullptr;
}

void Tokenizer::Impl::encode_with_added(std::string_view s, bool parse_special, Scratch& sc,
                                        std::vector<int32_t>& out) const {
  if (added.empty() || (!parse_special && !has_user_defined)) {
    encode_text(s, sc, out);  // nothing could match: skip the scan
    return;
  }
  size_t segment_start = 0;
  for (size_t pos = 0; pos < s.size();) {
    const Added* a = added_by_first[uint8_t(s[pos])].empty()
                         ? nullptr
                         : match_added_at(s, pos, parse_special);
    if (!a) {
      ++pos;
      continue;
    }
    encode_text(s.substr(segment_start, pos - segment_start), sc, out);
    out.push_back(a->id);
    pos += a->text.size();
    segment_start = pos;
  }
  encode_text(s.substr(segment_start), sc, out);
}

void Tokenizer::Impl::decode_codepoints(std::string_view s, Scratch& sc) const {
  sc.off.clear();
  sc.cls.clear();
  for (size_t p = 0; p < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[p]);
    sc.off.push_back(uint32_t(p));
    if (c < 0x80) {
      sc.cls.push_back(ascii.cls[c]);
      ++p;
    } else {
      unicode::Decoded d = unicode::decode_utf8(s.data() + p, s.size() - p);
      sc.cls.push_back(d.cp == unicode::kInvalidCodepoint ? uint8_t(kOther) : piece_class(d.cp));
      p += d.len;
    }
  }
  sc.off.push_back(uint32_t(s.size()));
  sc.cls.push_back(kEnd);
}

// End (codepoint index) of the pre-token that starts at codepoint i: the
// ByteLevel regex's alternatives, tried in order, with a Digits-isolated
// codepoint acting as the end of the string.
size_t Tokenizer::Impl::next_pretoken_end(std::string_view s, const Scratch& sc, size_t i) const {
  const uint8_t* cls = sc.cls.data();
  auto byte_at = [&](size_t k) { return s[sc.off[k]]; };  // valid for k < n
  auto run_end = [&](size_t k, uint8_t c) {
    while (cls[k] == c) ++k;  // stops at the kEnd sentinel
    return k;
  };
  const uint8_t c = cls[i];
  if (c == kIsolated) return i + 1;

  // 's|'t|'re|'ve|'m|'ll|'d  (ASCII bytes, so a byte compare is a char compare)
  if (byte_at(i) == '\'' && cls[i + 1] == kLetter) {
    const char a = byte_at(i + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if (cls[i + 2] == kLetter) {
      const char b = byte_at(i + 2);
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    }
  }

  // ' ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+' -- the optional prefix is U+0020 only.
  if (byte_at(i) == ' ') {
    const uint8_t next = cls[i + 1];
    if (next == kLetter || next == kNumber || next == kOther) return run_end(i + 1, next);
  }
  if (c != kSpace) return run_end(i, c);

  // '\s+(?!\S)|\s+': a whitespace run keeps its last char for the next
  // pre-token when a non-space follows (so " foo" stays together), unless the
  // run is a single char, which then stands alone.
  const size_t k = run_end(i, kSpace);
  if (cls[k] == kEnd || cls[k] == kIsolated) return k;  // end of string: lookahead holds
  return k - i >= 2 ? k - 1 : k;
}

void Tokenizer::Impl::encode_text(std::string_view s, Scratch& sc,
                                  std::vector<int32_t>& out) const {
  if (s.empty()) return;
  // Offsets are uint32 and BPE positions int32.
  if (s.size() > size_t(std::numeric_limits<int32_t>::max()))
    throw std::length_error("tokenizer: text larger than 2 GiB");
  decode_codepoints(s, sc);
  const size_t n = sc.cls.size() - 1;
  for (size_t i = 0; i < n;) {
    const size_t j = next_pretoken_end(s, sc, i);
    encode_piece(s.data() + sc.off[i], sc.off[j] - sc.off[i], sc, out);
    i = j;
  }
}

void Tokenizer::Impl::encode_piece(const char* p, size_t n, Scratch& sc,
                                   std::vector<int32_t>& out) const {
  // Fast paths that need neither the cache nor the heap.
  if (n == 1 && byte_token[uint8_t(p[0])] >= 0) {
    out.push_back(byte_token[uint8_t(p[0])]);
    return;
  }
  if (n == 2) {
    const int32_t a = byte_token[uint8_t(p[0])], b = byte_token[uint8_t(p[1])];
    if (a >= 0 && b >= 0) {
      if (const PairTable::Merge* m = merges.find(a, b)) {
        out.push_back(m->merged);
      } else {
        out.push_back(a);
        out.push_back(b);
      }
      return;
    }
  }
  if (n > MergeCache::kMaxKeyLen) {
    bpe(p, n, sc, out);
    return;
  }
  const std::string_view key(p, n);
  const uint64_t h = hash_bytes(p, n);
  if (cache.find(key, h, out)) return;
  const size_t first = out.size();
  bpe(p, n, sc, out);
  cache.insert(key, h, out.data() + first, out.size() - first);
}

// HF's Word::merge_all: a min-heap of candidate merges ordered by (rank,
// position); a popped candidate is stale, and skipped, when its left symbol
// was absorbed or the pair it names has changed.
void Tokenizer::Impl::bpe(const char* p, size_t n, Scratch& sc, std::vector<int32_t>& out) const {
  using Symbol = Scratch::Symbol;
  using Candidate = Scratch::Candidate;
  auto& sym = sc.symbols;
  auto& heap = sc.heap;
  sym.clear();
  heap.clear();

  for (size_t i = 0; i < n; ++i) {
    const int32_t id = byte_token[uint8_t(p[i])];
    if (id < 0) continue;  // HF drops a char missing from the vocab (no unk token)
    const int32_t pos = int32_t(sym.size());
    sym.push_back(Symbol{id, pos - 1, -1, true});
    if (pos > 0) sym[pos - 1].next = pos;
  }

  // std heap functions build a max-heap; invert the order for a min-heap.
  auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  auto push_pair = [&](int32_t left) {
    const int32_t right = sym[left].next;
    if (right < 0) return;
    if (const PairTable::Merge* m = merges.find(sym[left].id, sym[right].id)) {
      heap.push_back(Candidate{m->rank, left, m->merged});
      std::push_heap(heap.begin(), heap.end(), later);
    }
  };
  for (int32_t i = 0; i + 1 < int32_t(sym.size()); ++i) push_pair(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Candidate top = heap.back();
    heap.pop_back();

    Symbol& left = sym[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = sym[left.next];
    const PairTable::Merge* m = merges.find(left.id, right.id);
    if (!m || m->merged != top.merged) continue;  // stale candidate

    left.id = top.merged;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) sym[right.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }

  for (const Symbol& s : sym)
    if (s.alive) out.push_back(s.id);
}

// ---------------------------------------------------------------------------
// Public API

Tokenizer::Tokenizer(const GGUFFile& file) : impl_(new Impl) {
  try {
    impl_->load(file);
  } catch (...) {
    delete impl_;
    throw;
  }
}

Tokenizer::~Tokenizer() { delete impl_; }

Tokenizer::Tokenizer(Tokenizer&& other) noexcept : impl_(other.impl_) { other.impl_ = nullptr; }

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  Scratch sc;
  sc.off.reserve(text.size() + 1);
  sc.cls.reserve(text.size() + 1);
  impl_->encode_with_added(text, parse_special, sc, out);
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  size_t total = 0;
  for (int32_t id : ids) {
    if (id < 0 || id >= n_vocab())
      throw std::out_of_range("token id " + std::to_string(id) + " is outside the vocabulary (" +
                              std::to_string(n_vocab()) + " tokens)");
    total += impl_->bytes[id].size();
  }
  std::string out;
  out.reserve(total);
  for (int32_t id : ids) out += impl_->bytes[id];
  return out;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= n_vocab())
    throw std::out_of_range("token id " + std::to_string(id) + " is outside the vocabulary (" +
                            std::to_string(n_vocab()) + " tokens)");
  return impl_->bytes[id];
}

int32_t Tokenizer::n_vocab() const { return int32_t(impl_->text.size()); }
int32_t Tokenizer::bos_id() const { return impl_->bos; }
int32_t Tokenizer::eos_id() const { return impl_->eos; }

int32_t Tokenizer::token_id(std::string_view token_text) const {
  auto it = impl_->by_text.find(std::string(token_text));
  return it == impl_->by_text.end() ? -1 : it->second;
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < n_vocab() && impl_->special[id] != 0;
}

}  // namespace sc
