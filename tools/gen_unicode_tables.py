#!/usr/bin/env python3
"""Generate csrc/text/unicode_tables.inc: the codepoint classes the pre-tokenizer needs.

Usage:
    python tools/gen_unicode_tables.py            # (re)write csrc/text/unicode_tables.inc
    python tools/gen_unicode_tables.py --check    # exit 1 if the file is stale

Source of truth
---------------
The tables must reproduce what Hugging Face ``tokenizers`` does, not what some
Unicode database says, because the StarCoder pipeline mixes two engines:

* ``Digits(individual_digits=True)`` isolates every char for which Rust's
  ``char::is_numeric`` is true (general category Nd/Nl/No of the Unicode
  version of the Rust toolchain that built the wheel);
* ``ByteLevel(use_regex=True)`` splits with Oniguruma, whose ``\\p{L}``,
  ``\\p{N}`` and ``\\s`` come from Oniguruma's own (older) Unicode data.

So the classes are measured on the installed ``tokenizers`` itself, one
codepoint at a time (all 0x110000 minus the surrogates, which a Python str
sent to Rust cannot hold), by how it splits small probe strings:

    ByteLevel  "a"+ch   -> 1 piece  <=> ch is \\p{L}   (" ?\\p{L}+" takes both)
    ByteLevel  "1"+ch   -> 1 piece  <=> ch is \\p{N}
    ByteLevel  "!"+ch   -> 1 piece  <=> ch is none of \\s, \\p{L}, \\p{N}
    ByteLevel  "\\t"+ch  -> 1 piece  <=> ch is \\s     ("\\s+(?!\\S)" at the end)
    Digits     "a"+ch+"a" -> 3 pieces <=> char::is_numeric(ch)

Exactly one of the four ByteLevel probes must hold for every codepoint; the
script asserts it.

Findings with tokenizers 0.23.3 (recorded here so a reader need not rerun):

* ``\\p{L}``/``\\p{N}`` match Unicode 16.0 (e.g. U+1C89 is a letter), which
  differs from Python 3.11's ``unicodedata`` (14.0) on ~9300 letters and
  120 numbers, and from the ``regex`` module (Unicode 17) on ~4600 letters.
* ``char::is_numeric`` matches Unicode 17.0: it agrees with ``regex``'s
  ``\\p{N}`` on every codepoint, and 13 codepoints new in 17.0
  (U+11DE0..U+11DE9, U+16FF4..U+16FF6) are split by Digits although the
  Oniguruma regex does not see them as \\p{N}.
* ``\\s`` is Unicode White_Space: U+0009..U+000D, U+0020, U+0085, U+00A0,
  U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000. Unlike
  Python's ``str.isspace`` it does NOT include U+001C..U+001F.

Hence the tables come from the probes, and --check reruns them, so a newer
``tokenizers`` that changes its Unicode data is caught.

Output: sorted, non-overlapping ranges ``{first, last, flags}`` of the
codepoints whose flags are not 0, where
    flags & 3 : 0 other, 1 letter (\\p{L}), 2 number (\\p{N}), 3 whitespace (\\s)
    flags & 4 : char::is_numeric (isolated by the Digits pre-tokenizer)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT_PATH = REPO / "csrc" / "text" / "unicode_tables.inc"

OTHER, LETTER, NUMBER, SPACE = 0, 1, 2, 3
NUMERIC_SPLIT = 4


def probe_flags() -> bytearray:
    """flags[cp] for every codepoint, measured on the installed tokenizers."""
    from tokenizers import pre_tokenizers as pt

    byte_level = pt.ByteLevel(add_prefix_space=False, use_regex=True)
    digits = pt.Digits(individual_digits=True)

    def pieces(pre, text: str) -> int:
        return len(pre.pre_tokenize_str(text))

    flags = bytearray(0x110000)
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue  # surrogates cannot reach tokenizers from Python
        ch = chr(cp)
        is_letter = pieces(byte_level, "a" + ch) == 1
        is_number = pieces(byte_level, "1" + ch) == 1
        is_other = pieces(byte_level, "!" + ch) == 1
        is_space = pieces(byte_level, "\t" + ch) == 1
        if is_letter + is_number + is_other + is_space != 1:
            raise SystemExit(
                f"U+{cp:04X}: ambiguous probe result "
                f"(L={is_letter} N={is_number} other={is_other} S={is_space})"
            )
        cls = LETTER if is_letter else NUMBER if is_number else SPACE if is_space else OTHER
        if pieces(digits, "a" + ch + "a") == 3:
            cls |= NUMERIC_SPLIT
        flags[cp] = cls
    return flags


def to_ranges(flags: bytearray) -> list[tuple[int, int, int]]:
    ranges: list[list[int]] = []
    for cp, f in enumerate(flags):
        if not f:
            continue
        if ranges and ranges[-1][1] == cp - 1 and ranges[-1][2] == f:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp, f])
    return [tuple(r) for r in ranges]


def cross_check(flags: bytearray) -> None:
    """Print how the measured classes differ from Python's Unicode data (info only)."""
    import unicodedata

    diff_l = diff_n = diff_s = 0
    for cp, f in enumerate(flags):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        cat = unicodedata.category(chr(cp))
        diff_l += (cat[0] == "L") != ((f & 3) == LETTER)
        diff_n += (cat[0] == "N") != ((f & 3) == NUMBER)
        diff_s += chr(cp).isspace() != ((f & 3) == SPACE)
    print(
        f"vs unicodedata {unicodedata.unidata_version}: {diff_l} letter, "
        f"{diff_n} number, {diff_s} whitespace differences",
        file=sys.stderr,
    )


def render(ranges, version: str) -> str:
    lines = [
        "// Generated by tools/gen_unicode_tables.py -- do not edit by hand.",
        f"// Measured on Hugging Face tokenizers {version} (see the script's docstring).",
        "// {first, last, flags}: flags & 3 = 0 other, 1 \\p{L}, 2 \\p{N}, 3 \\s;",
        "// flags & 4 = char::is_numeric (isolated by Digits). Unlisted codepoints: 0.",
        f"// {len(ranges)} ranges.",
        "static constexpr CodepointRange kCodepointRanges[] = {",
    ]
    for first, last, f in ranges:
        lines.append(f"    {{0x{first:05X}, 0x{last:05X}, {f}}},")
    lines.append("};")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="verify instead of writing")
    ap.add_argument("--out", type=Path, default=OUT_PATH)
    args = ap.parse_args()

    import tokenizers

    flags = probe_flags()
    cross_check(flags)
    text = render(to_ranges(flags), tokenizers.__version__)
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        # The version line may differ while the data is identical.
        strip = lambda s: [l for l in s.splitlines() if "Measured on" not in l]  # noqa: E731
        if strip(current) != strip(text):
            print(f"{args.out} is stale; rerun without --check", file=sys.stderr)
            return 1
        print(f"{args.out} matches tokenizers {tokenizers.__version__}")
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
