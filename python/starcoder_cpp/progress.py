"""Progress bars (tqdm, which gguf-py depends on anyway), drawn only on a terminal."""

from __future__ import annotations

import sys


def progress_bar(total: int, desc: str, unit: str = "B", enabled: bool = True):
    """A tqdm bar on stderr; silent when ``enabled`` is false or stderr is not
    a terminal (pipes, logs and tests get no carriage-return clutter)."""
    from tqdm import tqdm

    in_bytes = unit == "B"
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=in_bytes, unit_divisor=1024 if in_bytes else 1000,
                file=sys.stderr, disable=None if enabled else True, leave=True)
