#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "backend/registry.h"
#include "format/quant.h"
#include "util/errors.h"
#include "util/memory.h"
#include "util/thread_pool.h"

namespace sc {

// Activation buffers in backend memory for one chunk of up to n_batch tokens,
// allocated once. The CPU backend leaves them uninitialised, so a decode-only
// session makes only their first rows resident.
struct Model::Activations {
  BufferPtr x_buf, h_buf, qkv_buf, attn_buf, ff_buf;
  Rows x, h, qkv, attn, ff;  // views of the buffers above (forward swaps some)
  BufferPtr logits;          // for a backend that cannot write host memory: grown on demand
};

Model::Model(const std::string& path, const ModelOptions& options) : opts_(options) {
  file_ = GGUFFile::open(path);
  const std::string arch = file_->get_string("general.architecture", "");
  if (arch != "starcoder")
    throw ModelError(path + ": general.architecture is '" + arch +
                     "'; this runtime runs GPT-BigCode models ('starcoder')");
  hp_ = read_hparams(*file_);
  tokenizer_ = std::make_unique<Tokenizer>(*file_);
  if (tokenizer_->n_vocab() != hp_.n_vocab)
    throw ModelError(path + ": tokenizer has " + std::to_string(tokenizer_->n_vocab()) +
                     " tokens but token_embd has " + std::to_string(hp_.n_vocab) + " rows");

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

  opts_.n_threads = resolve_thread_count(opts_.n_threads);
  BackendOptions bo;
  bo.name = opts_.backend;
  bo.n_threads = opts_.n_threads;
  bo.matmul_precision = opts_.matmul_precision;
  backend_ = make_backend(bo, &backend_note_);
  check_memory(1);
  w_ = load_weights(*file_, hp_, *backend_);

  KvCacheShape kv;
  kv.type = opts_.kv_type;
  kv.n_layer = hp_.n_layer;
  kv.n_ctx = n_ctx_;
  kv.n_seq = kMaxSeq;
  kv.kv_dim = hp_.kv_dim();
  cache_ = backend_->make_kv_cache(kv);
  book_ = KvBook(kMaxSeq, n_ctx_);
  use_sequence(0);

  Backend& be = *backend_;
  Activations& a = *(act_ = std::make_unique<Activations>());
  const size_t rows = size_t(opts_.n_batch);
  auto buffer = [&](BufferPtr& buf, int64_t width) {
    buf = be.alloc(rows * size_t(width) * sizeof(float));
    return Rows{buf->f32(), width};
  };
  a.x = buffer(a.x_buf, hp_.n_embd);
  a.h = buffer(a.h_buf, hp_.n_embd);
  a.qkv = buffer(a.qkv_buf, hp_.qkv_dim());
  a.attn = buffer(a.attn_buf, hp_.n_embd);
  a.ff = buffer(a.ff_buf, hp_.n_ff);
}

Model::~Model() = default;

void Model::check_tokens(const int32_t* tokens, int n) const {
  for (int i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= hp_.n_vocab)
      throw std::invalid_argument("token id " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                                  " is out of range [0, " + std::to_string(hp_.n_vocab) + ")");
}

uint64_t Model::kv_bytes_per_seq() const {
  return 2 * uint64_t(hp_.n_layer) * uint64_t(n_ctx_) * uint64_t(row_size(opts_.kv_type, hp_.kv_dim()));
}

void Model::check_memory(int n_seq) const {
  const uint64_t env = memory_limit_from_env();
  const uint64_t limit = env ? env : backend_->memory_bytes();
  if (limit == 0) return;  // unknown: nothing to check against
  // The weights: the file's size is within a few MB of their bytes (the
  // CPU maps them, a GPU uploads them; either way they must be resident).
  const uint64_t weights = file_->file_size(), kv = uint64_t(n_seq) * kv_bytes_per_seq();
  if (weights + kv <= limit) return;
  throw MemoryLimitError(
      std::to_string(n_seq) + (n_seq == 1 ? " sequence" : " sequences") + " of " + std::to_string(n_ctx_) +
      " tokens need " + format_bytes(kv) + " of " + tensor_type_name(opts_.kv_type) + " KV cache, and the weights " +
      format_bytes(weights) + ": more than the " + format_bytes(limit) +
      (env ? " of STARCODER_MEMORY_LIMIT" : " of memory that " + backend_->name() + " has") +
      ". Use fewer slots, a shorter context (n_ctx) or a q8_0 KV cache.");
}

void Model::use_sequence(int seq) {
  book_.check_seq(seq);
  backend_->kv_reserve(*cache_, seq);
}

void Model::eval(const int32_t* tokens, int n, bool all_logits, float* logits, int seq) {
  if (n <= 0) throw std::invalid_argument("eval needs at least one token");
  check_tokens(tokens, n);
  use_sequence(seq);
  const int past = book_.n_past(seq);
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
    book_.touch();
    forward(Batch{tokens + done, seqs.data(), pos.data(), want.data(), m}, out);
    book_.append(tokens + done, seqs.data(), m);
  }
}

void Model::eval_batch(const int32_t* tokens, const int* seqs, int n, float* logits, const char* want) {
  if (n <= 0) throw std::invalid_argument("eval_batch needs at least one token");
  if (n > opts_.n_batch)
    throw std::invalid_argument("eval_batch: " + std::to_string(n) + " tokens exceed n_batch " +
                                std::to_string(opts_.n_batch));
  check_tokens(tokens, n);
  for (int i = 0; i < n; ++i) use_sequence(seqs[i]);
  const std::vector<int> pos = book_.positions(seqs, n);
  const std::vector<char> want_all(want ? 0 : size_t(n), 1);
  book_.touch();
  forward(Batch{tokens, seqs, pos.data(), want ? want : want_all.data(), n}, logits);
  book_.append(tokens, seqs, n);
}

void Model::truncate(int n_keep, int seq) { book_.truncate(seq, n_keep); }

void Model::reset() { book_.clear(); }

// ---------------------------------------------------------------- the forward pass

void Model::forward(const Batch& batch, float* logits) {
  Backend& be = *backend_;
  const HParams& hp = hp_;
  const int64_t E = hp.n_embd, F = hp.n_ff, kv_dim = hp.kv_dim();
  Activations& a = *act_;
  int m = batch.n;  // rows in flight; the last block keeps only the rows whose logits are wanted

  embed(batch, a);
  for (int il = 0; il < hp.n_layer; ++il) {
    const LayerWeights& L = w_.layers[size_t(il)];

    // Attention: pre-LayerNorm, fused QKV projection, keys/values into the
    // cache, causal attention over the cache, output projection, residual.
    be.layer_norm(a.x, *L.attn_norm_w, *L.attn_norm_b, m, E, hp.norm_eps, a.h);
    be.linear(L.attn_qkv, L.attn_qkv_b.get(), a.h, m, a.qkv);
    be.kv_write(*cache_, il, a.qkv.at(0, E), a.qkv.at(0, E + kv_dim), batch.seqs, batch.pos, m);
    attend(il, batch, a);
    if (il == hp.n_layer - 1 && (m = keep_output_rows(batch, m, a)) == 0) {
      be.sync();  // no logits wanted (a prompt chunk): the keys and values were all it had to give
      return;
    }
    be.linear(L.attn_out, L.attn_out_b.get(), a.attn, m, a.h);
    be.add(a.x, a.h, m, E);

    // MLP: pre-LayerNorm, up projection, GELU, down projection, residual.
    be.layer_norm(a.x, *L.ffn_norm_w, *L.ffn_norm_b, m, E, hp.norm_eps, a.h);
    be.linear(L.ffn_up, L.ffn_up_b.get(), a.h, m, a.ff);
    be.gelu(a.ff, m, F, hp.gelu_exact);
    be.linear(L.ffn_down, L.ffn_down_b.get(), a.ff, m, a.h);
    be.add(a.x, a.h, m, E);
  }
  output_logits(m, a, logits);
}

// Token embedding + learned absolute position embedding.
void Model::embed(const Batch& batch, Activations& a) {
  Backend& be = *backend_;
  be.get_rows(w_.tok_embd, batch.tokens, batch.n, a.x);
  be.get_rows(w_.pos_embd, batch.pos, batch.n, a.h);
  be.add(a.x, a.h, batch.n, hp_.n_embd);
}

// One attention call per run of consecutive tokens of one sequence.
void Model::attend(int layer, const Batch& batch, Activations& a) {
  const HParams& hp = hp_;
  for (int t0 = 0; t0 < batch.n;) {
    int t1 = t0 + 1;
    while (t1 < batch.n && batch.seqs[t1] == batch.seqs[t0] && batch.pos[t1] == batch.pos[t1 - 1] + 1) ++t1;
    AttentionOp op;
    op.q = a.qkv.at(t0);
    op.cache = cache_.get();
    op.layer = layer;
    op.seq = batch.seqs[t0];
    op.n_tokens = t1 - t0;
    op.n_past = batch.pos[t0];
    op.n_head = hp.n_head;
    op.n_head_kv = hp.n_head_kv;
    op.head_dim = hp.head_dim;
    op.scale = 1.0f / std::sqrt(float(hp.head_dim));
    op.out = a.attn.at(t0);
    backend_->attention(op);
    t0 = t1;
  }
}

// After the last block's attention only the rows whose logits are wanted
// matter (llama.cpp's output ids): their attention output and residual are
// gathered to the front, and the rest of the block runs on them alone.
// Returns the number of rows kept.
int Model::keep_output_rows(const Batch& batch, int n_rows, Activations& a) {
  std::vector<int> keep;
  for (int t = 0; t < n_rows; ++t)
    if (batch.want[t]) keep.push_back(t);
  const int n_keep = int(keep.size());
  if (n_keep == n_rows || n_keep == 0) return n_keep;
  Backend& be = *backend_;
  // h and ff are free here: gather into them, then swap the views.
  be.gather_rows(a.attn, keep.data(), n_keep, hp_.n_embd, a.h);
  std::swap(a.attn, a.h);
  std::swap(a.attn_buf, a.h_buf);
  be.gather_rows(a.x, keep.data(), n_keep, hp_.n_embd, a.h);
  std::swap(a.x, a.h);
  std::swap(a.x_buf, a.h_buf);
  return n_keep;
}

// Final LayerNorm and LM head of the kept rows, then the one copy to the host.
void Model::output_logits(int n_rows, Activations& a, float* logits) {
  Backend& be = *backend_;
  const int64_t V = hp_.n_vocab;
  if (n_rows == 0) return;
  be.layer_norm(a.x, *w_.out_norm_w, *w_.out_norm_b, n_rows, hp_.n_embd, hp_.norm_eps, a.h);
  const size_t bytes = size_t(n_rows) * size_t(V) * sizeof(float);
  // The CPU writes straight into the caller's array; a GPU computes into its
  // own buffer and downloads it.
  BufferPtr host = be.wrap_host(logits, bytes);
  if (!host && (!a.logits || a.logits->size() < bytes)) a.logits = be.alloc(bytes);
  Buffer& out = host ? *host : *a.logits;
  be.linear(w_.lm_head(), nullptr, a.h, n_rows, Rows{out.f32(), V});
  if (!host) be.download(out, 0, logits, bytes);
  be.sync();
}

}  // namespace sc
