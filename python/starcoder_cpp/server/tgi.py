"""Text Generation Inference routes: POST /generate, POST / , POST
/generate_stream, GET /info. Shapes as TGI's router (llm-ls, huggingface_hub's
InferenceClient and Continue's huggingface-tgi parse them)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from .. import __version__
from .errors import ApiError, error_body, validation
from .params import Fields
from .state import ServerState, api_route, json_response

MAX_STOP_SEQUENCES = 4
_FINISH = {"eos": "eos_token", "stop": "stop_sequence", "length": "length"}


def _parse(state: ServerState, body):
    f = Fields(body)
    inputs = f.raw("inputs")
    if not isinstance(inputs, str):
        raise validation("`inputs` must be a string", "inputs")
    if not inputs:
        raise validation("`inputs` cannot be empty", "inputs")
    p = Fields(f.raw("parameters", {}), "`parameters` field")
    max_new = p.int("max_new_tokens", 100)
    if max_new <= 0:
        raise validation("`max_new_tokens` must be strictly positive", "max_new_tokens")
    temperature = p.float("temperature", None, lo=0.0, lo_open=True)
    top_k = p.int("top_k", None)
    if top_k is not None and top_k <= 0:
        raise validation("`top_k` must be strictly positive", "top_k")
    top_p = p.float("top_p", None, lo=0.0, hi=1.0, lo_open=True)  # TGI refuses 1.0; harmless, so accepted
    typical_p = p.float("typical_p", None, lo=0.0, hi=1.0, lo_open=True)
    if typical_p is not None and typical_p < 1.0:
        raise validation("`typical_p` sampling is not supported by this server; leave it out", "typical_p")
    rep = p.float("repetition_penalty", 1.0, lo=0.0, lo_open=True)
    freq = p.float("frequency_penalty", 0.0, lo=-2.0, hi=2.0)
    presence = p.float("presence_penalty", 0.0, lo=-2.0, hi=2.0)
    do_sample = p.bool("do_sample", False)
    best_of = p.int("best_of", 1, lo=1)
    if best_of > 1:
        raise validation("`best_of` > 1 is not supported", "best_of")
    stop = p.stop("stop", MAX_STOP_SEQUENCES)
    seed = p.int("seed", None, lo=0)
    truncate = p.int("truncate", None, lo=1)
    details = p.bool("details", False)
    full = p.bool("return_full_text", False)
    # TGI samples when asked to or when any sampling knob moves off neutral.
    sample = do_sample or (temperature is not None and temperature != 1.0) or (top_k is not None and top_k > 0) \
        or (top_p is not None and top_p < 1.0)
    ids = state.tokenize_prompt(inputs, "inputs")
    if truncate is not None:
        ids = ids[-truncate:]
    if len(ids) + max_new > state.n_ctx:
        raise ApiError("validation", f"`inputs` tokens + `max_new_tokens` must be <= {state.n_ctx}. "
                       f"Given: {len(ids)} `inputs` tokens and {max_new} `max_new_tokens`", "inputs")
    req = state.gen_request(ids, max_tokens=max_new, temperature=(temperature or 1.0) if sample else 0.0,
                            top_k=top_k or 0, top_p=top_p or 1.0, repeat_penalty=rep, seed=seed, stop=stop,
                            presence_penalty=presence, frequency_penalty=freq)
    return inputs, req, details, full, seed if sample else None


def _token(state, ev):
    return {"id": ev.token, "text": ev.text, "logprob": ev.logprob, "special": ev.special}


def setup(state: ServerState, routes: list) -> None:
    async def generate(request, body, as_array=False):
        inputs, req, details, full, seed = await run_in_threadpool(_parse, state, body)
        job = state.submit(req)
        tokens, final = await state.run(job, request)
        state.log_job(request.url.path, job)
        text = (inputs if full else "") + job.text
        out = {"generated_text": text}
        if details:
            out["details"] = {
                "finish_reason": _FINISH.get(final.finish_reason, "length"),
                "generated_tokens": job.n_generated,
                "seed": seed,
                "prefill": [],
                "tokens": [{"id": e.token, "text": state.tok.token_text(e.token), "logprob": e.logprob,
                            "special": e.special} for e in tokens],
            }
        return json_response([out] if as_array else out)

    async def generate_stream(request, body):
        inputs, req, details, full, seed = await run_in_threadpool(_parse, state, body)
        job = state.submit(req)

        async def events():
            index = 0
            async for ev in state.events(job):
                if ev.error:
                    yield b"data:" + _dumps(error_body("tgi", ApiError("server", ev.error))) + b"\n\n"
                    return
                index += 1
                msg = {"index": index, "token": _token(state, ev), "generated_text": None, "details": None}
                if ev.finished:
                    msg["generated_text"] = (inputs if full else "") + job.text
                    if details:
                        msg["details"] = {"finish_reason": _FINISH.get(ev.finish_reason, "length"),
                                          "generated_tokens": job.n_generated, "seed": seed,
                                          "input_length": job.n_prompt}
                    state.log_job(request.url.path, job)
                yield b"data:" + _dumps(msg) + b"\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def root(request, body):
        if isinstance(body, dict) and body.get("stream") is True:
            return await generate_stream(request, body)
        return await generate(request, body, as_array=True)

    async def info(request, body):
        return json_response({
            "model_id": state.alias,
            "model_sha": None,
            "model_dtype": state.core.kv_type,
            "model_device_type": "cpu",
            "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": state.parallel + state.engine.max_queue,
            "max_best_of": 1,
            "max_stop_sequences": MAX_STOP_SEQUENCES,
            "max_input_tokens": state.n_ctx - 1,
            "max_input_length": state.n_ctx - 1,
            "max_total_tokens": state.n_ctx,
            "max_batch_total_tokens": state.n_ctx * state.parallel,
            "max_client_batch_size": 1,
            "validation_workers": 1,
            "router": "starcoder-cpp",
            "version": __version__,
        })

    from starlette.routing import Route

    routes += [
        Route("/generate", api_route(state, "tgi", generate), methods=["POST"]),
        Route("/generate_stream", api_route(state, "tgi", generate_stream), methods=["POST"]),
        Route("/", api_route(state, "tgi", root), methods=["POST"]),
        Route("/info", api_route(state, "tgi", info), methods=["GET"]),
    ]


def _dumps(obj) -> bytes:
    import json

    return json.dumps(obj, ensure_ascii=False).encode()
