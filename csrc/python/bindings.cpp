// Python module starcoder_cpp._core: a thin layer over the C++ API. Every
// call that does real work releases the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <mutex>
#include <string>

#include "backend/registry.h"
#include "runtime/completion.h"
#include "util/errors.h"
#include "util/thread_pool.h"
#include "runtime/generate.h"
#include "runtime/sampling.h"
#include "format/gguf.h"
#include "model/model.h"
#include "text/tokenizer.h"

namespace py = pybind11;
using namespace sc;

// bindings_quant.cpp
void register_quant_bindings(pybind11::module_& m);
// bindings_engine.cpp
void register_engine_bindings(pybind11::module_& m);
// bindings_peaks.cpp
void register_peaks_bindings(pybind11::module_& m);

namespace {

// A tokenizer loaded on its own (a vocab-only GGUF, or a model file).
struct PyTokenizer {
  std::unique_ptr<GGUFFile> file;
  std::unique_ptr<Tokenizer> tok;
  explicit PyTokenizer(const std::string& path) {
    file = GGUFFile::open(path);
    tok = std::make_unique<Tokenizer>(*file);
  }
};

std::vector<int32_t> encode(const Tokenizer& tok, const std::string& text, bool special) {
  py::gil_scoped_release nogil;
  return tok.encode(text, special);
}

py::bytes decode(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  std::string s;
  {
    py::gil_scoped_release nogil;
    s = tok.decode(ids);
  }
  return py::bytes(s);
}

// A model plus the lock that serialises calls touching its KV cache: with the
// GIL released, two Python threads could otherwise run eval at once.
struct PyModel {
  std::unique_ptr<Model> model;
  std::mutex mu;
};

// Token ids as int32. Accepts a numpy array of an integer dtype or a sequence
// of Python / numpy integers; anything else (floats, strings, bools) is a
// TypeError naming the argument, since silently truncating 1.9 to 1 or
// parsing '5' hides a caller's bug.
std::vector<int32_t> to_ids(const py::handle& tokens, const char* name = "tokens") {
  const std::string arg(name);
  auto check_range = [&](long long v) {
    if (v < INT32_MIN || v > INT32_MAX) throw py::value_error("token id " + std::to_string(v) + " in " + arg + " is out of range");
    return int32_t(v);
  };
  if (py::isinstance<py::array>(tokens)) {
    py::array a = py::reinterpret_borrow<py::array>(tokens);
    const char kind = a.dtype().kind();
    if (kind != 'i' && kind != 'u')
      throw py::type_error(arg + " must be token ids (integers), not an array of " + std::string(py::str(a.dtype())));
    if (a.ndim() != 1) throw py::value_error(arg + " must be one-dimensional");
    auto arr = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
    if (!arr) throw py::type_error(arg + " must be token ids (integers)");
    std::vector<int32_t> ids(size_t(arr.size()));
    const int64_t* p = arr.data();
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = check_range(p[i]);
    return ids;
  }
  if (py::isinstance<py::str>(tokens) || py::isinstance<py::bytes>(tokens) || !py::isinstance<py::sequence>(tokens))
    throw py::type_error(arg + " must be a sequence of token ids (integers), not " +
                         std::string(Py_TYPE(tokens.ptr())->tp_name));
  py::sequence seq = py::reinterpret_borrow<py::sequence>(tokens);
  std::vector<int32_t> ids;
  ids.reserve(seq.size());
  for (size_t i = 0; i < seq.size(); ++i) {
    py::object v = seq[i];
    // __index__ is Python's "is an integer" (int, numpy integers); bool has
    // it too but True is no token id.
    if (PyBool_Check(v.ptr()) || !PyIndex_Check(v.ptr()))
      throw py::type_error(arg + " must hold token ids (integers); element " + std::to_string(i) + " is " +
                           std::string(Py_TYPE(v.ptr())->tp_name) + " " + std::string(py::repr(v)));
    int overflow = 0;
    py::object as_int = py::reinterpret_steal<py::object>(PyNumber_Index(v.ptr()));
    if (!as_int) throw py::error_already_set();
    const long long x = PyLong_AsLongLongAndOverflow(as_int.ptr(), &overflow);
    if (overflow) throw py::value_error("token id " + std::string(py::str(as_int)) + " in " + arg + " is out of range");
    ids.push_back(check_range(x));
  }
  return ids;
}

py::dict metadata_dict(const GGUFFile& f) {
  // Scalars and strings only; big arrays (the vocabulary) are summarised.
  py::dict d;
  for (const auto& [k, v] : f.metadata()) {
    switch (v.type) {
      case GGUFType::STRING: d[py::str(k)] = py::str(std::string(v.str)); break;
      case GGUFType::FLOAT32: case GGUFType::FLOAT64: d[py::str(k)] = v.f; break;
      case GGUFType::BOOL: d[py::str(k)] = v.b; break;
      case GGUFType::ARRAY:
        d[py::str(k)] = py::str("<array of " + std::to_string(v.count) + " " + gguf_type_name(v.elem_type) + ">");
        break;
      default: d[py::str(k)] = v.i; break;
    }
  }
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "starcoder-cpp native core";

  static py::exception<GGUFError> gguf_error(m, "GGUFError", PyExc_ValueError);
  static py::exception<ModelError> model_error(m, "ModelError", PyExc_ValueError);
  static py::exception<ContextOverflowError> ctx_error(m, "ContextOverflowError", PyExc_ValueError);
  static py::exception<BackendUnavailableError> backend_error(m, "BackendError", PyExc_RuntimeError);
  static py::exception<MemoryLimitError> memory_error(m, "MemoryLimitError", PyExc_MemoryError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const GGUFError& e) {
      py::set_error(gguf_error, e.what());
    } catch (const ModelError& e) {
      py::set_error(model_error, e.what());
    } catch (const ContextOverflowError& e) {
      py::set_error(ctx_error, e.what());
    } catch (const BackendUnavailableError& e) {
      py::set_error(backend_error, e.what());
    } catch (const MemoryLimitError& e) {
      py::set_error(memory_error, e.what());
    }
  });

  m.def(
      "token_ids", [](const py::handle& ids, const std::string& name) { return to_ids(ids, name.c_str()); },
      py::arg("ids"), py::arg("name") = "tokens",
      "Token ids as a list of ints; TypeError naming `name` unless they are integers.");

  m.def(
      "inspect_gguf",
      [](const std::string& path) {
        std::unique_ptr<GGUFFile> f;
        {
          py::gil_scoped_release nogil;
          f = GGUFFile::open(path);
        }
        py::list tensors;
        for (const GGUFTensor& t : f->tensors()) {
          py::list shape;
          for (int d = 0; d < t.n_dims; ++d) shape.append(t.ne[d]);
          py::dict row;
          row["name"] = t.name;
          row["type"] = tensor_type_name(t.type);
          row["shape"] = shape;  // GGUF order: shape[0] is the row length
          row["offset"] = t.offset;
          row["n_bytes"] = t.n_bytes;
          tensors.append(row);
        }
        py::dict out;
        out["version"] = f->version();
        out["alignment"] = f->alignment();
        out["metadata"] = metadata_dict(*f);
        out["tensors"] = tensors;
        return out;
      },
      py::arg("path"), "Reads and validates a GGUF file's header: version, metadata, tensor table.");

  py::class_<SamplingParams>(m, "SamplingParams")
      .def(py::init<>())
      .def_readwrite("temperature", &SamplingParams::temperature)
      .def_readwrite("top_k", &SamplingParams::top_k)
      .def_readwrite("top_p", &SamplingParams::top_p)
      .def_readwrite("min_p", &SamplingParams::min_p)
      .def_readwrite("repeat_penalty", &SamplingParams::repeat_penalty)
      .def_readwrite("repeat_last_n", &SamplingParams::repeat_last_n)
      .def_readwrite("seed", &SamplingParams::seed)
      .def("check", &check_sampling_params);

  m.def(
      "sampling_distribution",
      [](py::array_t<float, py::array::c_style | py::array::forcecast> logits, const SamplingParams& p,
         const std::vector<int32_t>& recent) {
        if (logits.ndim() != 1) throw py::value_error("logits must be one-dimensional");
        std::vector<float> l(logits.data(), logits.data() + logits.size());
        Sampler sampler(p);
        return sampler.distribution(l.data(), int(l.size()), recent);
      },
      py::arg("logits"), py::arg("params"), py::arg("recent") = std::vector<int32_t>{},
      "The (token, probability) pairs a sampler with these params draws from, best first.");

  m.def(
      "sample_tokens",
      [](py::array_t<float, py::array::c_style | py::array::forcecast> logits, const SamplingParams& p, int n) {
        if (logits.ndim() != 1) throw py::value_error("logits must be one-dimensional");
        Sampler sampler(p);
        std::vector<int32_t> out;
        std::vector<float> l;
        for (int i = 0; i < n; ++i) {
          l.assign(logits.data(), logits.data() + logits.size());
          out.push_back(sampler.sample(l.data(), int(l.size()), {}));
        }
        return out;
      },
      py::arg("logits"), py::arg("params"), py::arg("n"),
      "Draws n tokens from fixed logits with one seeded sampler (no repeat penalty history).");

  py::class_<PyTokenizer>(m, "Tokenizer")
      .def(py::init([](const std::string& path) {
             py::gil_scoped_release nogil;
             return std::make_unique<PyTokenizer>(path);
           }),
           py::arg("path"))
      .def("encode", [](const PyTokenizer& t, const std::string& text, bool special) { return encode(*t.tok, text, special); },
           py::arg("text"), py::arg("special") = false)
      .def("decode", [](const PyTokenizer& t, const py::handle& ids) { return decode(*t.tok, to_ids(ids, "ids")); }, py::arg("ids"))
      .def("token_bytes", [](const PyTokenizer& t, int32_t id) { return py::bytes(t.tok->token_bytes(id)); })
      .def("token_id", [](const PyTokenizer& t, const std::string& s) { return t.tok->token_id(s); })
      .def("is_special", [](const PyTokenizer& t, int32_t id) { return t.tok->is_special(id); })
      .def_property_readonly("n_vocab", [](const PyTokenizer& t) { return t.tok->n_vocab(); })
      .def_property_readonly("bos_id", [](const PyTokenizer& t) { return t.tok->bos_id(); })
      .def_property_readonly("eos_id", [](const PyTokenizer& t) { return t.tok->eos_id(); })
      .def_property_readonly("metadata", [](const PyTokenizer& t) { return metadata_dict(*t.file); });

  // A running completion. Holds the model alive; each next() takes the
  // model's lock, so other calls may interleave between pieces (the
  // completion notices and restores its cache).
  struct PyCompletion {
    std::shared_ptr<PyModel> owner;
    std::unique_ptr<Completion> c;
  };
  py::class_<PyCompletion>(m, "Completion")
      .def("next",
           [](PyCompletion& pc) -> py::object {
             std::string piece;
             bool more;
             {
               py::gil_scoped_release nogil;
               std::lock_guard<std::mutex> lock(pc.owner->mu);
               more = pc.c->next(&piece);
             }
             if (!more) return py::none();
             return py::bytes(piece);
           },
           "The next piece of text (bytes, valid UTF-8 except possibly the last), or None when done.")
      .def_property_readonly("finish_reason", [](const PyCompletion& pc) -> py::object {
        if (!pc.c->finished()) return py::none();
        return py::str(finish_reason_name(pc.c->finish_reason()));
      })
      .def_property_readonly("n_prompt_tokens", [](const PyCompletion& pc) { return pc.c->n_prompt_tokens(); })
      .def_property_readonly("n_reused_tokens", [](const PyCompletion& pc) { return pc.c->n_reused_tokens(); })
      .def_property_readonly("generated", [](const PyCompletion& pc) { return pc.c->generated(); });

  py::class_<PyModel, std::shared_ptr<PyModel>>(m, "Model")
      .def(py::init([](const std::string& path, int n_ctx, int n_threads, int n_batch, const std::string& kv_type,
                       const std::string& backend, const std::string& matmul_precision) {
             ModelOptions o;
             o.backend = backend;
             o.matmul_precision = matmul_precision;
             o.n_ctx = n_ctx;
             o.n_threads = n_threads;
             o.n_batch = n_batch;
             if (kv_type == "f16") o.kv_type = sc::TensorType::F16;
             else if (kv_type == "f32") o.kv_type = sc::TensorType::F32;
             else if (kv_type == "q8_0") o.kv_type = sc::TensorType::Q8_0;
             else throw py::value_error("kv_type must be 'f16', 'f32' or 'q8_0', got '" + kv_type + "'");
             auto pm = std::make_shared<PyModel>();
             py::gil_scoped_release nogil;
             pm->model = std::make_unique<Model>(path, o);
             return pm;
           }),
           py::arg("path"), py::arg("n_ctx") = 0, py::arg("n_threads") = 0, py::arg("n_batch") = 512,
           py::arg("kv_type") = "f16", py::arg("backend") = "cpu", py::arg("matmul_precision") = "f32")
      .def("eval",
           [](PyModel& pm, const py::handle& tokens, bool all_logits) {
             const std::vector<int32_t> ids = to_ids(tokens);
             const int n = int(ids.size());
             const py::ssize_t n_vocab = pm.model->hparams().n_vocab;
             py::array_t<float> out = all_logits ? py::array_t<float>({py::ssize_t(n), n_vocab})
                                                 : py::array_t<float>(n_vocab);
             float* dst = out.mutable_data();
             {
               py::gil_scoped_release nogil;
               std::lock_guard<std::mutex> lock(pm.mu);
               pm.model->eval(ids.data(), n, all_logits, dst);
             }
             return out;
           },
           py::arg("tokens"), py::arg("all_logits") = false)
      .def("start_completion",
           [](std::shared_ptr<PyModel> pm, const py::handle& tokens, const SamplingParams& sp, int max_tokens,
              const std::vector<std::string>& stop, const std::vector<int32_t>& stop_ids) {
             CompletionParams cp{sp, max_tokens, stop, stop_ids};
             auto pc = std::make_unique<PyCompletion>();
             pc->owner = pm;
             pc->c = std::make_unique<Completion>(*pm->model, to_ids(tokens), cp);
             return pc;
           },
           py::arg("tokens"), py::arg("params"), py::arg("max_tokens"), py::arg("stop"), py::arg("stop_ids"))
      .def("generate_greedy",
           [](PyModel& pm, const py::handle& tokens, int max_new_tokens, const std::vector<int32_t>& stop_ids) {
             const std::vector<int32_t> ids = to_ids(tokens);
             py::gil_scoped_release nogil;
             std::lock_guard<std::mutex> lock(pm.mu);
             return generate_greedy(*pm.model, ids, max_new_tokens, stop_ids);
           },
           py::arg("tokens"), py::arg("max_new_tokens"), py::arg("stop_ids") = std::vector<int32_t>{})
      .def("complete_batch",
           [](PyModel& pm, const std::vector<std::vector<int32_t>>& prompts, const SamplingParams& sp, int max_tokens,
              const std::vector<std::string>& stop, const std::vector<int32_t>& stop_ids) {
             CompletionParams cp{sp, max_tokens, stop, stop_ids};
             std::vector<BatchResult> results;
             {
               py::gil_scoped_release nogil;
               std::lock_guard<std::mutex> lock(pm.mu);
               results = complete_batch(*pm.model, prompts, cp);
             }
             py::list out;
             for (const BatchResult& r : results)
               out.append(py::make_tuple(py::bytes(r.text), finish_reason_name(r.finish), r.n_tokens));
             return out;
           },
           py::arg("prompts"), py::arg("params"), py::arg("max_tokens"), py::arg("stop"), py::arg("stop_ids"))
      .def("truncate",
           [](PyModel& pm, int n_keep) {
             py::gil_scoped_release nogil;
             std::lock_guard<std::mutex> lock(pm.mu);
             pm.model->truncate(n_keep);
           },
           py::arg("n_keep"))
      .def("reset",
           [](PyModel& pm) {
             py::gil_scoped_release nogil;
             std::lock_guard<std::mutex> lock(pm.mu);
             pm.model->reset();
           })
      .def("encode", [](const PyModel& pm, const std::string& text, bool special) { return encode(pm.model->tokenizer(), text, special); },
           py::arg("text"), py::arg("special") = false)
      .def("decode", [](const PyModel& pm, const py::handle& ids) { return decode(pm.model->tokenizer(), to_ids(ids, "ids")); }, py::arg("ids"))
      .def("token_bytes", [](const PyModel& pm, int32_t id) { return py::bytes(pm.model->tokenizer().token_bytes(id)); })
      .def("token_id", [](const PyModel& pm, const std::string& s) { return pm.model->tokenizer().token_id(s); })
      .def_property_readonly("n_past", [](PyModel& pm) {
        std::lock_guard<std::mutex> lock(pm.mu);
        return pm.model->n_past();
      })
      .def_property_readonly("history", [](PyModel& pm) {
        std::lock_guard<std::mutex> lock(pm.mu);
        return pm.model->history();
      })
      .def_property_readonly("n_ctx", [](const PyModel& pm) { return pm.model->n_ctx(); })
      .def_property_readonly("n_vocab", [](const PyModel& pm) { return pm.model->hparams().n_vocab; })
      .def_property_readonly("n_ctx_train", [](const PyModel& pm) { return pm.model->hparams().n_ctx_train; })
      .def_property_readonly("n_embd", [](const PyModel& pm) { return pm.model->hparams().n_embd; })
      .def_property_readonly("n_ff", [](const PyModel& pm) { return pm.model->hparams().n_ff; })
      .def_property_readonly("n_layer", [](const PyModel& pm) { return pm.model->hparams().n_layer; })
      .def_property_readonly("n_head", [](const PyModel& pm) { return pm.model->hparams().n_head; })
      .def_property_readonly("n_head_kv", [](const PyModel& pm) { return pm.model->hparams().n_head_kv; })
      .def_property_readonly("n_threads", [](const PyModel& pm) { return pm.model->options().n_threads; })
      .def_property_readonly("backend", [](const PyModel& pm) { return pm.model->backend().name(); })
      .def_property_readonly("backend_note", [](const PyModel& pm) { return pm.model->backend_note(); })
      .def_property_readonly("kv_type", [](const PyModel& pm) { return sc::tensor_type_name(pm.model->kv_type()); })
      .def_property_readonly("matmul_precision", [](const PyModel& pm) { return pm.model->backend().matmul_precision(); })
      .def_property_readonly("kv_bytes_per_seq", [](const PyModel& pm) { return pm.model->kv_bytes_per_seq(); })
      .def_property_readonly("bos_id", [](const PyModel& pm) { return pm.model->tokenizer().bos_id(); })
      .def_property_readonly("eos_id", [](const PyModel& pm) { return pm.model->tokenizer().eos_id(); })
      .def_property_readonly("metadata", [](const PyModel& pm) { return metadata_dict(pm.model->file()); })
      .def_property_readonly("tensor_types", [](const PyModel& pm) {
        py::dict d;
        for (const GGUFTensor& t : pm.model->file().tensors()) d[py::str(t.name)] = tensor_type_name(t.type);
        return d;
      });

  m.def("backend_names", &sc::backend_names, "Backend names Model(backend=...) knows (not all may run here).");
  m.def("resolve_thread_count", &sc::resolve_thread_count, py::arg("n_threads"),
        "n_threads, or all cores for 0; ValueError above 4x the cores this process may use.");

  register_quant_bindings(m);
  register_engine_bindings(m);
  register_peaks_bindings(m);
}
