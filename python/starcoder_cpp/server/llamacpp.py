"""llama.cpp server routes: POST /completion (and /completions), POST
/infill, GET /health, GET /props. Streams send `data: {...}` lines that are
all JSON with a `content` field and never `[DONE]` (Tabby parses every line)."""

from __future__ import annotations

import asyncio
import os

from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.routing import Route

from .errors import ApiError, error_body, validation
from .params import Fields
from .state import ServerState, api_route, json_response, sse, timings

_STOP_TYPE = {"eos": "eos", "stop": "word", "length": "limit"}


def _sampling(state: ServerState, f: Fields, ids: list) -> dict:
    n_predict = f.int("n_predict", -1, lo=-1)
    if n_predict < 0:
        n_predict = state.n_ctx  # -1: until the context is full
    temperature = f.float("temperature", 0.8)
    seed = f.int("seed", -1, lo=-1)
    return dict(
        max_tokens=n_predict,
        temperature=max(temperature, 0.0),  # llama.cpp: temperature <= 0 is greedy
        top_k=max(f.int("top_k", 40), 0),
        top_p=f.float("top_p", 0.95, lo=0.0, hi=1.0, lo_open=True),
        min_p=f.float("min_p", 0.05, lo=0.0, hi=1.0),
        repeat_penalty=f.float("repeat_penalty", 1.0, lo=0.0, lo_open=True),
        repeat_last_n=f.int("penalty_last_n", f.int("repeat_last_n", 64, lo=-1), lo=-1),
        seed=None if seed < 0 else seed,
        stop=f.stop("stop"),
        n_probs=f.int("n_probs", 0, lo=0, hi=100),
        presence_penalty=f.float("presence_penalty", 0.0),
        frequency_penalty=f.float("frequency_penalty", 0.0),
        cache_prompt=f.bool("cache_prompt", True),
        t_max_predict_ms=f.int("t_max_predict_ms", 0, lo=0),
        n_indent=f.int("n_indent", 0, lo=0),
        id_slot=f.int("id_slot", -1, lo=-1),
    )


def _settings(state: ServerState, kw: dict, req) -> dict:
    return {"n_ctx": state.n_ctx, "n_predict": req.max_tokens, "model": state.alias,
            "seed": req.sampling.seed, "temperature": kw["temperature"], "top_k": kw["top_k"], "top_p": kw["top_p"],
            "min_p": kw["min_p"], "repeat_penalty": kw["repeat_penalty"], "repeat_last_n": kw["repeat_last_n"],
            "presence_penalty": kw["presence_penalty"], "frequency_penalty": kw["frequency_penalty"],
            "stop": kw["stop"], "n_probs": kw["n_probs"], "cache_prompt": kw["cache_prompt"], "stream": False}


def _final(state: ServerState, job, final, kw, prompt_text, truncated) -> dict:
    stop_type = "none" if final.error else _STOP_TYPE.get(final.finish_reason, "limit")
    out = {
        "content": job.text,
        "id_slot": job.slot,
        "stop": True,
        "model": state.alias,
        "tokens_predicted": job.n_generated,
        "tokens_evaluated": job.n_prompt,
        "generation_settings": _settings(state, kw, job.req),
        "prompt": prompt_text,
        "has_new_line": "\n" in job.text,
        "truncated": truncated,
        "stop_type": stop_type,
        "stopped_eos": stop_type == "eos",
        "stopped_word": stop_type == "word",
        "stopped_limit": stop_type == "limit",
        "stopping_word": final.stop_word,
        "tokens_cached": job.n_prompt + job.n_generated,
        "timings": timings(job),
        "index": 0,
    }
    return out


def _probs(state: ServerState, ev) -> dict:
    def one(t, lp):
        text = state.tok.token_text(t)
        return {"id": t, "token": text, "logprob": lp, "bytes": list(text.encode())}

    return {**one(ev.token, ev.logprob), "top_logprobs": [one(t, lp) for t, lp in ev.top]}


def _trim_fim(state: ServerState, extra: list, prefix: list, suffix: list, reserve: int):
    """Fits repository context + prefix + suffix into the context, dropping the
    oldest context chunks first, then the far ends of prefix and suffix (3:1)."""
    budget = state.n_ctx - reserve - 3
    truncated = False
    while extra and sum(map(len, extra)) + len(prefix) + len(suffix) > budget:
        extra.pop(0)
        truncated = True
    over = len(prefix) + len(suffix) - budget
    if over > 0:
        truncated = True
        keep_pre = max(min(len(prefix), (budget * 3) // 4), budget - len(suffix))
        keep_suf = max(budget - keep_pre, 0)
        prefix, suffix = prefix[len(prefix) - keep_pre:] if keep_pre else [], suffix[:keep_suf]
    return extra, prefix, suffix, truncated


def _repo_chunks(state: ServerState, input_extra) -> list:
    """Repository context in the model's own training format: StarCoder 2's
    <file_sep> per file (after <repo_name>), or StarCoder 1's <filename>
    header per file, each file a document ending with <|endoftext|>."""
    if input_extra is None:
        return []
    if not isinstance(input_extra, list):
        raise validation("`input_extra` must be a list of {\"filename\", \"text\"} objects", "input_extra")
    tok = state.tok
    file_sep, filename = tok.token_id("<file_sep>"), tok.token_id("<filename>")
    chunks = []
    for i, c in enumerate(input_extra):
        cf = Fields(c, f"`input_extra[{i}]`")
        name, text = cf.str("filename", ""), cf.str("text", "")
        body = tok.tokenize((name + "\n" if name else "") + text)
        if file_sep >= 0:
            chunks.append([file_sep] + body)
        elif filename >= 0:
            chunks.append(([filename] if name else []) + body + [tok.eos_id])
        else:
            chunks.append(body + [tok.eos_id])
    return chunks


def setup(state: ServerState, routes: list) -> None:
    async def respond(request, f: Fields, jobs, kw, prompt_text, truncated, as_list=False):
        stream = f.bool("stream", False)
        if stream:
            job = jobs[0]  # prepare_infill refuses n_cmpl > 1 with stream

            async def events():
                n = 0
                async for ev in state.events(job):
                    n += ev.token >= 0
                    if ev.error:
                        yield sse({"content": "", "stop": True, **error_body("llamacpp", ApiError("server", ev.error))})
                        return
                    if ev.finished:
                        state.log_job(request.url.path, job)
                        last = _final(state, job, ev, kw, prompt_text, truncated)
                        last["content"] = ev.text
                        yield sse(last)
                        return
                    msg = {"content": ev.text, "stop": False, "id_slot": job.slot, "index": 0,
                           "tokens_predicted": n}
                    if job.req.n_probs:
                        msg["completion_probabilities"] = [_probs(state, ev)]
                    yield sse(msg)

            return StreamingResponse(events(), media_type="text/event-stream")
        outs = []
        for job, (tokens, final) in zip(jobs, await asyncio.gather(*(state.run(j, request) for j in jobs))):
            state.log_job(request.url.path, job)
            out = _final(state, job, final, kw, prompt_text, truncated)
            if job.req.n_probs:
                out["completion_probabilities"] = [_probs(state, e) for e in tokens]
            outs.append(out)
        return json_response(outs if as_list else outs[0])

    def prepare_completion(body):
        f = Fields(body)
        prompt = f.raw("prompt")
        if prompt is None:
            raise validation("`prompt` is required", "prompt")
        ids = state.tokenize_prompt(prompt)
        state.check_fits(ids, "context")
        kw = _sampling(state, f, ids)
        return f, kw, [state.gen_request(ids, **kw)], prompt if isinstance(prompt, str) else "", False

    def prepare_infill(body):
        f = Fields(body)
        pre_text, suf_text = f.str("input_prefix", ""), f.str("input_suffix", "")
        typed = f.str("prompt", "")  # the part of the cursor's line already typed: it ends the prefix
        n_cmpl = f.int("n_cmpl", 1, lo=1, hi=16)
        if n_cmpl > 1 and f.bool("stream", False):
            raise validation("streaming supports one completion at a time (`n_cmpl` 1)", "n_cmpl")
        f.int("t_max_prompt_ms", 0, lo=0)  # the whole prompt is always evaluated
        extra = _repo_chunks(state, f.raw("input_extra"))
        tok = state.tok
        prefix, suffix = tok.tokenize(pre_text + typed), tok.tokenize(suf_text)
        kw = _sampling(state, f, prefix)
        reserve = min(kw["max_tokens"], state.n_ctx // 4)
        extra, prefix, suffix, truncated = _trim_fim(state, extra, prefix, suffix, reserve)
        try:
            pre, suf, mid = (tok.token_id(t) for t in ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"))
            if min(pre, suf, mid) < 0:
                raise ValueError
        except ValueError:
            raise validation("this model's vocabulary has no FIM tokens: it cannot infill")
        head = []
        if extra:
            repo = tok.token_id("<repo_name>")
            if repo >= 0:
                head = [repo] + tok.tokenize("myproject\n")
            for c in extra:
                head += c
            if tok.token_id("<file_sep>") >= 0:
                head.append(tok.token_id("<file_sep>"))
        if state.fim_order == "spm":
            ids = head + [pre, suf] + suffix + [mid] + prefix
        else:
            ids = head + [pre] + prefix + [suf] + suffix + [mid]
        reqs = [state.gen_request(ids, suffix=suf_text, **dict(kw, seed=None if kw["seed"] is None else kw["seed"] + i))
                for i in range(n_cmpl)]
        return f, kw, reqs, "", truncated

    async def run(request, body, prepare, as_list=False):
        f, kw, reqs, prompt_text, truncated = await run_in_threadpool(prepare, body)
        jobs = []
        try:
            for r in reqs:
                jobs.append(state.submit(r))
        except ApiError:
            for j in jobs:
                state.engine.cancel(j)
            raise
        return await respond(request, f, jobs, kw, prompt_text, truncated, as_list=as_list and len(jobs) > 1)

    async def completion(request, body):
        return await run(request, body, prepare_completion)

    async def infill(request, body):
        return await run(request, body, prepare_infill, as_list=True)

    async def health(request, body):
        return json_response({"status": "ok"})

    async def props(request, body):
        return json_response({
            "default_generation_settings": {"n_ctx": state.n_ctx, "model": state.alias,
                                            "params": {"n_predict": -1, "temperature": 0.8, "top_k": 40,
                                                       "top_p": 0.95, "min_p": 0.05}},
            "total_slots": state.parallel,
            "model_path": state.model_path,
            "model_alias": state.alias,
            "fim_order": state.fim_order,
            **state.engine.stats(),
        })

    routes += [
        Route("/completion", api_route(state, "llamacpp", completion), methods=["POST"]),
        Route("/completions", api_route(state, "llamacpp", completion), methods=["POST"]),
        Route("/infill", api_route(state, "llamacpp", infill), methods=["POST"]),
        Route("/health", api_route(state, "llamacpp", health, auth=False), methods=["GET"]),
        Route("/props", api_route(state, "llamacpp", props), methods=["GET"]),
    ]
