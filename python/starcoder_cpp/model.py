"""Python face of the native core: argument checking and text conveniences.

All heavy work happens in starcoder_cpp._core with the GIL released.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from . import _core
from .sampling import SamplingOptions

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
    if not os.path.isfile(p):  # reading a FIFO would wait for a writer
        raise _core.GGUFError(f"{p}: not a regular file (a FIFO, device or socket cannot be mapped)")
    return p


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


FIM_TOKENS = ("<fim_prefix>", "<fim_suffix>", "<fim_middle>")
FIM_ORDERS = ("psm", "spm")
# When a fill-in-the-middle prompt is longer than the room it has, the suffix
# keeps at most a quarter of the room and the prefix the rest (more for the
# suffix when the prefix needs less): the code just before the gap matters
# most. llama.cpp's /infill splits its batch 3:1 the same way.
FIM_SUFFIX_SHARE = 0.25


def _fim_ids(model) -> dict:
    ids = {}
    for name in FIM_TOKENS:
        ids[name] = model.token_id(name)
        if ids[name] < 0:
            raise ValueError(f"this model's vocabulary has no {name} token: it was not trained for fill-in-the-middle")
    return ids


def fim_prompt_ids(model, prefix: str, suffix: str, order: str = "psm", room: int | None = None) -> list[int]:
    """StarCoder's fill-in-the-middle prompt as token ids.

    order="psm": <fim_prefix>PREFIX<fim_suffix>SUFFIX<fim_middle>
    order="spm": <fim_prefix><fim_suffix>SUFFIX<fim_middle>PREFIX, the
    suffix-prefix-middle layout bigcode's Megatron-LM trained StarCoder with
    (the "SPM variant 2" of the FIM paper: both sentinels first, then the
    suffix, then the prefix right before the middle). In SPM the text at the
    cursor is the end of the prompt, so typing there keeps the cached rest.

    With `room` (the most tokens the prompt may have), a longer prompt loses
    tokens from the start of the prefix and the end of the suffix, split as
    FIM_SUFFIX_SHARE says; the three FIM tokens are always kept.
    """
    for name, text in (("prefix", prefix), ("suffix", suffix)):
        if not isinstance(text, str):
            raise TypeError(f"{name} must be str, not {type(text).__name__}")
    if order not in FIM_ORDERS:
        raise ValueError(f"fim order must be 'psm' or 'spm', got {order!r}")
    ids = _fim_ids(model)
    pre_id, suf_id, mid_id = ids["<fim_prefix>"], ids["<fim_suffix>"], ids["<fim_middle>"]
    pre, suf = model.tokenize(prefix), model.tokenize(suffix)
    if room is not None and len(pre) + len(suf) + len(FIM_TOKENS) > room:
        text_room = room - len(FIM_TOKENS)
        if text_room < 0:
            raise ValueError(f"a fill-in-the-middle prompt needs at least {len(FIM_TOKENS)} tokens, room is {room}")
        n_suf = min(len(suf), int(text_room * FIM_SUFFIX_SHARE))
        n_pre = min(len(pre), text_room - n_suf)
        n_suf = min(len(suf), text_room - n_pre)
        pre, suf = pre[len(pre) - n_pre:], suf[:n_suf]
    if order == "spm":
        return [pre_id, suf_id] + suf + [mid_id] + pre
    return [pre_id] + pre + [suf_id] + suf + [mid_id]


def end_token_ids(model, fim: bool) -> list[int]:
    """Tokens that end a completion instead of appearing in it: end-of-text,
    <fim_pad> and <file_sep> (StarCoder 2's file boundary) always; for
    fill-in-the-middle also the FIM sentinels, which the model emits when it
    has finished the middle and starts another part of the format."""
    names = ["<fim_pad>", "<file_sep>"] + (list(FIM_TOKENS) if fim else [])
    out = [model.eos_id]
    for name in names:
        t = model.token_id(name)
        if t >= 0 and t not in out:
            out.append(t)
    return out


def suffix_echo_stop(suffix: str) -> list[str]:
    """A stop string that ends an infill when it starts repeating the suffix:
    the suffix's first non-blank line after a newline. Short lines (a lone
    ")" or "else:") are left out: they recur in real middles."""
    for line in suffix.split("\n"):
        if line.strip():
            line = line.rstrip()
            return ["\n" + line] if len(line.strip()) >= 6 else []
    return []


def completion_ends(model, ids: Sequence[int], suffix: str | None = None) -> tuple[list[int], list[str]]:
    """(stop token ids, extra stop strings) for a completion of prompt `ids`.
    A prompt holding <fim_middle> is fill-in-the-middle; its suffix is taken
    from between the sentinels when not given."""
    mid = model.token_id("<fim_middle>")
    fim = suffix is not None or (mid >= 0 and mid in ids)
    stops: list[str] = []
    if fim:
        if suffix is None:
            suffix = _suffix_of(model, list(ids))
        stops = suffix_echo_stop(suffix)
    return end_token_ids(model, fim), stops


def _suffix_of(model, ids: list[int]) -> str:
    suf, mid = model.token_id("<fim_suffix>"), model.token_id("<fim_middle>")
    if suf not in ids:
        return ""
    start = ids.index(suf) + 1
    try:
        end = ids.index(mid, start)
    except ValueError:
        end = len(ids)
    return model.detokenize(ids[start:end])


def _check_type(name: str, value, types, what: str) -> None:
    """TypeError naming the argument, instead of pybind11's "incompatible
    function arguments" listing the C++ signature."""
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise TypeError(f"{name} must be {what}, not bool")
    if not isinstance(value, types):
        raise TypeError(f"{name} must be {what}, not {type(value).__name__}")


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
        _check_type("special", special, bool, "a bool")
        return self._t.encode(text, special)

    def detokenize(self, ids: Iterable[int]) -> str:
        """Token ids to text. Bytes that are not valid UTF-8 (a token sequence
        cut inside a character) become U+FFFD."""
        return self._t.decode(_core.token_ids(ids, "ids")).decode("utf-8", errors="replace")

    def detokenize_bytes(self, ids: Iterable[int]) -> bytes:
        return self._t.decode(_core.token_ids(ids, "ids"))

    def token_id(self, text: str) -> int:
        """Id of the token spelled `text` (e.g. "<fim_prefix>"), or -1."""
        _check_type("text", text, str, "str")
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
    at most 8192). n_threads: CPU threads (default: all available cores);
    more than 4x the cores this process may use is refused with ValueError
    (threads beyond the cores only take turns and slow each step down), and
    threads the system cannot create raise RuntimeError.
    kv_type: the KV cache's element type, "f16" (default; half the memory and
    attention bandwidth, as llama.cpp), "f32" (float32 attention throughout)
    or "q8_0" (a quarter of f32; head_dim must be a multiple of 32).
    backend: "cpu" (default), "cuda" (raises BackendError naming what is
    missing when this build or machine cannot run it) or "auto" (the best
    that works; info()["backend_note"] says why).
    matmul_precision: how prompts (3+ tokens) multiply F16 and BF16 weights:
    "f32" (default; float32 products of the exact weights) or "bf16" (the
    weights and activations rounded to bfloat16, products summed in float32,
    as transformers' bfloat16; about twice as fast where the CPU has
    AVX512_BF16, and no different from "f32" where it has not).
    info()["matmul_precision"] says which is in force. Decode and quantized
    weights are the same either way.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_batch: int = 512,
        kv_type: str = "f16",
        backend: str = "cpu",
        matmul_precision: str = "f32",
    ):
        n_ctx = _non_negative_int("n_ctx", n_ctx)
        n_threads = _non_negative_int("n_threads", n_threads)
        n_batch = _non_negative_int("n_batch", n_batch)
        if n_batch == 0:
            raise ValueError("n_batch must be >= 1")
        self.path = _resolve_path(path)
        if kv_type not in ("f16", "f32", "q8_0"):
            raise ValueError(f"kv_type must be 'f16', 'f32' or 'q8_0', got {kv_type!r}")
        if not isinstance(backend, str) or backend not in _core.backend_names():
            raise ValueError(f"backend must be one of {_core.backend_names()}, got {backend!r}")
        if matmul_precision not in ("f32", "bf16"):
            raise ValueError(f"matmul_precision must be 'f32' or 'bf16', got {matmul_precision!r}")
        self._m = _core.Model(self.path, n_ctx, n_threads, n_batch, kv_type, backend, matmul_precision)

    # --- tokens -----------------------------------------------------------
    def tokenize(self, text: str, special: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        _check_type("special", special, bool, "a bool")
        return self._m.encode(text, special)

    def detokenize(self, ids: Iterable[int]) -> str:
        return self._m.decode(_core.token_ids(ids, "ids")).decode("utf-8", errors="replace")

    def token_id(self, text: str) -> int:
        _check_type("text", text, str, "str")
        return self._m.token_id(text)

    # --- evaluation -------------------------------------------------------
    def eval(self, tokens: Sequence[int], all_logits: bool = False) -> np.ndarray:
        """Evaluates `tokens` after those already in the KV cache.

        Returns the next-token logits of the last position, shape (n_vocab,),
        or of every new position, shape (len(tokens), n_vocab), with
        all_logits=True. Raises ValueError for an id outside the vocabulary and
        ContextOverflowError when the cache cannot hold the tokens; in both
        cases the cache is left unchanged. Token ids must be integers (ints,
        or a numpy integer array): anything else is a TypeError.
        """
        _check_type("all_logits", all_logits, bool, "a bool")
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
        tokens = _core.token_ids(tokens, "tokens")
        if len(tokens) == 0:
            raise ValueError("generate needs at least one prompt token")
        stop = [self.eos_id] if stop_at_eos else []
        return self._m.generate_greedy(tokens, max_new_tokens, stop)

    # --- text completion --------------------------------------------------
    def complete(
        self,
        prompt: str | Sequence[int],
        max_tokens: int = 128,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        repeat_penalty: float | None = None,
        repeat_last_n: int | None = None,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
        stream: bool = False,
        special: bool = True,
        truncate_prompt: bool = False,
        sampling: SamplingOptions | None = None,
    ):
        """Completes `prompt` (text, or token ids).

        Sampling follows `sampling` (default: SamplingOptions(), i.e.
        temperature 0.2, top-p 0.95), with any of temperature, top_k, top_p,
        min_p, repeat_penalty, repeat_last_n and seed given here taking the
        place of its field. Greedy when temperature is 0. The same seed gives
        the same output (no seed: a random one).
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
        opts = SamplingOptions.merged(sampling, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                                      repeat_penalty=repeat_penalty, repeat_last_n=repeat_last_n, seed=seed)
        ids = self._prompt_ids(prompt, special)
        stop_ids, echo_stops = completion_ends(self, ids)
        return self._start(ids, max_tokens, _stop_list(stop) + echo_stops, stream, truncate_prompt, stop_ids, opts)

    def infill(
        self,
        prefix: str,
        suffix: str,
        max_tokens: int = 128,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        repeat_penalty: float | None = None,
        repeat_last_n: int | None = None,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
        stream: bool = False,
        truncate_prompt: bool = False,
        sampling: SamplingOptions | None = None,
        fim_order: str = "psm",
    ):
        """Fill-in-the-middle: returns the text between `prefix` and `suffix`.

        Builds StarCoder's prompt, <fim_prefix>{prefix}<fim_suffix>{suffix}
        <fim_middle> (fim_order="psm") or <fim_prefix><fim_suffix>{suffix}
        <fim_middle>{prefix} ("spm"); prefix and suffix are plain text
        (special-token strings inside them are not interpreted). The middle
        never contains a special token: <|endoftext|>, <fim_pad>, <file_sep>
        and the FIM sentinels end it, and so does the model starting to
        repeat the suffix's first line. A prompt that does not fit raises
        ContextOverflowError, or with truncate_prompt=True keeps the end of
        the prefix and the start of the suffix, so that it and max_tokens fit:
        the suffix gets at most a quarter of the room (FIM_SUFFIX_SHARE), the
        prefix the rest, and the FIM tokens stay. Other arguments as for
        complete().
        """
        opts = SamplingOptions.merged(sampling, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                                      repeat_penalty=repeat_penalty, repeat_last_n=repeat_last_n, seed=seed)
        max_tokens = _non_negative_int("max_tokens", max_tokens)
        room = max(len(FIM_TOKENS), self.n_ctx - max_tokens) if truncate_prompt else None
        ids = fim_prompt_ids(self, prefix, suffix, fim_order, room)
        stop_ids, echo_stops = completion_ends(self, ids, suffix)
        # already cut to fit; _start's own truncation would drop the FIM tokens
        return self._start(ids, max_tokens, _stop_list(stop) + echo_stops, stream, False, stop_ids, opts)

    def complete_batch(
        self,
        prompts: Sequence[str],
        max_tokens: int = 128,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        repeat_penalty: float | None = None,
        repeat_last_n: int | None = None,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
        special: bool = True,
        sampling: SamplingOptions | None = None,
    ) -> list["CompletionText"]:
        """Completes several prompts together, decoding all of them in one
        forward pass per step (the weights are read once per step for all).
        Prompt i samples with seed + i. Uses KV-cache sequences 0..len-1.
        Sampling arguments as for complete()."""
        opts = SamplingOptions.merged(sampling, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                                      repeat_penalty=repeat_penalty, repeat_last_n=repeat_last_n, seed=seed)
        if isinstance(prompts, str):
            raise TypeError("complete_batch takes a list of prompts")
        if len(prompts) == 0:
            return []
        ids = [self._prompt_ids(p, special) for p in prompts]
        max_tokens = _non_negative_int("max_tokens", max_tokens)
        results = self._m.complete_batch(ids, opts.core_params(), max_tokens, _stop_list(stop),
                                         end_token_ids(self, False))
        return [
            CompletionText(text.decode("utf-8", errors="replace"), reason, len(p), 0, n)
            for (text, reason, n), p in zip(results, ids)
        ]

    def _prompt_ids(self, prompt, special: bool) -> list[int]:
        if isinstance(prompt, str):
            ids = self.tokenize(prompt, special=special)
        else:
            if not isinstance(prompt, (Sequence, np.ndarray)):
                raise TypeError(f"prompt must be str or a sequence of token ids, not {type(prompt).__name__}")
            ids = _core.token_ids(prompt, "prompt")
        if not ids:
            ids = [self.bos_id]  # an empty prompt starts a new document
        return ids

    def _start(self, ids, max_tokens, stop, stream, truncate_prompt, stop_ids, opts: SamplingOptions):
        # no completion outgrows the context: a larger request means "until it is full"
        max_tokens = min(_non_negative_int("max_tokens", max_tokens), self.n_ctx)
        if truncate_prompt:
            keep = max(1, self.n_ctx - max_tokens)
            ids = ids[-keep:]
        elif len(ids) > self.n_ctx:
            e = _core.ContextOverflowError(
                f"the prompt has {len(ids)} tokens but the context holds {self.n_ctx}; "
                "pass truncate_prompt=True to drop tokens from its start, or load the model with a larger n_ctx"
            )
            e.n_prompt_tokens, e.n_ctx = len(ids), self.n_ctx  # for callers that word their own hint (the CLI)
            raise e
        handle = self._m.start_completion(ids, opts.core_params(), max_tokens, _stop_list(stop), stop_ids)
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
            "backend_note": self._m.backend_note,
            "kv_type": self._m.kv_type,
            "matmul_precision": self._m.matmul_precision,
            "kv_bytes_per_sequence": self._m.kv_bytes_per_seq,  # a full context of one sequence (server slot)
            "tensor_types": types,
        }

    def __repr__(self) -> str:
        return (
            f"Model({self.path!r}, n_layer={self.n_layer}, n_embd={self.n_embd}, "
            f"n_head={self.n_head}, n_head_kv={self.n_head_kv}, n_ctx={self.n_ctx})"
        )
