// starcoder_cpp._core.Engine: the serving engine with the model it owns.
// step() runs with the GIL released; the Python server calls it from one
// engine thread and only relays the events.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "model/model.h"
#include "runtime/engine.h"
#include "text/tokenizer.h"

namespace py = pybind11;
using namespace sc;

namespace {

struct PyEngine {
  std::unique_ptr<Model> model;
  std::unique_ptr<Engine> engine;
};

TensorType kv_type_from(const std::string& s) {
  if (s == "f16") return TensorType::F16;
  if (s == "f32") return TensorType::F32;
  if (s == "q8_0") return TensorType::Q8_0;
  throw py::value_error("kv_type must be 'f16', 'f32' or 'q8_0', got '" + s + "'");
}

}  // namespace

void register_engine_bindings(py::module_& m) {
  py::class_<PyEngine>(m, "Engine")
      .def(py::init([](const std::string& path, int n_ctx, int n_threads, int n_batch, const std::string& kv_type,
                       int n_slots, int prefill_chunk, const std::string& matmul_precision) {
             ModelOptions o;
             o.matmul_precision = matmul_precision;
             o.n_ctx = n_ctx;
             o.n_threads = n_threads;
             o.n_batch = n_batch;
             o.kv_type = kv_type_from(kv_type);
             auto pe = std::make_unique<PyEngine>();
             py::gil_scoped_release nogil;
             pe->model = std::make_unique<Model>(path, o);
             pe->engine = std::make_unique<Engine>(*pe->model, n_slots, prefill_chunk);
             return pe;
           }),
           py::arg("path"), py::arg("n_ctx") = 0, py::arg("n_threads") = 0, py::arg("n_batch") = 512,
           py::arg("kv_type") = "f16", py::arg("n_slots") = 4, py::arg("prefill_chunk") = Engine::kDefaultPrefillChunk,
           py::arg("matmul_precision") = "f32")
      .def("pick_slot", [](const PyEngine& pe, const std::vector<int32_t>& prompt) { return pe.engine->pick_slot(prompt); })
      .def("busy", [](const PyEngine& pe, int slot) { return pe.engine->busy(slot); })
      .def_property_readonly("n_busy", [](const PyEngine& pe) { return pe.engine->n_busy(); })
      .def_property_readonly("n_slots", [](const PyEngine& pe) { return pe.engine->n_slots(); })
      .def_property_readonly("prefill_chunk", [](const PyEngine& pe) { return pe.engine->prefill_chunk(); })
      .def("n_cached", [](const PyEngine& pe, int slot) { return pe.model->n_past(slot); })
      .def("start",
           [](PyEngine& pe, int slot, std::vector<int32_t> prompt, const SamplingParams& sp, int max_tokens,
              std::vector<std::string> stop, std::vector<int32_t> stop_ids, int n_probs, float presence,
              float frequency, bool cache_prompt) {
             SlotRequest r;
             r.prompt = std::move(prompt);
             r.params = CompletionParams{sp, max_tokens, std::move(stop), std::move(stop_ids)};
             r.n_probs = n_probs;
             r.presence_penalty = presence;
             r.frequency_penalty = frequency;
             r.cache_prompt = cache_prompt;
             pe.engine->start(slot, std::move(r));
           },
           py::arg("slot"), py::arg("prompt"), py::arg("params"), py::arg("max_tokens"), py::arg("stop"),
           py::arg("stop_ids"), py::arg("n_probs") = 0, py::arg("presence_penalty") = 0.0f,
           py::arg("frequency_penalty") = 0.0f, py::arg("cache_prompt") = true)
      .def("cancel", [](PyEngine& pe, int slot) { pe.engine->cancel(slot); })
      .def("step",
           [](PyEngine& pe) {
             std::vector<StepEvent> events;
             {
               py::gil_scoped_release nogil;
               events = pe.engine->step();
             }
             // (slot, token, logprob, special, top, piece, finished, finish_reason, stop_word, error,
             //  n_prompt, n_cached, n_generated)
             py::list out;
             for (const StepEvent& e : events)
               out.append(py::make_tuple(e.slot, e.token, e.logprob, e.special, e.top, py::bytes(e.piece), e.finished,
                                         finish_reason_name(e.finish), e.stop_word, e.error, e.n_prompt, e.n_cached,
                                         e.n_generated));
             return out;
           },
           "One engine step for every busy slot; returns one tuple per slot event.")
      .def("encode",
           [](const PyEngine& pe, const std::string& text, bool special) {
             py::gil_scoped_release nogil;
             return pe.model->tokenizer().encode(text, special);
           },
           py::arg("text"), py::arg("special") = false)
      .def("decode",
           [](const PyEngine& pe, const std::vector<int32_t>& ids) {
             std::string s;
             {
               py::gil_scoped_release nogil;
               s = pe.model->tokenizer().decode(ids);
             }
             return py::bytes(s);
           })
      .def("token_bytes", [](const PyEngine& pe, int32_t id) { return py::bytes(pe.model->tokenizer().token_bytes(id)); })
      .def("token_id", [](const PyEngine& pe, const std::string& s) { return pe.model->tokenizer().token_id(s); })
      .def("is_special", [](const PyEngine& pe, int32_t id) { return pe.model->tokenizer().is_special(id); })
      .def_property_readonly("n_ctx", [](const PyEngine& pe) { return pe.model->n_ctx(); })
      .def_property_readonly("n_ctx_train", [](const PyEngine& pe) { return pe.model->hparams().n_ctx_train; })
      .def_property_readonly("n_vocab", [](const PyEngine& pe) { return pe.model->hparams().n_vocab; })
      .def_property_readonly("n_threads", [](const PyEngine& pe) { return pe.model->options().n_threads; })
      .def_property_readonly("eos_id", [](const PyEngine& pe) { return pe.model->tokenizer().eos_id(); })
      .def_property_readonly("bos_id", [](const PyEngine& pe) { return pe.model->tokenizer().bos_id(); })
      .def_property_readonly("kv_type", [](const PyEngine& pe) { return tensor_type_name(pe.model->kv_type()); })
      .def_property_readonly("matmul_precision", [](const PyEngine& pe) { return pe.model->backend().matmul_precision(); })
      .def_property_readonly("kv_bytes_per_seq", [](const PyEngine& pe) { return pe.model->kv_bytes_per_seq(); })
      .def_property_readonly("general_name", [](const PyEngine& pe) -> std::string {
        const auto& md = pe.model->file().metadata();
        auto it = md.find("general.name");
        return it == md.end() ? std::string() : std::string(it->second.str);
      });
}
