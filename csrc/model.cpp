#include "model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "errors.h"
#include "quant.h"

namespace sc {

// Views of one block's tensors. Norm parameters and biases are small and
// copied to float32; matrices stay in the mapping in their file type.
struct Model::Layer {
  std::vector<float> attn_norm_w, attn_norm_b;
  Weight attn_qkv;
  std::vector<float> attn_qkv_b;
  Weight attn_out;
  std::vector<float> attn_out_b;
  std::vector<float> ffn_norm_w, ffn_norm_b;
  Weight ffn_up;
  std::vector<float> ffn_up_b;
  Weight ffn_down;
  std::vector<float> ffn_down_b;
};

// Activations for one chunk of up to n_batch tokens, reused across calls.
struct Model::Buffers {
  std::vector<float> x, h, qkv, attn, ff, last;
};

namespace {

const char* kArch = "starcoder";

// One K or V row into the cache, in the cache's type.
void store_kv(const float* src, uint8_t* dst, int64_t n, TensorType type) {
  if (type == TensorType::F32) {
    std::memcpy(dst, src, size_t(n) * 4);
  } else if (type == TensorType::F16) {
    uint16_t* h = reinterpret_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
  } else {
    quantize_row(type, src, dst, n);
  }
}

std::string key(const char* suffix) { return std::string(kArch) + "." + suffix; }

int positive_int(const GGUFFile& f, const std::string& k) {
  const int64_t v = f.get_int(k);
  if (v <= 0 || v > (int64_t(1) << 24))
    throw ModelError(f.path() + ": metadata '" + k + "' = " + std::to_string(v) + " is out of range");
  return int(v);
}

}  // namespace

Model::Model(const std::string& path, const ModelOptions& options) : opts_(options) {
  file_ = GGUFFile::open(path);
  const std::string arch = file_->get_string("general.architecture", "");
  if (arch != kArch)
    throw ModelError(path + ": general.architecture is '" + arch +
                     "'; this runtime runs GPT-BigCode models ('starcoder')");
  load_hparams();
  backend_ = make_cpu_backend(opts_.n_threads);
  tokenizer_ = std::make_unique<Tokenizer>(*file_);
  if (tokenizer_->n_vocab() != hp_.n_vocab)
    throw ModelError(path + ": tokenizer has " + std::to_string(tokenizer_->n_vocab()) +
                     " tokens but token_embd has " + std::to_string(hp_.n_vocab) + " rows");
  load_weights();

  n_ctx_ = opts_.n_ctx > 0 ? opts_.n_ctx : std::min(hp_.n_ctx_train, ModelOptions::kDefaultMaxCtx);
  if (n_ctx_ > hp_.n_ctx_train)
    throw ModelError("n_ctx " + std::to_string(n_ctx_) + " is larger than the model's context length " +
                     std::to_string(hp_.n_ctx_train) + " (it has no position embeddings beyond that)");
  if (opts_.n_batch <= 0) throw std::invalid_argument("n_batch must be positive");
  if (opts_.kv_type != TensorType::F16 && opts_.kv_type != TensorType::F32 && opts_.kv_type != TensorType::Q8_0)
    throw std::invalid_argument("the KV cache type must be f16, f32 or q8_0, not " + tensor_type_name(opts_.kv_type));
  if (opts_.kv_type == TensorType::Q8_0 && hp_.head_dim % QK8_0 != 0)
    throw std::invalid_argument("a q8_0 KV cache needs head_dim to be a multiple of 32; this model's is " +
                                std::to_string(hp_.head_dim));

  seqs_.resize(kMaxSeq);
  sequence(0);
  buf_ = std::make_unique<Buffers>();
}

Model::~Model() = default;

void Model::load_hparams() {
  const GGUFFile& f = *file_;
  hp_.n_ctx_train = positive_int(f, key("context_length"));
  hp_.n_embd = positive_int(f, key("embedding_length"));
  hp_.n_ff = positive_int(f, key("feed_forward_length"));
  hp_.n_layer = positive_int(f, key("block_count"));
  hp_.n_head = positive_int(f, key("attention.head_count"));
  hp_.n_head_kv = f.has(key("attention.head_count_kv")) ? positive_int(f, key("attention.head_count_kv")) : hp_.n_head;
  hp_.norm_eps = float(f.get_float(key("attention.layer_norm_epsilon"), 1e-5));
  if (hp_.n_embd % hp_.n_head != 0)
    throw ModelError(f.path() + ": embedding_length is not a multiple of head_count");
  if (hp_.n_head % hp_.n_head_kv != 0)
    throw ModelError(f.path() + ": head_count is not a multiple of head_count_kv");
  hp_.head_dim = hp_.n_embd / hp_.n_head;
  const std::string act = f.get_string("starcoder_cpp.activation", "gelu_tanh");
  if (act != "gelu_tanh" && act != "gelu")
    throw ModelError(f.path() + ": unsupported activation '" + act + "'");
  hp_.gelu_exact = act == "gelu";
  const GGUFTensor* embd = f.find_tensor("token_embd.weight");
  if (!embd) throw ModelError(f.path() + ": missing tensor 'token_embd.weight'");
  hp_.n_vocab = int(embd->ne[1]);
}

namespace {

const GGUFTensor& require(const GGUFFile& f, const std::string& name) {
  const GGUFTensor* t = f.find_tensor(name);
  if (!t) throw ModelError(f.path() + ": missing tensor '" + name + "'");
  return *t;
}

std::string shape_str(const GGUFTensor& t) {
  std::string s = "[";
  for (int d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.ne[d]);
  return s + "]";
}

Weight matrix(const GGUFFile& f, const Backend& be, const std::string& name, int64_t n_in, int64_t n_out) {
  const GGUFTensor& t = require(f, name);
  if (t.n_dims != 2 || t.ne[0] != n_in || t.ne[1] != n_out)
    throw ModelError(f.path() + ": tensor '" + name + "' has shape " + shape_str(t) + ", expected [" +
                     std::to_string(n_in) + ", " + std::to_string(n_out) + "]");
  if (!be.supports(t.type))
    throw ModelError(f.path() + ": tensor '" + name + "' has type " + tensor_type_name(t.type) +
                     ", which the " + be.name() + " backend cannot run");
  Weight w;
  w.type = t.type;
  w.n_in = n_in;
  w.n_out = n_out;
  w.row_bytes = size_t(row_size(t.type, n_in));
  w.data = t.data;
  return w;
}

// A 1-D parameter (norm or bias) converted to float32.
std::vector<float> vector_f32(const GGUFFile& f, const std::string& name, int64_t n, bool optional = false) {
  const GGUFTensor* t = f.find_tensor(name);
  if (!t) {
    if (optional) return {};
    throw ModelError(f.path() + ": missing tensor '" + name + "'");
  }
  if (t->n_elements() != n || t->ne[0] != n)
    throw ModelError(f.path() + ": tensor '" + name + "' has shape " + shape_str(*t) + ", expected [" +
                     std::to_string(n) + "]");
  std::vector<float> out(static_cast<size_t>(n));
  switch (t->type) {
    case TensorType::F32: std::memcpy(out.data(), t->data, size_t(n) * 4); break;
    case TensorType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t->data + 2 * i, 2);
        out[i] = fp16_to_fp32(h);
      }
      break;
    default:
      throw ModelError(f.path() + ": tensor '" + name + "' has type " + tensor_type_name(t->type) +
                       "; 1-D tensors must be f32 or f16");
  }
  return out;
}

}  // namespace

void Model::load_weights() {
  const GGUFFile& f = *file_;
  const int64_t E = hp_.n_embd, F = hp_.n_ff, V = hp_.n_vocab;
  const int64_t qkv = E + 2 * int64_t(hp_.n_head_kv) * hp_.head_dim;
  const Backend& be = *backend_;
  tok_embd_ = matrix(f, be, "token_embd.weight", E, V);
  pos_embd_ = matrix(f, be, "position_embd.weight", E, hp_.n_ctx_train);
  out_norm_w_ = vector_f32(f, "output_norm.weight", E);
  out_norm_b_ = vector_f32(f, "output_norm.bias", E);
  output_ = f.find_tensor("output.weight") ? matrix(f, be, "output.weight", E, V) : tok_embd_;

  layers_.resize(size_t(hp_.n_layer));
  for (int i = 0; i < hp_.n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    Layer& L = layers_[size_t(i)];
    L.attn_norm_w = vector_f32(f, p + "attn_norm.weight", E);
    L.attn_norm_b = vector_f32(f, p + "attn_norm.bias", E);
    L.attn_qkv = matrix(f, be, p + "attn_qkv.weight", E, qkv);
    L.attn_qkv_b = vector_f32(f, p + "attn_qkv.bias", qkv, true);
    L.attn_out = matrix(f, be, p + "attn_output.weight", E, E);
    L.attn_out_b = vector_f32(f, p + "attn_output.bias", E, true);
    L.ffn_norm_w = vector_f32(f, p + "ffn_norm.weight", E);
    L.ffn_norm_b = vector_f32(f, p + "ffn_norm.bias", E);
    L.ffn_up = matrix(f, be, p + "ffn_up.weight", E, F);
    L.ffn_up_b = vector_f32(f, p + "ffn_up.bias", F, true);
    L.ffn_down = matrix(f, be, p + "ffn_down.weight", F, E);
    L.ffn_down_b = vector_f32(f, p + "ffn_down.bias", E, true);
  }
}

void Model::check_tokens(const int32_t* tokens, int n) const {
  for (int i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= hp_.n_vocab)
      throw std::invalid_argument("token id " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                                  " is out of range [0, " + std::to_string(hp_.n_vocab) + ")");
}

Model::Sequence& Model::sequence(int seq) {
  if (seq < 0 || seq >= kMaxSeq)
    throw std::invalid_argument("sequence " + std::to_string(seq) + " is out of range [0, " +
                                std::to_string(kMaxSeq) + ")");
  Sequence& s = seqs_[size_t(seq)];
  if (!s.k) {
    const size_t n = size_t(hp_.n_layer) * size_t(n_ctx_) *
                     size_t(row_size(opts_.kv_type, int64_t(hp_.n_head_kv) * hp_.head_dim));
    s.k.reset(new uint8_t[n]);
    s.v.reset(new uint8_t[n]);
  }
  return s;
}

void Model::eval(const int32_t* tokens, int n, bool all_logits, float* logits, int seq) {
  if (n <= 0) throw std::invalid_argument("eval needs at least one token");
  check_tokens(tokens, n);
  Sequence& s = sequence(seq);
  const int past = int(s.history.size());
  if (int64_t(past) + n > n_ctx_)
    throw ContextOverflowError(std::to_string(n) + " new tokens after " + std::to_string(past) +
                               " cached ones exceed the context of " + std::to_string(n_ctx_) + " tokens");

  std::vector<int> seqs, pos;
  std::vector<char> want;
  for (int done = 0; done < n; done += opts_.n_batch) {
    const int m = std::min(opts_.n_batch, n - done);
    seqs.assign(size_t(m), seq);
    pos.resize(size_t(m));
    for (int t = 0; t < m; ++t) pos[size_t(t)] = past + done + t;
    want.assign(size_t(m), all_logits);
    if (done + m == n) want.back() = 1;
    float* out = all_logits ? logits + int64_t(done) * hp_.n_vocab : logits;
    ++cache_version_;
    forward(tokens + done, seqs.data(), pos.data(), m, want, out);
    s.history.insert(s.history.end(), tokens + done, tokens + done + m);
  }
}

void Model::eval_batch(const int32_t* tokens, const int* seqs, int n, float* logits) {
  if (n <= 0) throw std::invalid_argument("eval_batch needs at least one token");
  if (n > opts_.n_batch)
    throw std::invalid_argument("eval_batch: " + std::to_string(n) + " tokens exceed n_batch " +
                                std::to_string(opts_.n_batch));
  check_tokens(tokens, n);
  std::vector<int> pos(static_cast<size_t>(n));
  std::vector<int> added(kMaxSeq, 0);
  for (int i = 0; i < n; ++i) {
    Sequence& s = sequence(seqs[i]);
    pos[size_t(i)] = int(s.history.size()) + added[size_t(seqs[i])]++;
    if (pos[size_t(i)] >= n_ctx_)
      throw ContextOverflowError("sequence " + std::to_string(seqs[i]) + " would exceed the context of " +
                                 std::to_string(n_ctx_) + " tokens");
  }
  ++cache_version_;
  forward(tokens, seqs, pos.data(), n, std::vector<char>(size_t(n), 1), logits);
  for (int i = 0; i < n; ++i) seqs_[size_t(seqs[i])].history.push_back(tokens[i]);
}

void Model::truncate(int n_keep, int seq) {
  if (n_keep < 0) throw std::invalid_argument("truncate: n_keep must be >= 0");
  Sequence& s = sequence(seq);
  if (n_keep < int(s.history.size())) {
    s.history.resize(size_t(n_keep));
    ++cache_version_;
  }
}

void Model::reset() {
  for (Sequence& s : seqs_) s.history.clear();
  ++cache_version_;
}

void Model::forward(const int32_t* tokens, const int* seqs, const int* pos, int m,
                    const std::vector<char>& want_logits, float* logits) {
  Backend& be = *backend_;
  const HParams& hp = hp_;
  const int64_t E = hp.n_embd, F = hp.n_ff;
  const int64_t kv_dim = int64_t(hp.n_head_kv) * hp.head_dim;
  const int64_t qkv_dim = E + 2 * kv_dim;
  const size_t kv_row = size_t(row_size(opts_.kv_type, kv_dim));  // cache bytes per position
  const size_t layer_bytes = size_t(n_ctx_) * kv_row;
  Buffers& b = *buf_;
  b.x.resize(size_t(m * E));
  b.h.resize(size_t(m * E));
  b.qkv.resize(size_t(m * qkv_dim));
  b.attn.resize(size_t(m * E));
  b.ff.resize(size_t(m * F));

  // Token embedding + learned absolute position embedding.
  be.get_rows(tok_embd_, tokens, m, b.x.data());
  be.get_rows(pos_embd_, pos, m, b.h.data());
  be.add(b.x.data(), b.h.data(), size_t(m * E));

  for (int il = 0; il < hp.n_layer; ++il) {
    const Layer& L = layers_[size_t(il)];

    // Attention: pre-LayerNorm, fused QKV projection, keys/values into the
    // cache, causal attention over the cache, output projection, residual.
    be.layer_norm(b.x.data(), L.attn_norm_w.data(), L.attn_norm_b.data(), m, E, hp.norm_eps, b.h.data());
    be.linear(L.attn_qkv, L.attn_qkv_b.empty() ? nullptr : L.attn_qkv_b.data(), b.h.data(), m, b.qkv.data());
    for (int t = 0; t < m; ++t) {
      const Sequence& s = seqs_[size_t(seqs[t])];
      const float* row = b.qkv.data() + t * qkv_dim;
      const size_t at = size_t(il) * layer_bytes + size_t(pos[t]) * kv_row;
      store_kv(row + E, s.k.get() + at, kv_dim, opts_.kv_type);
      store_kv(row + E + kv_dim, s.v.get() + at, kv_dim, opts_.kv_type);
    }
    // One attention call per run of consecutive tokens of one sequence.
    for (int t0 = 0; t0 < m;) {
      int t1 = t0 + 1;
      while (t1 < m && seqs[t1] == seqs[t0] && pos[t1] == pos[t1 - 1] + 1) ++t1;
      const Sequence& s = seqs_[size_t(seqs[t0])];
      AttentionArgs a;
      a.q = b.qkv.data() + t0 * qkv_dim;
      a.q_stride = qkv_dim;
      a.k_cache = s.k.get() + size_t(il) * layer_bytes;
      a.v_cache = s.v.get() + size_t(il) * layer_bytes;
      a.kv_type = opts_.kv_type;
      a.kv_dim = kv_dim;
      a.n_tokens = t1 - t0;
      a.n_past = pos[t0];
      a.n_head = hp.n_head;
      a.n_head_kv = hp.n_head_kv;
      a.head_dim = hp.head_dim;
      a.scale = 1.0f / std::sqrt(float(hp.head_dim));
      a.out = b.attn.data() + t0 * E;
      be.attention(a);
      t0 = t1;
    }
    be.linear(L.attn_out, L.attn_out_b.empty() ? nullptr : L.attn_out_b.data(), b.attn.data(), m, b.h.data());
    be.add(b.x.data(), b.h.data(), size_t(m * E));

    // MLP: pre-LayerNorm, up projection, GELU, down projection, residual.
    be.layer_norm(b.x.data(), L.ffn_norm_w.data(), L.ffn_norm_b.data(), m, E, hp.norm_eps, b.h.data());
    be.linear(L.ffn_up, L.ffn_up_b.empty() ? nullptr : L.ffn_up_b.data(), b.h.data(), m, b.ff.data());
    be.gelu(b.ff.data(), size_t(m * F), hp.gelu_exact);
    be.linear(L.ffn_down, L.ffn_down_b.empty() ? nullptr : L.ffn_down_b.data(), b.ff.data(), m, b.h.data());
    be.add(b.x.data(), b.h.data(), size_t(m * E));
  }

  // Final LayerNorm and LM head, only for the rows whose logits are wanted.
  int n_out = 0;
  for (int t = 0; t < m; ++t)
    if (want_logits[size_t(t)]) {
      if (n_out != t) std::memcpy(b.x.data() + n_out * E, b.x.data() + t * E, size_t(E) * 4);
      ++n_out;
    }
  if (n_out == 0) return;
  be.layer_norm(b.x.data(), out_norm_w_.data(), out_norm_b_.data(), n_out, E, hp.norm_eps, b.h.data());
  be.linear(output_, nullptr, b.h.data(), n_out, logits);
}

}  // namespace sc
