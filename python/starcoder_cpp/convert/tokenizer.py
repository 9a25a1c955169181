"""The vocabulary, merges and special tokens of a checkpoint, from
``tokenizer.json`` (+ ``tokenizer_config.json``), in llama.cpp's terms."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

from gguf import Keys, TokenType

from .errors import ConversionError, load_json

PathLike = Union[str, os.PathLike]


@dataclass
class TokenizerData:
    tokens: List[str]
    token_types: List[int]  # gguf.TokenType values
    merges: List[str]
    pre: str  # llama.cpp's pre-tokenizer name
    special_ids: Dict[str, int]  # GGUF key (tokenizer.ggml.bos_token_id ...) -> id
    add_bos: bool
    add_eos: bool


def _token_content(v) -> Optional[str]:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("content"), str):
        return v["content"]
    return None


def _detect_pre(tok: dict, path: Path) -> str:
    """llama.cpp pre-tokenizer name from the tokenizer.json pre_tokenizer."""
    pre = tok.get("pre_tokenizer")
    if not isinstance(pre, dict):
        raise ConversionError(f"{path}: no pre_tokenizer; expected a byte-level BPE tokenizer")
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else [pre]
    if not isinstance(steps, list):
        steps = []
    kinds = [s.get("type") if isinstance(s, dict) else None for s in steps]

    def byte_level_ok(s: dict) -> bool:
        return s.get("use_regex", True) is True and not s.get("add_prefix_space", False)

    if (
        kinds == ["Digits", "ByteLevel"]
        and steps[0].get("individual_digits") is True
        and byte_level_ok(steps[1])
    ):
        return "starcoder"
    if kinds == ["ByteLevel"] and byte_level_ok(steps[0]):
        return "gpt-2"
    raise ConversionError(
        f"{path}: unsupported pre-tokenizer {json.dumps(pre)[:200]}; expected StarCoder's "
        "Sequence[Digits(individual_digits=true), ByteLevel] or GPT-2's ByteLevel"
    )


def read_tokenizer(hf_dir: PathLike, n_vocab: int, config: Optional[dict] = None) -> TokenizerData:
    """Vocabulary, merges and special ids from ``tokenizer.json`` (+ ``tokenizer_config.json``).

    Token ids the tokenizer does not use (the embedding may be padded beyond
    the vocabulary) become ``[PAD{id}]`` tokens of type UNUSED, like llama.cpp.
    """
    d = Path(hf_dir)
    path = d / "tokenizer.json"
    if not path.is_file():
        raise ConversionError(
            f"tokenizer.json not found in {d}: the GGUF file needs the vocabulary; copy the "
            "tokenizer.json (and tokenizer_config.json) of the base model into the checkpoint directory"
        )
    tok = load_json(path, "tokenizer")
    model = tok.get("model")
    if not isinstance(model, dict) or model.get("type", "BPE") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise ConversionError(f"{path}: expected a BPE model with a 'vocab' object")
    pre = _detect_pre(tok, path)

    by_id: Dict[int, str] = {}
    types: Dict[int, int] = {}

    def put(tid, text: str, ttype: int) -> None:
        if isinstance(tid, bool) or not isinstance(tid, int) or tid < 0:
            raise ConversionError(f"{path}: bad token id {tid!r} for {text!r}")
        if tid >= n_vocab:
            raise ConversionError(
                f"{path}: token {text!r} has id {tid}, but the model's vocab_size is {n_vocab}"
            )
        old = by_id.get(tid)
        if old is not None and old != text:
            raise ConversionError(f"{path}: id {tid} is used by both {old!r} and {text!r}")
        by_id[tid] = text
        types[tid] = ttype

    for text, tid in model["vocab"].items():
        put(tid, text, TokenType.NORMAL)
    added = tok.get("added_tokens") or []
    if not isinstance(added, list):
        raise ConversionError(f"{path}: 'added_tokens' must be a list")
    for a in added:
        if not isinstance(a, dict) or not isinstance(a.get("content"), str):
            raise ConversionError(f"{path}: malformed added token {a!r}")
        text = a["content"]
        special = bool(a.get("special")) or (text.startswith("<|") and text.endswith("|>"))
        put(a.get("id"), text, TokenType.CONTROL if special else TokenType.USER_DEFINED)

    tokens: List[str] = []
    token_types: List[int] = []
    for i in range(n_vocab):
        if i in by_id:
            tokens.append(by_id[i])
            token_types.append(int(types[i]))
        else:
            tokens.append(f"[PAD{i}]")
            token_types.append(int(TokenType.UNUSED))

    merges: List[str] = []
    for m in model.get("merges") or []:
        if isinstance(m, str):
            if m.count(" ") != 1:
                raise ConversionError(f"{path}: malformed merge {m!r}")
            merges.append(m)
        elif isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m):
            if " " in m[0] or " " in m[1]:
                raise ConversionError(f"{path}: merge {m!r} has a space inside a token")
            merges.append(f"{m[0]} {m[1]}")
        else:
            raise ConversionError(f"{path}: malformed merge {m!r}")
    if not merges:
        raise ConversionError(f"{path}: the BPE model has no merges")

    tc_path = d / "tokenizer_config.json"
    tc = load_json(tc_path, "tokenizer config") if tc_path.is_file() else {}
    config = config or {}
    ids_by_text = {t: i for i, t in by_id.items()}
    special: Dict[str, int] = {}

    def from_text(key: str, text: Optional[str]) -> None:
        if text is not None and text in ids_by_text:
            special[key] = ids_by_text[text]

    K = Keys.Tokenizer
    from_text(K.BOS_ID, _token_content(tc.get("bos_token")))
    from_text(K.EOS_ID, _token_content(tc.get("eos_token")))
    from_text(K.UNK_ID, _token_content(tc.get("unk_token")))
    from_text(K.PAD_ID, _token_content(tc.get("pad_token")))
    for key, cfg_key in ((K.BOS_ID, "bos_token_id"), (K.EOS_ID, "eos_token_id"), (K.PAD_ID, "pad_token_id")):
        v = config.get(cfg_key)
        if isinstance(v, list) and v:
            v = v[0]
        if key not in special and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n_vocab:
            special[key] = v
    # FIM tokens: StarCoder uses underscores, SantaCoder hyphens
    for key, names in (
        (K.FIM_PRE_ID, ("<fim_prefix>", "<fim-prefix>")),
        (K.FIM_SUF_ID, ("<fim_suffix>", "<fim-suffix>")),
        (K.FIM_MID_ID, ("<fim_middle>", "<fim-middle>")),
        (K.FIM_PAD_ID, ("<fim_pad>", "<fim-pad>")),
    ):
        for n in names:
            if n in ids_by_text:
                special[key] = ids_by_text[n]
                break

    return TokenizerData(
        tokens=tokens,
        token_types=token_types,
        merges=merges,
        pre=pre,
        special_ids=special,
        add_bos=bool(tc.get("add_bos_token", False)),
        add_eos=bool(tc.get("add_eos_token", False)),
    )
