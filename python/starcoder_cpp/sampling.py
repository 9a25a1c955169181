"""How the next token is chosen: one set of options and defaults for
``complete``, ``infill``, ``complete_batch``, the CLI and the server.

The chain runs in the C++ core (``csrc/sampling.*``): repeat penalty ->
temperature -> top-k -> top-p -> min-p -> a seeded draw; temperature 0 is
greedy. The defaults here are the C++ ``SamplingParams`` defaults (a test
holds them equal): low-temperature nucleus sampling, the setting StarCoder's
authors use for code.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["SamplingOptions"]


def _number(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, not {type(v).__name__}")
    return float(v)


def _integer(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {type(v).__name__}")
    return int(v)


@dataclass(frozen=True)
class SamplingOptions:
    """Sampling settings; invalid values raise on construction.

    temperature: 0 for greedy decoding. top_k: keep the k most likely tokens
    (0: off). top_p: keep the smallest set of tokens whose probability reaches
    p (1: off). min_p: drop tokens below min_p x the best one's probability
    (0: off). repeat_penalty: CTRL-style penalty on the last repeat_last_n
    tokens (1: off; repeat_last_n -1: all). seed: the same seed gives the same
    output; None picks a random one per call.
    """

    temperature: float = 0.2
    top_k: int = 0
    top_p: float = 0.95
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    seed: Optional[int] = None

    def __post_init__(self):
        for name in ("temperature", "top_p", "min_p", "repeat_penalty"):
            object.__setattr__(self, name, _number(name, getattr(self, name)))
        for name in ("top_k", "repeat_last_n"):
            object.__setattr__(self, name, _integer(name, getattr(self, name)))
        if self.seed is not None:
            seed = _integer("seed", self.seed)
            if not 0 <= seed < 2**64:
                raise ValueError(f"seed must be a non-negative 64-bit int, got {seed!r}")
            object.__setattr__(self, "seed", seed)
        self._params(0).check()  # the value ranges are the C++ core's: one rule for every caller

    def replace(self, **changes) -> "SamplingOptions":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def _params(self, seed: int):
        from . import _core

        p = _core.SamplingParams()
        p.temperature = self.temperature
        p.top_k = self.top_k
        p.top_p = self.top_p
        p.min_p = self.min_p
        p.repeat_penalty = self.repeat_penalty
        p.repeat_last_n = self.repeat_last_n
        p.seed = seed
        return p

    def core_params(self):
        """The C++ core's ``SamplingParams``; a random seed when ``seed`` is None."""
        seed = self.seed if self.seed is not None else int.from_bytes(os.urandom(8), "little")
        return self._params(seed)

    @classmethod
    def merged(cls, sampling: Optional["SamplingOptions"], **fields) -> "SamplingOptions":
        """``sampling`` (default: ``SamplingOptions()``) with the fields given
        as keywords (not None) taking their place: what ``complete(...,
        temperature=0)`` and ``complete(..., sampling=opts)`` both build."""
        if sampling is not None and not isinstance(sampling, cls):
            raise TypeError(f"sampling must be a SamplingOptions, not {type(sampling).__name__}")
        base = sampling if sampling is not None else cls()
        given = {k: v for k, v in fields.items() if v is not None}
        return base.replace(**given) if given else base
