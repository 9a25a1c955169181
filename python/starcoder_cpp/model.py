"""Python face of the native core: argument checking and text conveniences.

All heavy work happens in starcoder_cpp._core with the GIL released.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from . import _core

_DEMO_MODEL = Path(__file__).resolve().parent / "models" / "tiny-bigcode-py-q8_0.gguf"


def demo_model_path() -> str:
    """Path of the small demo model shipped with the package (7M parameters,
    trained on Python's standard library: good for trying the runtime, not
    for real completions)."""
    return str(_DEMO_MODEL)


def _resolve_path(path: str | os.PathLike) -> str:
    p = os.fspath(path)
    if p == "demo":
        p = demo_model_path()
    if not os.path.exists(p):
        raise FileNotFoundError(f"model file not found: {p}")
    if os.path.isdir(p):
        raise IsADirectoryError(
            f"{p} is a directory; convert a Hugging Face checkpoint first: "
            f"starcoder-cpp convert {p} -o model.gguf"
        )
    return p


def _sampling(temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n, seed) -> "_core.SamplingParams":
    sp = _core.SamplingParams()
    sp.temperature = float(temperature)
    sp.top_k = int(top_k)
    sp.top_p = float(top_p)
    sp.min_p = float(min_p)
    sp.repeat_penalty = float(repeat_penalty)
    sp.repeat_last_n = int(repeat_last_n)
    if seed is None:
        seed = int.from_bytes(os.urandom(8), "little")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    sp.seed = int(seed) & (2**64 - 1)
    sp.check()  # raises ValueError naming the bad parameter
    return sp


def _stop_list(stop) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    out = list(stop)
    for s in out:
        if not isinstance(s, str) or not s:
            raise ValueError(f"stop sequences must be non-empty strings, got {s!r}")
    return out


def fim_prompt_ids(model, prefix: str, suffix: str) -> list[int]:
    """StarCoder's prefix-suffix-middle prompt as token ids."""
    ids = {}
    for name in ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"):
        ids[name] = model.token_id(name)
        if ids[name] < 0:
            raise ValueError(f"this model's vocabulary has no {name} token: it was not trained for fill-in-the-middle")
    return ([ids["<fim_prefix>"]] + model.tokenize(prefix) + [ids["<fim_suffix>"]] + model.tokenize(suffix)
            + [ids["<fim_middle>"]])


class CompletionText(str):
    """The text of a completion, with how it ended.

    finish_reason: "eos" (end-of-text token), "stop" (a stop string), or
    "length" (max_tokens or a full context).
    """

    def __new__(cls, text, finish_reason, n_prompt_tokens, n_reused_tokens, n_tokens):
        obj = super().__new__(cls, text)
        obj.finish_reason = finish_reason
        obj.n_prompt_tokens = n_prompt_tokens
        obj.n_reused_tokens = n_reused_tokens
        obj.n_tokens = n_tokens
        return obj


class CompletionStream:
    """Iterator over the text pieces of a running completion. After it is
    exhausted, finish_reason says why it ended; tokens lists the ids."""

    def __init__(self, handle):
        self._h = handle

    def __iter__(self):
        return self

    def __next__(self) -> str:
        piece = self._h.next()
        if piece is None:
            raise StopIteration
        return piece.decode("utf-8", errors="replace")

    finish_reason = property(lambda self: self._h.finish_reason)
    n_prompt_tokens = property(lambda self: self._h.n_prompt_tokens)
    n_reused_tokens = property(lambda self: self._h.n_reused_tokens, doc="prompt tokens found in the KV cache")
    tokens = property(lambda self: self._h.generated)


def _non_negative_int(name: str, value) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


class Tokenizer:
    """The byte-level BPE tokenizer of a GGUF file (a model or a vocab-only file)."""

    def __init__(self, path: str | os.PathLike):
        self._t = _core.Tokenizer(_resolve_path(path))

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        """Text to token ids. special=True turns special-token strings such as
        "<fim_prefix>" into their ids; otherwise they are ordinary text."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        return self._t.encode(text, special)

    def detokenize(self, ids: Iterable[int]) -> str:
        """Token ids to text. Bytes that are not valid UTF-8 (a token sequence
        cut inside a character) become U+FFFD."""
        return self._t.decode(list(ids)).decode("utf-8", errors="replace")

    def detokenize_bytes(self, ids: Iterable[int]) -> bytes:
        return self._t.decode(list(ids))

    def token_id(self, text: str) -> int:
        """Id of the token spelled `text` (e.g. "<fim_prefix>"), or -1."""
        return self._t.token_id(text)

    @property
    def n_vocab(self) -> int:
        return self._t.n_vocab

    @property
    def eos_id(self) -> int:
        return self._t.eos_id

    @property
    def bos_id(self) -> int:
        return self._t.bos_id


class Model:
    """A GPT-BigCode model from a GGUF file, with its KV cache.

    n_ctx: positions the KV cache holds (default: the model's context length,
    at most 8192). n_threads: CPU threads (default: all available cores).
    kv_type: the KV cache's element type, "f16" (default; half the memory and
    attention bandwidth, as llama.cpp), "f32" (float32 attention throughout)
    or "q8_0" (a quarter of f32; head_dim must be a multiple of 32).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_batch: int = 512,
        kv_type: str = "f16",
    ):
        n_ctx = _non_negative_int("n_ctx", n_ctx)
        n_threads = _non_negative_int("n_threads", n_threads)
        n_batch = _non_negative_int("n_batch", n_batch)
        if n_batch == 0:
            raise ValueError("n_batch must be >= 1")
        self.path = _resolve_path(path)
        if kv_type not in ("f16", "f32", "q8_0"):
            raise ValueError(f"kv_type must be 'f16', 'f32' or 'q8_0', got {kv_type!r}")
        self._m = _core.Model(self.path, n_ctx, n_threads, n_batch, kv_type)

    # --- tokens -----------------------------------------------------------
    def tokenize(self, text: str, special: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        return self._m.encode(text, special)

    def detokenize(self, ids: Iterable[int]) -> str:
        return self._m.decode(list(ids)).decode("utf-8", errors="replace")

    def token_id(self, text: str) -> int:
        return self._m.token_id(text)

    # --- evaluation -------------------------------------------------------
    def eval(self, tokens: Sequence[int], all_logits: bool = False) -> np.ndarray:
        """Evaluates `tokens` after those already in the KV cache.

        Returns the next-token logits of the last position, shape (n_vocab,),
        or of every new position, shape (len(tokens), n_vocab), with
        all_logits=True. Raises ValueError for an id outside the vocabulary and
        ContextOverflowError when the cache cannot hold the tokens; in both
        cases the cache is left unchanged.
        """
        return self._m.eval(tokens, all_logits)

    def reset(self) -> None:
        """Empties the KV cache."""
        self._m.reset()

    def truncate(self, n_keep: int) -> None:
        """Keeps only the first n_keep cached positions."""
        self._m.truncate(_non_negative_int("n_keep", n_keep))

    def generate(
        self, tokens: Sequence[int], max_new_tokens: int, stop_at_eos: bool = True
    ) -> list[int]:
        """Greedy decoding after `tokens`; returns the new ids (ending with EOS
        if it was produced and stop_at_eos). Reuses any cached prefix."""
        max_new_tokens = _non_negative_int("max_new_tokens", max_new_tokens)
        if len(tokens) == 0:
            raise ValueError("generate needs at least one prompt token")
        stop = [self.eos_id] if stop_at_eos else []
        return self._m.generate_greedy(tokens, max_new_tokens, stop)

    # --- text completion --------------------------------------------------
    def complete(
        self,
        prompt: str | Sequence[int],
        max_tokens: int = 128,
        temperature: float = 0.2,
        top_k: int = 0,
        top_p: float = 0.95,
        min_p: float = 0.0,
        repeat_penalty: float = 1.0,
        repeat_last_n: int = 64,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
        stream: bool = False,
        special: bool = True,
        truncate_prompt: bool = False,
    ):
        """Completes `prompt` (text, or token ids).

        Greedy when temperature is 0; otherwise samples with top-k (0: off),
        top-p (1: off) and min-p (0: off) after a repeat penalty (1: off).
        The same seed gives the same output (seed=None: a random one).
        Generation ends at end-of-text (finish_reason "eos"), at a stop string
        (matched on text across token boundaries, never included: "stop"), or
        after max_tokens ("length"). special=True recognises special-token
        strings such as <fim_prefix> in a text prompt.

        A prompt that does not fit the context raises ContextOverflowError, or
        with truncate_prompt=True loses tokens from its start so that it and
        max_tokens fit.

        Returns a CompletionText (a str with .finish_reason and token counts),
        or with stream=True a CompletionStream yielding str pieces as they are
        generated (a multi-byte character is never split between pieces).
        """
        ids = self._prompt_ids(prompt, special)
        return self._start(ids, max_tokens, stop, stream, truncate_prompt, [self.eos_id],
                           _sampling(temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n, seed))

    def infill(
        self,
        prefix: str,
        suffix: str,
        max_tokens: int = 128,
        temperature: float = 0.2,
        top_k: int = 0,
        top_p: float = 0.95,
        min_p: float = 0.0,
        repeat_penalty: float = 1.0,
        repeat_last_n: int = 64,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
        stream: bool = False,
        truncate_prompt: bool = False,
    ):
        """Fill-in-the-middle: returns the text between `prefix` and `suffix`.

        Builds StarCoder's PSM prompt <fim_prefix>{prefix}<fim_suffix>{suffix}
        <fim_middle> (prefix and suffix are plain text: special-token strings
        inside them are not interpreted) and stops at <|endoftext|> or
        <fim_pad>. Other arguments as for complete().
        """
        ids = fim_prompt_ids(self, prefix, suffix)
        stop_ids = [self.eos_id]
        pad = self.token_id("<fim_pad>")
        if pad >= 0:
            stop_ids.append(pad)
        return self._start(ids, max_tokens, stop, stream, truncate_prompt, stop_ids,
                           _sampling(temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n, seed))

    def complete_batch(
        self,
        prompts: Sequence[str],
        max_tokens: int = 128,
        temperature: float = 0.2,
        top_k: int = 0,
        top_p: float = 0.95,
        min_p: float = 0.0,
        repeat_penalty: float = 1.0,
        repeat_last_n: int = 64,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
        special: bool = True,
    ) -> list["CompletionText"]:
        """Completes several prompts together, decoding all of them in one
        forward pass per step (the weights are read once per step for all).
        Prompt i samples with seed + i. Uses KV-cache sequences 0..len-1."""
        if isinstance(prompts, str):
            raise TypeError("complete_batch takes a list of prompts")
        if len(prompts) == 0:
            return []
        ids = [self._prompt_ids(p, special) for p in prompts]
        max_tokens = _non_negative_int("max_tokens", max_tokens)
        sp = _sampling(temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n, seed)
        results = self._m.complete_batch(ids, sp, max_tokens, _stop_list(stop), [self.eos_id])
        return [
            CompletionText(text.decode("utf-8", errors="replace"), reason, len(p), 0, n)
            for (text, reason, n), p in zip(results, ids)
        ]

    def _prompt_ids(self, prompt, special: bool) -> list[int]:
        if isinstance(prompt, str):
            ids = self.tokenize(prompt, special=special)
        else:
            ids = [int(t) for t in prompt]
        if not ids:
            ids = [self.bos_id]  # an empty prompt starts a new document
        return ids

    def _start(self, ids, max_tokens, stop, stream, truncate_prompt, stop_ids, sp):
        max_tokens = _non_negative_int("max_tokens", max_tokens)
        if truncate_prompt:
            keep = max(1, self.n_ctx - max_tokens)
            ids = ids[-keep:]
        elif len(ids) > self.n_ctx:
            from ._core import ContextOverflowError

            raise ContextOverflowError(
                f"the prompt has {len(ids)} tokens but the context holds {self.n_ctx}; "
                "pass truncate_prompt=True to drop tokens from its start, or load the model with a larger n_ctx"
            )
        handle = self._m.start_completion(ids, sp, max_tokens, _stop_list(stop), stop_ids)
        it = CompletionStream(handle)
        if stream:
            return it
        text = "".join(it)
        return CompletionText(text, it.finish_reason, it.n_prompt_tokens, it.n_reused_tokens, len(it.tokens))

    def perplexity(self, text: str, window: int | None = None, stride: int | None = None,
                   progress=None) -> float:
        """Perplexity of `text` (tokenized as plain text, no BOS).

        The tokens are scored in windows of `window` tokens (default: the
        context, at most 1024), each evaluated from position 0; windows start
        `stride` tokens apart (default: `window`, i.e. non-overlapping), and
        each token is scored once, by the first window that predicts it with
        the most context. progress(done, total) is called after each window.
        """
        ids = self.tokenize(text)
        if len(ids) < 2:
            raise ValueError("perplexity needs a text of at least two tokens")
        window = _non_negative_int("window", window) or min(self.n_ctx, 1024)
        if window < 2 or window > self.n_ctx:
            raise ValueError(f"window must be in [2, n_ctx={self.n_ctx}]")
        stride = _non_negative_int("stride", stride) or window
        if stride > window:
            raise ValueError("stride must be <= window")
        nll, count = 0.0, 0
        scored_until = 1  # tokens [1, scored_until) have been scored
        starts = list(range(0, len(ids) - 1, stride))
        for k, start in enumerate(starts):
            chunk = ids[start:start + window]
            if len(chunk) < 2 or start + len(chunk) <= scored_until:  # nothing new to score
                if progress:
                    progress(k + 1, len(starts))
                continue
            self.reset()
            logits = self.eval(chunk, all_logits=True).astype(np.float64)
            first = max(scored_until - start, 1)  # first position in chunk to score
            targets = np.asarray(chunk[first:])
            rows = logits[first - 1:len(chunk) - 1]
            mx = rows.max(axis=1, keepdims=True)
            logz = np.log(np.exp(rows - mx).sum(axis=1)) + mx[:, 0]
            nll += float((logz - rows[np.arange(len(targets)), targets]).sum())
            count += len(targets)
            scored_until = start + len(chunk)
            if progress:
                progress(k + 1, len(starts))
        self.reset()
        return float(np.exp(nll / count))

    # --- metadata ---------------------------------------------------------
    n_vocab = property(lambda self: self._m.n_vocab)
    n_ctx = property(lambda self: self._m.n_ctx)
    n_ctx_train = property(lambda self: self._m.n_ctx_train)
    n_embd = property(lambda self: self._m.n_embd)
    n_ff = property(lambda self: self._m.n_ff)
    n_layer = property(lambda self: self._m.n_layer)
    n_head = property(lambda self: self._m.n_head)
    n_head_kv = property(lambda self: self._m.n_head_kv)
    n_threads = property(lambda self: self._m.n_threads)
    n_past = property(lambda self: self._m.n_past, doc="Positions in the KV cache.")
    eos_id = property(lambda self: self._m.eos_id)
    bos_id = property(lambda self: self._m.bos_id)
    metadata = property(lambda self: self._m.metadata, doc="GGUF metadata (arrays summarised).")

    def info(self) -> dict:
        """A summary: shape, context, threads, backend, tensor types."""
        types: dict[str, int] = {}
        for t in self._m.tensor_types.values():
            types[t] = types.get(t, 0) + 1
        return {
            "path": self.path,
            "name": self.metadata.get("general.name", ""),
            "architecture": self.metadata.get("general.architecture"),
            "n_vocab": self.n_vocab,
            "n_ctx_train": self.n_ctx_train,
            "n_ctx": self.n_ctx,
            "n_embd": self.n_embd,
            "n_ff": self.n_ff,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_head_kv": self.n_head_kv,
            "n_threads": self.n_threads,
            "backend": self._m.backend,
            "kv_type": self._m.kv_type,
            "tensor_types": types,
        }

    def __repr__(self) -> str:
        return (
            f"Model({self.path!r}, n_layer={self.n_layer}, n_embd={self.n_embd}, "
            f"n_head={self.n_head}, n_head_kv={self.n_head_kv}, n_ctx={self.n_ctx})"
        )
