// _testing hooks that run one backend op through the seam on a backend chosen
// by name ("cpu", "cuda"): upload the inputs, run the op, download the
// result. The CUDA test module (tests/test_cuda.py) holds every op of the
// CUDA backend against the CPU backend with them; on the CPU they run too.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "backend/registry.h"
#include "python/array_args.h"

namespace py = pybind11;
using sc::Backend;
using sc::BufferPtr;
using sc::Rows;
using sc::TensorType;
using scpy::ByteArray;
using scpy::FloatArray;

namespace {

std::unique_ptr<Backend> backend_named(const std::string& name) {
  sc::BackendOptions o;
  o.name = name;
  o.n_threads = 2;
  return sc::make_backend(o);
}

BufferPtr upload(Backend& be, const float* p, size_t n) {
  BufferPtr b = be.alloc(n * 4);
  be.upload(*b, 0, p, n * 4);
  return b;
}

FloatArray download(Backend& be, const sc::Buffer& b, std::vector<py::ssize_t> shape) {
  FloatArray out(shape);
  be.download(b, 0, out.mutable_data(), size_t(out.size()) * 4);
  be.sync();
  return out;
}

FloatArray rows2d(FloatArray x, const char* what) {
  if (x.ndim() != 2) throw py::value_error(std::string(what) + " must be two-dimensional");
  return x;
}

}  // namespace

void register_backend_op_hooks(py::module_& m) {
  m.def(
      "op_linear",
      [](const std::string& backend, const py::object& w_bytes, const std::string& type, int64_t n_out, int64_t n_in,
         FloatArray x, py::object bias) {
        const TensorType t = scpy::parse_type_name(type);
        int64_t n_rows, n;
        ByteArray w = scpy::checked_bytes(w_bytes, t, {n_out, n_in}, &n_rows, &n);
        rows2d(x, "x");
        if (x.shape(1) != n_in) throw py::value_error("x must have n_in columns");
        auto be = backend_named(backend);
        const sc::Weight wt = be->prepare_weight(sc::HostMatrix{t, n_in, n_out, w.data()});
        BufferPtr b;
        if (!bias.is_none()) {
          FloatArray ba = bias.cast<FloatArray>();
          if (ba.size() != n_out) throw py::value_error("bias must have n_out elements");
          b = upload(*be, ba.data(), size_t(n_out));
        }
        const int nt = int(x.shape(0));
        BufferPtr xb = upload(*be, x.data(), size_t(x.size()));
        BufferPtr yb = be->alloc(size_t(nt) * size_t(n_out) * 4);
        be->linear(wt, b.get(), Rows{xb->f32(), n_in}, nt, Rows{yb->f32(), n_out});
        return download(*be, *yb, {nt, py::ssize_t(n_out)});
      },
      py::arg("backend"), py::arg("w"), py::arg("type"), py::arg("n_out"), py::arg("n_in"), py::arg("x"),
      py::arg("bias") = py::none(), "y = x W^T (+ bias) through backend.linear().");

  m.def(
      "op_get_rows",
      [](const std::string& backend, const py::object& w_bytes, const std::string& type, int64_t n_rows_total,
         int64_t n_in, const std::vector<int32_t>& ids) {
        const TensorType t = scpy::parse_type_name(type);
        int64_t n_rows, n;
        ByteArray w = scpy::checked_bytes(w_bytes, t, {n_rows_total, n_in}, &n_rows, &n);
        for (int32_t id : ids)
          if (id < 0 || id >= n_rows_total) throw py::index_error("row id out of range");
        auto be = backend_named(backend);
        const sc::Weight wt = be->prepare_weight(sc::HostMatrix{t, n_in, n_rows_total, w.data()});
        BufferPtr ob = be->alloc(ids.size() * size_t(n_in) * 4);
        be->get_rows(wt, ids.data(), int(ids.size()), Rows{ob->f32(), n_in});
        return download(*be, *ob, {py::ssize_t(ids.size()), py::ssize_t(n_in)});
      },
      py::arg("backend"), py::arg("w"), py::arg("type"), py::arg("n_rows"), py::arg("n_in"), py::arg("ids"),
      "Rows ids of a weight as float32 through backend.get_rows().");

  m.def(
      "op_elementwise",
      [](const std::string& backend, const std::string& op, FloatArray x, py::object other, float eps) {
        rows2d(x, "x");
        const int nt = int(x.shape(0));
        const int64_t n = x.shape(1);
        auto be = backend_named(backend);
        BufferPtr xb = upload(*be, x.data(), size_t(x.size()));
        if (op == "gelu_tanh" || op == "gelu_erf") {
          be->gelu(Rows{xb->f32(), n}, nt, n, op == "gelu_erf");
          return download(*be, *xb, {nt, py::ssize_t(n)});
        }
        if (op == "add") {
          FloatArray y = rows2d(other.cast<FloatArray>(), "other");
          if (y.size() != x.size()) throw py::value_error("other must have x's shape");
          BufferPtr yb = upload(*be, y.data(), size_t(y.size()));
          be->add(Rows{yb->f32(), n}, Rows{xb->f32(), n}, nt, n);
          return download(*be, *yb, {nt, py::ssize_t(n)});
        }
        if (op == "layer_norm") {
          FloatArray gb = rows2d(other.cast<FloatArray>(), "other");
          if (gb.shape(0) != 2 || gb.shape(1) != n) throw py::value_error("other must be [gamma, beta]");
          BufferPtr g = upload(*be, gb.data(), size_t(n)), b = upload(*be, gb.data() + n, size_t(n));
          BufferPtr yb = be->alloc(size_t(x.size()) * 4);
          be->layer_norm(Rows{xb->f32(), n}, *g, *b, nt, n, eps, Rows{yb->f32(), n});
          return download(*be, *yb, {nt, py::ssize_t(n)});
        }
        if (op == "gather_rows") {
          std::vector<int> rows = other.cast<std::vector<int>>();
          for (int r : rows)
            if (r < 0 || r >= nt) throw py::index_error("row out of range");
          BufferPtr yb = be->alloc(rows.size() * size_t(n) * 4 + 4);
          be->gather_rows(Rows{xb->f32(), n}, rows.data(), int(rows.size()), n, Rows{yb->f32(), n});
          return download(*be, *yb, {py::ssize_t(rows.size()), py::ssize_t(n)});
        }
        throw py::value_error("op must be gelu_tanh, gelu_erf, add, layer_norm or gather_rows");
      },
      py::arg("backend"), py::arg("op"), py::arg("x"), py::arg("other") = py::none(), py::arg("eps") = 1e-5f,
      "One element-wise or row op through the backend: gelu_tanh / gelu_erf (x), add (other += x), "
      "layer_norm (other = [gamma, beta]), gather_rows (other = row list).");

  m.def(
      "op_attention",
      [](const std::string& backend, const std::string& kv_type, FloatArray q, FloatArray k, FloatArray v, int n_past,
         int n_head, int n_head_kv, int seq, int n_seq) {
        rows2d(q, "q");
        rows2d(k, "k");
        rows2d(v, "v");
        const TensorType t = scpy::parse_type_name(kv_type);
        if (n_head <= 0 || n_head_kv <= 0 || n_head % n_head_kv || q.shape(1) % n_head)
          throw py::value_error("bad head counts");
        const int d = int(q.shape(1) / n_head), nt = int(q.shape(0)), n_all = n_past + nt;
        const int64_t kv_dim = int64_t(n_head_kv) * d;
        if (k.shape(0) != n_all || v.shape(0) != n_all || k.shape(1) != kv_dim || v.shape(1) != kv_dim)
          throw py::value_error("k and v must have shape (n_past + n_tokens, n_head_kv * head_dim)");
        if (seq < 0 || seq >= n_seq) throw py::value_error("seq out of range");
        auto be = backend_named(backend);
        sc::KvCacheShape shape;
        shape.type = t;
        shape.n_layer = 2;
        shape.n_ctx = n_all;
        shape.n_seq = n_seq;
        shape.kv_dim = kv_dim;
        auto cache = be->make_kv_cache(shape);
        be->kv_reserve(*cache, seq);
        BufferPtr kb = upload(*be, k.data(), size_t(k.size())), vb = upload(*be, v.data(), size_t(v.size()));
        std::vector<int> seqs(static_cast<size_t>(n_all), seq), pos(static_cast<size_t>(n_all), 0);
        for (int i = 0; i < n_all; ++i) pos[size_t(i)] = i;
        // layer 1 of the cache, so that layer offsets are exercised
        be->kv_write(*cache, 1, Rows{kb->f32(), kv_dim}, Rows{vb->f32(), kv_dim}, seqs.data(), pos.data(), n_all);
        BufferPtr qb = upload(*be, q.data(), size_t(q.size()));
        BufferPtr ob = be->alloc(size_t(q.size()) * 4);
        sc::AttentionOp op;
        op.q = Rows{qb->f32(), q.shape(1)};
        op.cache = cache.get();
        op.layer = 1;
        op.seq = seq;
        op.n_tokens = nt;
        op.n_past = n_past;
        op.n_head = n_head;
        op.n_head_kv = n_head_kv;
        op.head_dim = d;
        op.scale = 1.0f / std::sqrt(float(d));
        op.out = Rows{ob->f32(), q.shape(1)};
        be->attention(op);
        return download(*be, *ob, {nt, q.shape(1)});
      },
      py::arg("backend"), py::arg("kv_type"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("n_past"),
      py::arg("n_head"), py::arg("n_head_kv"), py::arg("seq") = 0, py::arg("n_seq") = 1,
      "kv_write of all n_past + n_tokens keys/values of one sequence into a cache of kv_type, then attention of q "
      "(the last n_tokens positions) through the backend.");
}
