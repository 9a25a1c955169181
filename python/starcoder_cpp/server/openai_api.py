"""OpenAI completions: POST /v1/completions (with `suffix` for
fill-in-the-middle, as Tabby's openai/completion sends it) and GET
/v1/models, in the shapes the openai SDK parses."""

from __future__ import annotations

import asyncio
import time
import uuid

from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.routing import Route

from .errors import ApiError, error_body, validation
from .params import Fields
from .state import ServerState, api_route, json_response, sse

_KNOWN = {"model", "prompt", "suffix", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options", "stop",
          "seed", "echo", "logprobs", "presence_penalty", "frequency_penalty", "best_of", "logit_bias", "user"}


def _prompts(state: ServerState, prompt) -> list:
    """OpenAI's prompt forms: str, [str], [int], [[int]] -> list of (text or None, ids)."""
    if prompt is None:
        raise validation("`prompt` is required", "prompt")
    if isinstance(prompt, str):
        return [(prompt, state.tokenize_prompt(prompt))]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return [(p, state.tokenize_prompt(p)) for p in prompt]
        if all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            return [(None, state.tokenize_prompt(prompt))]
        if all(isinstance(p, list) for p in prompt):
            return [(None, state.tokenize_prompt(p)) for p in prompt]
    raise validation("`prompt` must be a string, a list of strings, a list of token ids or a list of such lists",
                     "prompt")


def _parse(state: ServerState, body):
    f = Fields(body)
    unknown = sorted(set(body) - _KNOWN)
    if unknown:
        raise validation(f"Unrecognized request argument supplied: {unknown[0]}", unknown[0])
    f.str("model", None)
    suffix = f.str("suffix", None)
    max_tokens = f.int("max_tokens", 16, lo=0)
    temperature = f.float("temperature", 1.0, lo=0.0, hi=2.0)
    top_p = f.float("top_p", 1.0, lo=0.0, hi=1.0, lo_open=True)
    n = f.int("n", 1, lo=1, hi=16)
    best_of = f.int("best_of", n, lo=1)
    if best_of != n:
        raise validation("`best_of` other than `n` is not supported", "best_of")
    stream = f.bool("stream", False)
    stop = f.stop("stop", 4)
    seed = f.int("seed", None, lo=0)
    echo = f.bool("echo", False)
    logprobs = f.int("logprobs", None, lo=0, hi=5)
    presence = f.float("presence_penalty", 0.0, lo=-2.0, hi=2.0)
    frequency = f.float("frequency_penalty", 0.0, lo=-2.0, hi=2.0)
    if f.raw("logit_bias"):
        raise validation("`logit_bias` is not supported", "logit_bias")
    opts = Fields(f.raw("stream_options", {}), "`stream_options` field")
    include_usage = opts.bool("include_usage", False)
    prompts = _prompts(state, f.raw("prompt"))
    if suffix is not None and stream and echo:
        raise validation("`echo` cannot be used with `suffix` when streaming", "echo")
    reqs = []
    for i, (text, ids) in enumerate(prompts):
        if suffix is not None:
            if text is None:
                raise validation("`suffix` needs a text prompt", "suffix")
            ids = state.fim_ids(text, suffix)
        state.check_fits(ids)
        for j in range(n):
            reqs.append((text, ids, state.gen_request(
                ids, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=None if seed is None else seed + j,
                stop=stop, suffix=suffix, n_probs=logprobs or 0, presence_penalty=presence,
                frequency_penalty=frequency)))
    return reqs, stream, echo, logprobs, include_usage


def _logprobs(state: ServerState, tokens, offset: int) -> dict:
    out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for ev in tokens:
        text = state.tok.token_text(ev.token)
        out["tokens"].append(text)
        out["token_logprobs"].append(ev.logprob)
        out["top_logprobs"].append({state.tok.token_text(t): lp for t, lp in ev.top})
        out["text_offset"].append(offset)
        offset += len(text)
    return out


def setup(state: ServerState, routes: list) -> None:
    async def completions(request, body):
        reqs, stream, echo, logprobs, include_usage = await run_in_threadpool(_parse, state, body)
        cid = "cmpl-" + uuid.uuid4().hex
        created = int(time.time())
        jobs = []
        try:
            for _, _, r in reqs:
                jobs.append(state.submit(r))
        except ApiError:
            for j in jobs:
                state.engine.cancel(j)
            raise
        head = {"id": cid, "object": "text_completion", "created": created, "model": state.alias}
        if stream:
            return StreamingResponse(_stream(state, request, head, reqs, jobs, echo, include_usage),
                                     media_type="text/event-stream")
        results = await asyncio.gather(*(state.run(j, request) for j in jobs))
        choices = []
        n_prompt = n_out = 0
        for i, ((text, ids, _), job, (tokens, final)) in enumerate(zip(reqs, jobs, results)):
            state.log_job(request.url.path, job)
            prefix = (text if text is not None else state.tok.detokenize(ids)) if echo else ""
            choices.append({"text": prefix + job.text, "index": i,
                            "logprobs": _logprobs(state, tokens, len(prefix)) if logprobs is not None else None,
                            "finish_reason": "length" if final.finish_reason == "length" else "stop"})
            n_prompt += len(ids) if i == 0 or reqs[i][1] is not reqs[i - 1][1] else 0
            n_out += job.n_generated
        return json_response({**head, "choices": choices,
                              "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out,
                                        "total_tokens": n_prompt + n_out}})

    async def models(request, body):
        return json_response({"object": "list", "data": [
            {"id": state.alias, "object": "model", "created": state.created, "owned_by": "starcoder-cpp"}]})

    routes += [
        Route("/v1/completions", api_route(state, "openai", completions), methods=["POST"]),
        Route("/v1/models", api_route(state, "openai", models), methods=["GET"]),
    ]


async def _stream(state, request, head, reqs, jobs, echo, include_usage):
    """Chunks of every choice as they come (interleaved), then [DONE]."""
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(i, job):
        async for ev in state.events(job):
            await queue.put((i, ev))
        await queue.put((i, None))

    tasks = [asyncio.ensure_future(pump(i, j)) for i, j in enumerate(jobs)]
    offsets = [0] * len(jobs)
    try:
        if echo:
            for i, (text, ids, _) in enumerate(reqs):
                yield sse({**head, "choices": [{"text": text if text is not None else state.tok.detokenize(ids),
                                                 "index": i, "logprobs": None, "finish_reason": None}]})
        left = len(jobs)
        while left:
            i, ev = await queue.get()
            if ev is None:
                left -= 1
                continue
            if ev.error:
                yield sse(error_body("openai", ApiError("server", ev.error)))
                continue
            finish = None
            if ev.finished:
                finish = "length" if ev.finish_reason == "length" else "stop"
                state.log_job(request.url.path, jobs[i])
            if ev.text or finish:
                lp = None
                if reqs[i][2].n_probs and ev.token >= 0:
                    lp = _logprobs(state, [ev], offsets[i])
                    offsets[i] += len(ev.text)
                yield sse({**head, "choices": [{"text": ev.text, "index": i, "logprobs": lp,
                                                 "finish_reason": finish}]})
        if include_usage:
            n_prompt = sum(len(ids) for _, ids, _ in reqs)
            n_out = sum(j.n_generated for j in jobs)
            yield sse({**head, "choices": [], "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out,
                                                        "total_tokens": n_prompt + n_out}})
        yield b"data: [DONE]\n\n"
    finally:
        for t in tasks:
            t.cancel()
        for j in jobs:
            if not j.done:
                state.engine.cancel(j)
