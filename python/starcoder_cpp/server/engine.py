"""The engine thread: owns the native Engine (model + slots), admits queued
jobs into free slots, runs step() (GIL released inside) and hands each
slot's events to its job's asyncio queue. The HTTP layer never touches the
model: it submits jobs and reads their queues."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Optional

from .. import _core

log = logging.getLogger("starcoder_cpp.server")


class Overloaded(Exception):
    """Every slot is busy and the waiting queue is full."""


@dataclass
class GenRequest:
    """One completion to run, already validated and tokenized."""

    ids: list
    sampling: "_core.SamplingParams"
    max_tokens: int
    stop: list
    stop_ids: list
    n_probs: int = 0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    cache_prompt: bool = True
    t_max_predict_ms: int = 0       # llama.cpp: stop after this long once a newline was generated
    n_indent: int = 0               # llama.cpp: stop at a line indented less than this
    id_slot: int = -1


@dataclass
class Event:
    token: int
    logprob: float
    special: bool
    top: list
    text: str
    finished: bool = False
    finish_reason: str = ""        # "eos", "stop", "length"
    stop_word: str = ""
    error: str = ""


@dataclass
class Job:
    req: GenRequest
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    slot: int = -1
    cancelled: bool = False
    done: bool = False
    text: str = ""                  # everything released so far (final text when done)
    n_prompt: int = 0
    n_cached: int = 0
    n_generated: int = 0
    t_submit: float = field(default_factory=time.perf_counter)
    t_start: float = 0.0            # admitted into a slot
    t_first: float = 0.0            # first token sampled (prompt evaluated)
    t_end: float = 0.0

    def _deliver(self, ev: Event) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, ev)


class EngineThread:
    def __init__(self, core: "_core.Engine", max_queue: int):
        self.core = core
        self.n_slots = core.n_slots
        self.max_queue = max_queue
        self._cv = threading.Condition()
        self._pending: deque[Job] = deque()
        self._active: dict[int, Job] = {}
        self._stopping = False
        self.n_cancelled = 0            # jobs stopped mid-generation (clients gone)
        self._thread = threading.Thread(target=self._run, name="starcoder-engine", daemon=True)

    # --- called from the HTTP side -------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join(timeout=30)

    def submit(self, job: Job) -> None:
        with self._cv:
            free = self.n_slots - len(self._active)
            if self._stopping or len(self._pending) >= self.max_queue + max(free, 0):
                raise Overloaded("all slots are busy and the queue is full; retry later")
            self._pending.append(job)
            self._cv.notify()

    def cancel(self, job: Job) -> None:
        """Stops a job (client gone): it leaves its slot at the next step."""
        with self._cv:
            job.cancelled = True
            self._cv.notify()

    def stats(self) -> dict:
        with self._cv:
            return {"busy_slots": len(self._active), "queued": len(self._pending), "cancelled": self.n_cancelled}

    # --- the engine thread ---------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stopping and not self._pending and not self._active:
                    self._cv.wait()
                if self._stopping:
                    return
            try:
                self._one_step()
            except Exception as e:  # never let the engine thread die: fail what was running, go on
                log.exception("engine step failed")
                with self._cv:
                    for slot, job in list(self._active.items()):
                        self.core.cancel(slot)
                        del self._active[slot]
                        self._finish(job, Event(-1, 0.0, False, [], "", True, "", error=f"engine error: {e}"))

    def _one_step(self) -> None:
        with self._cv:
            self._drop_cancelled()
            self._admit()
            if not self._active:
                return
        events = self.core.step()  # the forward pass; the GIL is released inside
        with self._cv:
            for ev in events:
                self._dispatch(ev)

    def _drop_cancelled(self) -> None:
        if any(j.cancelled for j in self._pending):
            self._pending = deque(j for j in self._pending if not j.cancelled)
        for slot, job in list(self._active.items()):
            if job.cancelled:
                self.n_cancelled += 1
                self.core.cancel(slot)
                del self._active[slot]
                job.done = True
                job.t_end = time.perf_counter()

    def _admit(self) -> None:
        while self._pending and len(self._active) < self.n_slots:
            job = self._pending.popleft()
            r = job.req
            if 0 <= r.id_slot < self.n_slots and r.id_slot not in self._active:
                slot, cached = r.id_slot, 0  # the client's choice (llama.cpp id_slot); cached counted at the end
            else:
                slot, cached = self.core.pick_slot(r.ids)
            try:
                self.core.start(slot, r.ids, r.sampling, r.max_tokens, r.stop, r.stop_ids, r.n_probs,
                                r.presence_penalty, r.frequency_penalty, r.cache_prompt)
            except Exception as e:
                self._finish(job, Event(-1, 0.0, False, [], "", True, "", error=str(e)))
                continue
            job.slot = slot
            job.n_prompt = len(r.ids)
            job.n_cached = cached if r.cache_prompt else 0
            job.t_start = time.perf_counter()
            self._active[slot] = job

    def _dispatch(self, t) -> None:
        (slot, token, logprob, special, top, piece, finished, reason, stop_word, error,
         n_prompt, n_cached, n_generated) = t
        job = self._active.get(slot)
        if job is None:
            return
        ev = Event(token, logprob, special, top, piece.decode("utf-8", errors="replace"), finished, reason,
                   stop_word, error)
        if token >= 0:
            job.n_generated += 1
            if not job.t_first:
                job.t_first = time.perf_counter()
        if finished:
            del self._active[slot]
            if not error:
                job.n_prompt, job.n_cached = n_prompt, n_cached
            job.text += ev.text
            self._finish(job, ev)
            return
        job.text += ev.text
        if self._limit_reached(job, ev):
            self.core.cancel(slot)
            del self._active[slot]
            self._finish(job, ev, early=True)
            return
        if ev.text or token >= 0:
            job._deliver(ev)

    def _limit_reached(self, job: Job, ev: Event) -> bool:
        """llama.cpp's editor limits, checked on the released text."""
        r = job.req
        if r.t_max_predict_ms > 0 and "\n" in job.text and job.t_first:
            if (time.perf_counter() - job.t_first) * 1000.0 >= r.t_max_predict_ms:
                return True
        if r.n_indent > 0 and "\n" in ev.text:
            # A completed line indented less than the cursor ends the block.
            lines = job.text.split("\n")
            for i, line in enumerate(lines[1:-1], start=1):
                if line.strip() and len(line) - len(line.lstrip(" \t")) < r.n_indent:
                    cut = len("\n".join(lines[:i]))
                    removed = len(job.text) - cut
                    job.text = job.text[:cut]
                    ev.text = ev.text[:max(len(ev.text) - removed, 0)]
                    return True
        return False

    def _finish(self, job: Job, ev: Event, early: bool = False) -> None:
        if early:
            ev.finished, ev.finish_reason = True, "length"
        job.done = True
        job.t_end = time.perf_counter()
        job._deliver(ev)

