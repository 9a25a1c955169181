"""Typed reads of JSON request fields: each bad value raises the API's
validation error naming the field."""

from __future__ import annotations

import math

from .errors import validation


class Fields:
    """A request's JSON object; get_* return the default for a missing field or null."""

    def __init__(self, body, where: str = "request body"):
        if not isinstance(body, dict):
            raise validation(f"the {where} must be a JSON object")
        self.body = body

    def has(self, name: str) -> bool:
        return self.body.get(name) is not None

    def raw(self, name: str, default=None):
        v = self.body.get(name)
        return default if v is None else v

    def int(self, name: str, default, lo=None, hi=None):
        v = self.body.get(name)
        if v is None:
            return default
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise validation(f"`{name}` must be an integer, got {_show(v)}", name)
        _range(name, v, lo, hi)
        return v

    def float(self, name: str, default, lo=None, hi=None, lo_open=False):
        v = self.body.get(name)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise validation(f"`{name}` must be a number, got {_show(v)}", name)
        if lo_open and lo is not None and v <= lo:
            raise validation(f"`{name}` must be > {lo}, got {v}", name)
        _range(name, v, None if lo_open else lo, hi)
        return float(v)

    def bool(self, name: str, default):
        v = self.body.get(name)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise validation(f"`{name}` must be true or false, got {_show(v)}", name)
        return v

    def str(self, name: str, default):
        v = self.body.get(name)
        if v is None:
            return default
        if not isinstance(v, str):
            raise validation(f"`{name}` must be a string, got {_show(v)}", name)
        return v

    def stop(self, name: str, max_n: int | None = None) -> list:
        v = self.body.get(name)
        if v is None:
            return []
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise validation(f"`{name}` must be a string or a list of strings", name)
        if max_n is not None and len(v) > max_n:
            raise validation(f"`{name}` holds {len(v)} sequences; at most {max_n} are allowed", name)
        return [s for s in v if s]  # an empty stop string would match everywhere: it means nothing


def _range(name, v, lo, hi):
    if lo is not None and v < lo:
        raise validation(f"`{name}` must be >= {lo}, got {v}", name)
    if hi is not None and v > hi:
        raise validation(f"`{name}` must be <= {hi}, got {v}", name)


def _show(v) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."
