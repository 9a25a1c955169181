"""The converter's error, and reading its JSON inputs into it."""

from __future__ import annotations

import json
from pathlib import Path


class ConversionError(ValueError):
    """The checkpoint cannot be converted (bad or unsupported input)."""


def load_json(path: Path, what: str) -> dict:
    """A JSON object from ``path``; every way of failing is a ConversionError naming ``what``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConversionError(f"{what} not found: {path}") from None
    except OSError as e:
        raise ConversionError(f"cannot read {what} {path}: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConversionError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: expected a JSON object")
    return data
