"""Python face of the native core: argument checking and text conveniences.

All heavy work happens in starcoder_cpp._core with the GIL released.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from . import _core

_DEMO_MODEL = Path(__file__).resolve().parent / "models" / "tiny-bigcode-py-f16.gguf"


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
    """

    def __init__(
        self,
        path: str | os.PathLike,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_batch: int = 512,
    ):
        n_ctx = _non_negative_int("n_ctx", n_ctx)
        n_threads = _non_negative_int("n_threads", n_threads)
        n_batch = _non_negative_int("n_batch", n_batch)
        if n_batch == 0:
            raise ValueError("n_batch must be >= 1")
        self.path = _resolve_path(path)
        self._m = _core.Model(self.path, n_ctx, n_threads, n_batch)

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

    def complete(self, prompt: str, max_tokens: int = 64) -> str:
        """Greedy text completion of `prompt` (special-token strings in the
        prompt, e.g. <fim_prefix>, are recognised). Stops at end of text."""
        ids = self.tokenize(prompt, special=True)
        if not ids:
            ids = [self.bos_id]
        new = self.generate(ids, max_tokens)
        if new and new[-1] == self.eos_id:
            new = new[:-1]
        return self.detokenize(new)

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
            "tensor_types": types,
        }

    def __repr__(self) -> str:
        return (
            f"Model({self.path!r}, n_layer={self.n_layer}, n_embd={self.n_embd}, "
            f"n_head={self.n_head}, n_head_kv={self.n_head_kv}, n_ctx={self.n_ctx})"
        )
