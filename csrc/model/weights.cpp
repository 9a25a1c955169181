#include "model/weights.h"

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "util/errors.h"

namespace sc {
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

Weight matrix(const GGUFFile& f, Backend& be, const std::string& name, int64_t n_in, int64_t n_out) {
  const GGUFTensor& t = require(f, name);
  if (t.n_dims != 2 || t.ne[0] != n_in || t.ne[1] != n_out)
    throw ModelError(f.path() + ": tensor '" + name + "' has shape " + shape_str(t) + ", expected [" +
                     std::to_string(n_in) + ", " + std::to_string(n_out) + "]");
  if (!be.supports(t.type))
    throw ModelError(f.path() + ": tensor '" + name + "' has type " + tensor_type_name(t.type) + ", which the " +
                     be.name() + " backend cannot run");
  HostMatrix m;
  m.type = t.type;
  m.n_in = n_in;
  m.n_out = n_out;
  m.data = t.data;
  return be.prepare_weight(m);
}

// A 1-D parameter (norm or bias) as float32 in backend memory.
BufferPtr vector_f32(const GGUFFile& f, Backend& be, const std::string& name, int64_t n, bool optional = false) {
  const GGUFTensor* t = f.find_tensor(name);
  if (!t) {
    if (optional) return nullptr;
    throw ModelError(f.path() + ": missing tensor '" + name + "'");
  }
  if (t->n_elements() != n || t->ne[0] != n)
    throw ModelError(f.path() + ": tensor '" + name + "' has shape " + shape_str(*t) + ", expected [" +
                     std::to_string(n) + "]");
  std::vector<float> host(static_cast<size_t>(n));
  switch (t->type) {
    case TensorType::F32: std::memcpy(host.data(), t->data, size_t(n) * 4); break;
    case TensorType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t->data + 2 * i, 2);
        host[size_t(i)] = fp16_to_fp32(h);
      }
      break;
    default:
      throw ModelError(f.path() + ": tensor '" + name + "' has type " + tensor_type_name(t->type) +
                       "; 1-D tensors must be f32 or f16");
  }
  BufferPtr buf = be.alloc(size_t(n) * 4);
  be.upload(*buf, 0, host.data(), size_t(n) * 4);
  return buf;
}

// The biases are optional, but a model has each kind in every layer or in
// none: one missing where the others have it is a damaged or misnamed file,
// and computing that layer without it would give silently wrong logits.
void check_biases(const GGUFFile& f, const HParams& hp) {
  for (const char* kind : {"attn_qkv.bias", "attn_output.bias", "ffn_up.bias", "ffn_down.bias"}) {
    std::vector<int> missing;
    for (int i = 0; i < hp.n_layer; ++i)
      if (!f.find_tensor("blk." + std::to_string(i) + "." + kind)) missing.push_back(i);
    if (missing.empty() || int(missing.size()) == hp.n_layer) continue;
    std::string list;
    for (size_t k = 0; k < missing.size() && k < 8; ++k) list += (k ? ", " : "") + std::string("blk.") +
                                                                   std::to_string(missing[k]) + "." + kind;
    if (missing.size() > 8) list += ", ...";
    throw ModelError(f.path() + ": " + std::to_string(missing.size()) + " of " + std::to_string(hp.n_layer) +
                     " layers have no " + kind + " while the others do (missing: " + list + ")");
  }
}

// Every tensor in the file must be one the model reads: an extra one is most
// likely a misnamed tensor the model needs (and, if optional, would run without).
void check_all_used(const GGUFFile& f, const HParams& hp) {
  std::set<std::string> known = {"token_embd.weight", "position_embd.weight", "output_norm.weight",
                                 "output_norm.bias", "output.weight"};
  for (int i = 0; i < hp.n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    for (const char* n : {"attn_norm.weight", "attn_norm.bias", "attn_qkv.weight", "attn_qkv.bias",
                          "attn_output.weight", "attn_output.bias", "ffn_norm.weight", "ffn_norm.bias",
                          "ffn_up.weight", "ffn_up.bias", "ffn_down.weight", "ffn_down.bias"})
      known.insert(p + n);
  }
  std::vector<std::string> unused;
  for (const GGUFTensor& t : f.tensors())
    if (!known.count(t.name)) unused.push_back(t.name);
  if (unused.empty()) return;
  std::string list;
  for (size_t k = 0; k < unused.size() && k < 8; ++k) list += (k ? ", '" : "'") + unused[k] + "'";
  if (unused.size() > 8) list += ", ...";
  throw ModelError(f.path() + ": " + std::to_string(unused.size()) +
                   " tensor(s) that a " + std::to_string(hp.n_layer) +
                   "-layer starcoder model does not use: " + list + " (misnamed, or from another architecture)");
}

}  // namespace

constexpr int64_t kTensorsPerBlock = 8;  // two LayerNorms (weight, bias) and four matrices

ModelWeights load_weights(const GGUFFile& f, const HParams& hp, Backend& be) {
  const int64_t E = hp.n_embd, F = hp.n_ff, V = hp.n_vocab, QKV = hp.qkv_dim();
  // Every block has at least its 8 norm and matrix tensors: a block count the
  // tensor table cannot hold is refused before any per-layer work (a forged
  // block_count of 2^24 would otherwise cost seconds of name lookups).
  if (int64_t(hp.n_layer) * kTensorsPerBlock > int64_t(f.tensors().size()))
    throw ModelError(f.path() + ": block_count is " + std::to_string(hp.n_layer) + " but the file holds only " +
                     std::to_string(f.tensors().size()) + " tensors (each block needs " +
                     std::to_string(kTensorsPerBlock) + ")");
  check_biases(f, hp);  // first: a misnamed bias is best reported as the missing one
  check_all_used(f, hp);
  ModelWeights w;
  w.tok_embd = matrix(f, be, "token_embd.weight", E, V);
  w.pos_embd = matrix(f, be, "position_embd.weight", E, hp.n_ctx_train);
  w.out_norm_w = vector_f32(f, be, "output_norm.weight", E);
  w.out_norm_b = vector_f32(f, be, "output_norm.bias", E);
  if (f.find_tensor("output.weight")) w.output = matrix(f, be, "output.weight", E, V);

  w.layers.resize(size_t(hp.n_layer));
  for (int i = 0; i < hp.n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LayerWeights& L = w.layers[size_t(i)];
    L.attn_norm_w = vector_f32(f, be, p + "attn_norm.weight", E);
    L.attn_norm_b = vector_f32(f, be, p + "attn_norm.bias", E);
    L.attn_qkv = matrix(f, be, p + "attn_qkv.weight", E, QKV);
    L.attn_qkv_b = vector_f32(f, be, p + "attn_qkv.bias", QKV, true);
    L.attn_out = matrix(f, be, p + "attn_output.weight", E, E);
    L.attn_out_b = vector_f32(f, be, p + "attn_output.bias", E, true);
    L.ffn_norm_w = vector_f32(f, be, p + "ffn_norm.weight", E);
    L.ffn_norm_b = vector_f32(f, be, p + "ffn_norm.bias", E);
    L.ffn_up = matrix(f, be, p + "ffn_up.weight", E, F);
    L.ffn_up_b = vector_f32(f, be, p + "ffn_up.bias", F, true);
    L.ffn_down = matrix(f, be, p + "ffn_down.weight", F, E);
    L.ffn_down_b = vector_f32(f, be, p + "ffn_down.bias", E, true);
  }
  return w;
}

}  // namespace sc
