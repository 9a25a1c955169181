"""What every route shares: the engine thread, the model's tokenizer seen
through the native Engine, settings, and the request plumbing (auth, JSON,
submitting a job, waiting for its events, logging)."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
from typing import AsyncIterator, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import _core
from ..model import completion_ends, fim_prompt_ids
from ..sampling import SamplingOptions
from .engine import EngineThread, Event, GenRequest, Job, Overloaded
from .errors import ApiError, error_response, validation

log = logging.getLogger("starcoder_cpp.server")


class TokenizerView:
    """The Engine's tokenizer with the method names model.py's prompt helpers use."""

    def __init__(self, core: "_core.Engine"):
        self._c = core
        self.eos_id = core.eos_id
        self.bos_id = core.bos_id

    def tokenize(self, text: str, special: bool = False) -> list:
        return self._c.encode(text, special)

    def detokenize(self, ids) -> str:
        return self._c.decode(list(ids)).decode("utf-8", errors="replace")

    def token_id(self, text: str) -> int:
        return self._c.token_id(text)

    def token_text(self, tok: int) -> str:
        return self._c.token_bytes(tok).decode("utf-8", errors="replace")


class ServerState:
    def __init__(self, model_path: str, n_ctx: int = 0, n_threads: int = 0, parallel: int = 4,
                 api_key: str | None = None, model_alias: str | None = None, fim_order: str = "psm",
                 max_queue: int = 64, kv_type: str = "f16", prefill_chunk: int = 128,
                 matmul_precision: str = "f32"):
        if fim_order not in ("psm", "spm"):
            raise ValueError(f"fim order must be 'psm' or 'spm', got {fim_order!r}")
        self.model_path = model_path
        self.core = _core.Engine(model_path, n_ctx, n_threads, 512, kv_type, parallel, prefill_chunk,
                                 matmul_precision)
        self.tok = TokenizerView(self.core)
        self.n_ctx = self.core.n_ctx
        self.parallel = parallel
        self.api_key = api_key
        self.alias = model_alias or os.path.splitext(os.path.basename(model_path))[0]
        self.fim_order = fim_order
        self.created = int(time.time())
        self.engine = EngineThread(self.core, max_queue)

    # --- auth --------------------------------------------------------------
    def check_auth(self, request: Request) -> None:
        if self.api_key is None:
            return  # any Authorization header is ignored (Continue sends "Bearer undefined")
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode())
        if not ok:
            raise ApiError("auth", "invalid or missing API key: send `Authorization: Bearer KEY`")

    # --- prompts -----------------------------------------------------------
    def tokenize_prompt(self, prompt, field: str = "prompt") -> list:
        """A text prompt (special tokens recognised) or a list of token ids."""
        if isinstance(prompt, str):
            ids = self.tok.tokenize(prompt, special=True)
        elif isinstance(prompt, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            bad = [t for t in prompt if t < 0 or t >= self.core.n_vocab]
            if bad:
                raise validation(f"token id {bad[0]} in `{field}` is outside the vocabulary [0, {self.core.n_vocab})",
                                 field)
            ids = list(prompt)
        else:
            raise validation(f"`{field}` must be a string or a list of token ids", field)
        return ids or [self.tok.bos_id]

    def fim_ids(self, prefix: str, suffix: str) -> list:
        try:
            return fim_prompt_ids(self.tok, prefix, suffix, self.fim_order)
        except ValueError as e:
            raise validation(str(e))

    def check_fits(self, ids: list, kind: str = "context") -> None:
        if len(ids) > self.n_ctx:
            raise ApiError(kind, f"the prompt has {len(ids)} tokens but the context holds {self.n_ctx}")

    def gen_request(self, ids: list, *, max_tokens: int, temperature: float, top_k: int = 0, top_p: float = 1.0,
                    min_p: float = 0.0, repeat_penalty: float = 1.0, repeat_last_n: int = 64, seed=None,
                    stop=(), suffix: str | None = None, **extra) -> GenRequest:
        stop_ids, echo = completion_ends(self.tok, ids, suffix)
        try:
            sp = SamplingOptions(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                                 repeat_penalty=repeat_penalty, repeat_last_n=repeat_last_n, seed=seed).core_params()
        except (ValueError, TypeError) as e:
            raise validation(str(e))
        # Generation ends by itself when the context is full; this only keeps the C++ int sane.
        max_tokens = min(max_tokens, self.n_ctx)
        return GenRequest(ids, sp, max_tokens, list(stop) + echo, stop_ids, **extra)

    # --- running -----------------------------------------------------------
    def submit(self, req: GenRequest) -> Job:
        job = Job(req, asyncio.get_running_loop())
        try:
            self.engine.submit(job)
        except Overloaded as e:
            raise ApiError("overloaded", str(e))
        return job

    async def events(self, job: Job, request: Request | None = None) -> AsyncIterator[Event]:
        """The job's events until it finishes. Cancels it if the consumer goes
        away (a stream's client disconnecting) or, for a non-streaming call,
        when `request` reports a disconnect."""
        try:
            last_check = time.monotonic()
            while True:
                if request is None:
                    ev = await job.queue.get()
                else:
                    try:
                        ev = await asyncio.wait_for(job.queue.get(), 0.25)
                    except asyncio.TimeoutError:
                        ev = None
                    # Polled by time, not only when idle: tokens may arrive faster than the timeout.
                    if time.monotonic() - last_check >= 0.25:
                        last_check = time.monotonic()
                        if await request.is_disconnected():
                            return
                    if ev is None:
                        continue
                yield ev
                if ev.finished:
                    return
        finally:
            if not job.done:
                self.engine.cancel(job)

    async def run(self, job: Job, request: Request) -> tuple[list, Event]:
        """Waits for a whole completion: (token events, final event)."""
        tokens = []
        final = None
        async for ev in self.events(job, request):
            if ev.token >= 0:
                tokens.append(ev)
            if ev.finished:
                final = ev
        if final is None:
            raise ApiError("server", "the client went away")
        if final.error:
            raise ApiError("server", final.error)
        return tokens, final

    def log_job(self, route: str, job: Job) -> None:
        ttft = (job.t_first - job.t_submit) * 1000 if job.t_first else float("nan")
        decode_s = job.t_end - job.t_first if job.t_first and job.t_end > job.t_first else 0.0
        tps = (job.n_generated - 1) / decode_s if decode_s > 0 and job.n_generated > 1 else 0.0
        log.info("%s slot=%d in=%d cached=%d out=%d ttft=%.1fms %.1f tok/s%s", route, job.slot, job.n_prompt,
                 job.n_cached, job.n_generated, ttft, tps, " (cancelled)" if job.cancelled else "")


def api_route(state: ServerState, api: str, handler: Callable, auth: bool = True, json_body: bool = True):
    """Wraps a handler(request, body) with auth, JSON parsing and error rendering in `api`'s shape."""

    async def endpoint(request: Request) -> Response:
        try:
            if auth:
                state.check_auth(request)
            body = None
            if json_body and request.method == "POST":
                raw = await request.body()
                try:
                    body = json.loads(raw)
                except (ValueError, UnicodeDecodeError) as e:
                    raise validation(f"the request body is not valid JSON: {e}")
            return await handler(request, body)
        except ApiError as e:
            return error_response(api, e)

    return endpoint


def timings(job: Job) -> dict:
    prompt_ms = (job.t_first - job.t_start) * 1000 if job.t_first else 0.0
    predicted_ms = (job.t_end - job.t_first) * 1000 if job.t_first else 0.0
    n_eval = max(job.n_prompt - job.n_cached, 0)
    return {
        "cache_n": job.n_cached,
        "prompt_n": n_eval,
        "prompt_ms": prompt_ms,
        "prompt_per_token_ms": prompt_ms / n_eval if n_eval else 0.0,
        "prompt_per_second": n_eval / prompt_ms * 1000 if prompt_ms > 0 else 0.0,
        "predicted_n": job.n_generated,
        "predicted_ms": predicted_ms,
        "predicted_per_token_ms": predicted_ms / job.n_generated if job.n_generated else 0.0,
        "predicted_per_second": job.n_generated / predicted_ms * 1000 if predicted_ms > 0 else 0.0,
    }


def sse(data) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


def json_response(obj, status: int = 200) -> JSONResponse:
    return JSONResponse(obj, status_code=status)
