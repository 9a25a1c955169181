"""The C++ BPE tokenizer against Hugging Face `tokenizers`, token for token.

Both StarCoder vocabularies in tests/data/vocab are checked: the upstream /
locally generated test vectors, hypothesis-generated text, and Python's
standard library. See tests/data/README.md for what the files are.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sysconfig
import threading
import tokenize
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

try:  # the shared conftest turns skips into failures under STARCODER_REQUIRE_PEERS=1
    from conftest import require, require_path
except ImportError:  # pragma: no cover - running this file on its own
    require = pytest.importorskip

    def require_path(path: Path) -> Path:
        if not path.exists():
            pytest.skip(f"{path} not present")
        return path


from starcoder_cpp import Tokenizer

REPO = Path(__file__).resolve().parents[1]
VOCAB_DIR = REPO / "tests" / "data" / "vocab"
# (GGUF vocabulary, the tokenizer.json rebuilt from it)
VOCABS = {
    "starcoder2": ("ggml-vocab-starcoder.gguf", "starcoder-tokenizer.json"),
    "starcoder1": ("ggml-vocab-starcoder-v1.gguf", "starcoder-v1-tokenizer.json"),
}
VECTOR_SEPARATOR = "\n__ggml_vocab_test__\n"
N_VECTORS = 46


# --------------------------------------------------------------------------
# Fixtures


class Pair:
    """Our tokenizer and the two HF views of the same vocabulary."""

    def __init__(self, name: str):
        tokenizers = require("tokenizers")
        gguf_name, json_name = VOCABS[name]
        self.name = name
        self.gguf = require_path(VOCAB_DIR / gguf_name)
        self.ours = Tokenizer(str(self.gguf))
        json_path = str(require_path(VOCAB_DIR / json_name))
        # HF parses added (special) tokens in the text even with
        # add_special_tokens=False: that is our special=True.
        self.hf_special = tokenizers.Tokenizer.from_file(json_path)
        # encode_special_tokens=True makes HF treat special-token strings as
        # ordinary text: that is our special=False.
        self.hf_plain = tokenizers.Tokenizer.from_file(json_path)
        self.hf_plain.encode_special_tokens = True
        # Bytes without a single-byte token (the StarCoder vocabs lack 14,
        # among them 0xF1, the lead byte of U+40000..U+7FFFF): HF's BPE drops
        # them (no unk token), and so do we, so such text cannot round-trip.
        vocab = self.hf_special.get_vocab()
        self.missing_bytes = {b for b, ch in gpt2_byte_alphabet().items() if ch not in vocab}
        self.specials = {
            tok.content: tok_id
            for tok_id, tok in self.hf_special.get_added_tokens_decoder().items()
            if tok.special
        }

    def hf(self, text: str, special: bool) -> list[int]:
        hf = self.hf_special if special else self.hf_plain
        return hf.encode(text, add_special_tokens=False).ids

    def check(self, text: str, special: bool) -> None:
        ours = self.ours.tokenize(text, special=special)
        expected = self.hf(text, special)
        assert ours == expected, f"{self.name} special={special} text={text!r}"


def gpt2_byte_alphabet() -> dict[int, str]:
    """GPT-2's bytes_to_unicode: byte -> the char that spells it in the vocab."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = iter(range(256, 512))
    return {b: chr(b) if b in keep else chr(next(extra)) for b in range(256)}


@pytest.fixture(scope="module", params=sorted(VOCABS))
def pair(request) -> Pair:
    return Pair(request.param)


@functools.lru_cache(maxsize=None)
def load_ours(gguf_name: str) -> Tokenizer:
    return Tokenizer(str(require_path(VOCAB_DIR / gguf_name)))


def read_vectors(gguf_name: str) -> list[tuple[str, list[int]]]:
    """The .inp/.out pair, parsed as tests/data/README.md describes."""
    inp = require_path(VOCAB_DIR / (gguf_name + ".inp")).read_bytes().decode("utf-8")
    out = require_path(VOCAB_DIR / (gguf_name + ".out")).read_text(encoding="ascii")
    texts = inp.split(VECTOR_SEPARATOR)
    assert texts[-1] == "", "the .inp file must end with a separator"
    texts = texts[:-1]
    ids = [[int(x) for x in line.strip().split()] for line in out.split("\n")[: len(texts)]]
    return list(zip(texts, ids))


def vector_cases():
    return [pytest.param(gguf_name, index, id=f"{name}-{index}")
            for name, (gguf_name, _) in sorted(VOCABS.items()) for index in range(N_VECTORS)]


# --------------------------------------------------------------------------
# Reference vectors


@pytest.mark.parametrize("gguf_name", [v[0] for v in VOCABS.values()])
def test_vector_files_hold_46_distinct_inputs(gguf_name):
    vectors = read_vectors(gguf_name)
    assert len(vectors) == N_VECTORS
    assert len({text for text, _ in vectors}) == N_VECTORS


@pytest.mark.parametrize("gguf_name,index", vector_cases())
def test_vector_ids_match_reference(gguf_name, index):
    text, expected = read_vectors(gguf_name)[index]
    assert load_ours(gguf_name).tokenize(text, special=False) == expected


@pytest.mark.parametrize("gguf_name,index", vector_cases())
def test_vector_ids_detokenize_to_the_input(gguf_name, index):
    text, expected = read_vectors(gguf_name)[index]
    assert load_ours(gguf_name).detokenize(expected) == text


# --------------------------------------------------------------------------
# Basic properties


def test_vocabulary_size_matches_hf(pair):
    assert pair.ours.n_vocab == pair.hf_special.get_vocab_size() == 49152


def test_empty_text_gives_no_tokens(pair):
    assert pair.ours.tokenize("") == []
    assert pair.ours.tokenize("", special=True) == []


def test_each_digit_is_its_own_pre_token(pair):
    # Digits(individual_digits) runs before the regex: " 33" is " ", "3", "3".
    space, three = pair.ours.tokenize(" "), pair.ours.tokenize("3")
    assert pair.ours.tokenize(" 33") == space + three + three


def test_bytes_missing_from_the_vocabulary_are_dropped_like_hf(pair):
    assert 0xF1 in pair.missing_bytes
    text = "a\U00040000b\U0007FFFF"  # UTF-8 lead byte 0xF1
    pair.check(text, special=False)
    assert pair.ours.detokenize(pair.ours.tokenize(text)) != text


@pytest.mark.parametrize("bad", [-1, 49152, 2**31 - 1])
def test_detokenize_rejects_an_id_outside_the_vocabulary(pair, bad):
    with pytest.raises((IndexError, ValueError)):
        pair.ours.detokenize([0, bad])


# --------------------------------------------------------------------------
# Special tokens


def test_special_token_strings_become_their_ids_with_special_true(pair):
    assert len(pair.specials) in (19, 38)
    for content, tok_id in pair.specials.items():
        assert pair.ours.tokenize(content, special=True) == [tok_id], content


def test_special_token_strings_are_plain_text_by_default(pair):
    special_ids = set(pair.specials.values())
    for content in pair.specials:
        ids = pair.ours.tokenize(content)
        assert not special_ids & set(ids), content
        assert ids == pair.hf(content, special=False), content


@pytest.mark.parametrize(
    "text",
    [
        "<fim_prefix>def f():<fim_suffix>\n    return 1<fim_middle>",
        "a<fim_prefix>b <fim_suffix> c",
        "<fim_prefix><fim_prefix><|endoftext|>",
        "<<fim_prefix>>",
        "<fim_prefix",
        "fim_prefix>",
        "<|endoftext|>12 34<|endoftext|>",
        "  <fim_pad>  \n",
        "<pr><pr_status><pr_diff_hunk_comment_line><pr_diff>",
        "<NAME> <EMAIL>@<KEY>",
    ],
)
@pytest.mark.parametrize("special", [False, True], ids=["plain", "special"])
def test_text_around_special_tokens_matches_hf(pair, text, special):
    pair.check(text, special)


def test_special_tokens_detokenize_to_their_text(pair):
    for content, tok_id in pair.specials.items():
        assert pair.ours.detokenize([tok_id]) == content


def test_user_defined_tokens_are_parsed_even_without_special(tmp_path):
    """A USER_DEFINED (type 4) token is HF's non-special added token: split out
    of the text whatever `special` says. Neither shipped vocab has one, so
    turn <filename> (id 5 of the v1 vocab) into one on both sides."""
    gguf = require("gguf")
    tokenizers = require("tokenizers")
    path = tmp_path / "user-defined.gguf"
    shutil.copyfile(require_path(VOCAB_DIR / "ggml-vocab-starcoder-v1.gguf"), path)
    reader = gguf.GGUFReader(path, "r+")
    types = reader.fields["tokenizer.ggml.token_type"]
    types.parts[types.data[5]][0] = 4
    reader.data.flush()
    del reader, types

    config = json.loads((VOCAB_DIR / "starcoder-v1-tokenizer.json").read_text())
    (entry,) = [t for t in config["added_tokens"] if t["id"] == 5]
    entry["special"] = False
    hf = tokenizers.Tokenizer.from_str(json.dumps(config))
    hf_plain = tokenizers.Tokenizer.from_str(json.dumps(config))
    hf_plain.encode_special_tokens = True

    ours = Tokenizer(str(path))
    text = "a<filename>b <fim_prefix>c<filename>"
    assert ours.tokenize(text) == hf_plain.encode(text, add_special_tokens=False).ids
    assert ours.tokenize(text, special=True) == hf.encode(text, add_special_tokens=False).ids
    assert ours.tokenize(text).count(5) == 2


# --------------------------------------------------------------------------
# Codepoint classes: the table boundaries are where a wrong Unicode version
# would show. Probe each boundary in every regex context.


def table_boundary_codepoints() -> list[int]:
    inc = (REPO / "csrc" / "text" / "unicode_tables.inc").read_text()
    cps = set()
    for first, last in re.findall(r"\{0x([0-9A-F]+), 0x([0-9A-F]+), \d\}", inc):
        for cp in (int(first, 16) - 1, int(first, 16), int(last, 16), int(last, 16) + 1):
            if 0 <= cp < 0x110000 and not 0xD800 <= cp <= 0xDFFF:
                cps.add(cp)
    return sorted(cps)


def test_codepoint_class_boundaries_match_hf(pair):
    cps = table_boundary_codepoints()
    assert len(cps) > 1000
    contexts = ["a{}", "1{}", "!{}", "\t{}x", " {}", "{}{}", "'{}", "{} x", "  {}"]
    for start in range(0, len(cps), 64):
        chunk = [chr(cp) for cp in cps[start : start + 64]]
        for ctx in contexts:
            text = "|".join(ctx.replace("{}", ch) for ch in chunk)
            pair.check(text, special=False)


# --------------------------------------------------------------------------
# Hypothesis: arbitrary text, weighted toward what the pre-tokenizer cares about

SPECIAL_STRINGS = ["<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>",
                   "<filename>", "<reponame>", "<repo_name>", "<file_sep>", "<pr>", "<pr_diff>",
                   "<pr_diff_hunk>", "<NAME>", "<fim_prefix", "<|endoftext"]
WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u1680\u2000\u2028\u202f\u205f\u3000"
DIGITS = "0123456789\u0660\u0967\uff11\u00b2\u00bd\u2160\u2460\U00011de0\U00016ff4"
EMOJI = ["\U0001F600", "\U0001F389", "\U0001F468\u200d\U0001F469\u200d\U0001F467",
         "\u2764\ufe0f", "\U0001F1FA\U0001F1F8", "\U0001F44D\U0001F3FD"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'RE", "'", "''", "'x"]

any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
fragments = st.one_of(
    any_text,
    st.sampled_from(SPECIAL_STRINGS),
    st.text(st.sampled_from(WHITESPACE), min_size=1, max_size=6),
    st.text(st.sampled_from(DIGITS), min_size=1, max_size=6),
    st.sampled_from(EMOJI),
    st.sampled_from(CONTRACTIONS),
    st.from_regex(r"[A-Za-z_]{1,12}", fullmatch=True),
    st.text(st.sampled_from("()[]{}:;.,=+-*/#@!?\"'`~<>|&^%$\\"), min_size=1, max_size=4),
    st.sampled_from([chr(cp) for cp in table_boundary_codepoints()]),
)
mixed_text = st.lists(fragments, max_size=12).map("".join)
HYPOTHESIS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@HYPOTHESIS
@given(text=mixed_text)
def test_plain_text_matches_hf_on_generated_text(pair, text):
    pair.check(text, special=False)


@HYPOTHESIS
@given(text=mixed_text)
def test_special_parsing_matches_hf_on_generated_text(pair, text):
    pair.check(text, special=True)


@HYPOTHESIS
@given(text=mixed_text)
def test_detokenize_inverts_tokenize_on_generated_text(pair, text):
    assume(not pair.missing_bytes & set(text.encode("utf-8")))
    assert pair.ours.detokenize(pair.ours.tokenize(text)) == text
    assert pair.ours.detokenize(pair.ours.tokenize(text, special=True)) == text


# --------------------------------------------------------------------------
# Python's standard library


SKIPPED_DIRS = {"site-packages", "dist-packages", "__pycache__"}


def stdlib_sources() -> list[Path]:
    """Every .py file of the running CPython's Lib dir, installed packages
    excluded. os.walk prunes site-packages before entering it (rglob would
    walk it and trip over a directory that a concurrent pip removes)."""
    root = sysconfig.get_paths()["stdlib"]
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS]
        files += [Path(dirpath, f) for f in filenames if f.endswith(".py")]
    return sorted(files)


def read_source(path: Path) -> str:
    """The file's text with its line endings untouched (read_text would turn
    CRLF into LF). A few test files are deliberately not UTF-8: decode them
    with their declared coding (Latin-1 when the declaration is itself
    broken), replacing what does not decode."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        with path.open("rb") as f:
            encoding, _ = tokenize.detect_encoding(f.readline)
    except SyntaxError:
        encoding = "latin-1"
    return raw.decode(encoding, errors="replace")


def check_files(pair: Pair, files: list[Path]) -> None:
    mismatched = []
    for path in files:
        text = read_source(path)
        for special in (False, True):
            if pair.ours.tokenize(text, special=special) != pair.hf(text, special):
                mismatched.append(f"{path} special={special}")
    assert not mismatched, f"{len(mismatched)} mismatches, first: {mismatched[:5]}"


def test_stdlib_sample_matches_hf(pair):
    files = stdlib_sources()
    assert len(files) > 500
    step = len(files) // 60
    check_files(pair, files[::step][:60])


@pytest.mark.slow
def test_all_stdlib_files_match_hf(pair):
    check_files(pair, stdlib_sources())


def test_concurrent_tokenize_matches_serial(pair):
    # encode() runs without the GIL and shares the merge cache between threads.
    files = stdlib_sources()
    texts = [read_source(p) for p in files[:: len(files) // 16][:16]]
    expected = [pair.ours.tokenize(t) for t in texts]
    fresh = Tokenizer(str(pair.gguf))  # cold cache, so threads race to fill it
    results: dict[int, list[int]] = {}

    def work(i: int) -> None:
        results[i] = fresh.tokenize(texts[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(len(texts))] == expected


# --------------------------------------------------------------------------
# The generated tables against the installed tokenizers (30 s: probes all
# 1.1M codepoints).


@pytest.mark.slow
def test_unicode_tables_match_installed_tokenizers():
    import importlib.util

    require("tokenizers")
    spec = importlib.util.spec_from_file_location("gen", REPO / "tools" / "gen_unicode_tables.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    expected = gen.render(gen.to_ranges(gen.probe_flags()), "")
    strip = lambda s: [l for l in s.splitlines() if "Measured on" not in l]  # noqa: E731
    assert strip((REPO / "csrc" / "text" / "unicode_tables.inc").read_text()) == strip(expected)
