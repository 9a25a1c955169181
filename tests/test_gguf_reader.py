"""The GGUF reader validates everything it reads: a malformed or truncated
file raises GGUFError with a useful message, never a crash."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import starcoder_cpp
from starcoder_cpp import GGUFError, inspect_gguf

GGUF_STRING, GGUF_ARRAY, GGUF_UINT32, GGUF_FLOAT32 = 8, 9, 4, 6


def s(text: str) -> bytes:
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def kv_u32(key, value):
    return s(key) + struct.pack("<II", GGUF_UINT32, value)


def kv_str(key, value):
    return s(key) + struct.pack("<I", GGUF_STRING) + s(value)


def tensor_info(name, dims, type_id, offset):
    return s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack(
        "<IQ", type_id, offset
    )


def build(kvs=(), tensors=(), data=b"", magic=b"GGUF", version=3, n_tensors=None, n_kv=None, align=32):
    header = magic + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                                 len(kvs) if n_kv is None else n_kv)
    header += b"".join(kvs) + b"".join(tensors)
    pad = (-len(header)) % align
    return header + b"\0" * pad + data


def valid_file():
    """Two F32 tensors: a [4, 2] matrix at offset 0 and a [8] vector at 32."""
    data = np.arange(8, dtype=np.float32).tobytes() + np.arange(8, dtype=np.float32).tobytes()
    return build(
        kvs=[kv_str("general.architecture", "starcoder"), kv_u32("starcoder.block_count", 1)],
        tensors=[tensor_info("a", [4, 2], 0, 0), tensor_info("b", [8], 0, 32)],
        data=data,
    )


def write(tmp_path, blob, name="f.gguf"):
    p = tmp_path / name
    p.write_bytes(blob)
    return p


def test_valid_file_is_read(tmp_path):
    info = inspect_gguf(str(write(tmp_path, valid_file())))
    assert info["version"] == 3
    assert info["metadata"]["general.architecture"] == "starcoder"
    assert info["metadata"]["starcoder.block_count"] == 1
    assert [(t["name"], t["shape"], t["type"]) for t in info["tensors"]] == [("a", [4, 2], "f32"), ("b", [8], "f32")]


def test_version_2_is_accepted(tmp_path):
    assert inspect_gguf(str(write(tmp_path, build(version=2))))["version"] == 2


@pytest.mark.parametrize("magic", [b"GGML", b"\0\0\0\0", b"FUGG"])
def test_bad_magic(tmp_path, magic):
    with pytest.raises(GGUFError, match="bad magic"):
        inspect_gguf(str(write(tmp_path, build(magic=magic))))


@pytest.mark.parametrize("version", [0, 1, 4, 0xFFFFFFFF])
def test_unsupported_version(tmp_path, version):
    with pytest.raises(GGUFError, match="version"):
        inspect_gguf(str(write(tmp_path, build(version=version))))


def test_every_truncation_raises(tmp_path):
    blob = valid_file()
    for cut in range(len(blob)):
        p = write(tmp_path, blob[:cut])
        with pytest.raises(GGUFError):
            inspect_gguf(str(p))


def test_truncated_tensor_data_names_the_tensor(tmp_path):
    blob = valid_file()
    with pytest.raises(GGUFError, match="'b'.*past the end"):
        inspect_gguf(str(write(tmp_path, blob[:-4])))


def test_absurd_metadata_count(tmp_path):
    with pytest.raises(GGUFError, match="metadata count"):
        inspect_gguf(str(write(tmp_path, build(n_kv=2**62))))


def test_absurd_tensor_count(tmp_path):
    with pytest.raises(GGUFError, match="tensor count"):
        inspect_gguf(str(write(tmp_path, build(n_tensors=2**40))))


def test_wrong_metadata_count_runs_off_the_end(tmp_path):
    blob = build(kvs=[kv_u32("x", 1)], n_kv=2, align=1)
    with pytest.raises(GGUFError, match="truncated|larger than the file"):
        inspect_gguf(str(write(tmp_path, blob)))


def test_empty_metadata_key(tmp_path):
    blob = build(kvs=[kv_u32("", 1)])
    with pytest.raises(GGUFError, match="empty metadata key"):
        inspect_gguf(str(write(tmp_path, blob)))


def test_absurd_string_length(tmp_path):
    blob = build(kvs=[struct.pack("<Q", 2**60) + b"key"], n_kv=1)
    with pytest.raises(GGUFError, match="string length"):
        inspect_gguf(str(write(tmp_path, blob)))


def test_absurd_array_length(tmp_path):
    kv = s("tokens") + struct.pack("<IIQ", GGUF_ARRAY, GGUF_STRING, 2**50)
    with pytest.raises(GGUFError, match="array length"):
        inspect_gguf(str(write(tmp_path, build(kvs=[kv]))))


def test_unknown_metadata_type(tmp_path):
    kv = s("k") + struct.pack("<I", 77) + b"\0" * 8
    with pytest.raises(GGUFError, match="unknown metadata type"):
        inspect_gguf(str(write(tmp_path, build(kvs=[kv]))))


def test_tensor_offset_past_end(tmp_path):
    blob = build(tensors=[tensor_info("w", [8], 0, 1 << 40)], data=b"\0" * 32)
    with pytest.raises(GGUFError, match="'w'.*past the end"):
        inspect_gguf(str(write(tmp_path, blob)))


def test_misaligned_tensor_offset(tmp_path):
    blob = build(tensors=[tensor_info("w", [8], 0, 4)], data=b"\0" * 64)
    with pytest.raises(GGUFError, match="aligned"):
        inspect_gguf(str(write(tmp_path, blob)))


def test_absurd_dimension(tmp_path):
    blob = build(tensors=[tensor_info("w", [2**62, 2**62], 0, 0)], data=b"\0" * 32)
    with pytest.raises(GGUFError, match="absurd dimension"):
        inspect_gguf(str(write(tmp_path, blob)))


def test_too_many_dimensions(tmp_path):
    blob = build(tensors=[tensor_info("w", [1, 1, 1, 1, 1], 0, 0)], data=b"\0" * 32)
    with pytest.raises(GGUFError, match="dimensions"):
        inspect_gguf(str(write(tmp_path, blob)))


def test_unknown_tensor_type(tmp_path):
    blob = build(tensors=[tensor_info("w", [8], 99, 0)], data=b"\0" * 32)
    with pytest.raises(GGUFError, match="unknown type"):
        inspect_gguf(str(write(tmp_path, blob)))


def test_row_not_a_multiple_of_the_block_size(tmp_path):
    blob = build(tensors=[tensor_info("w", [30, 2], 8, 0)], data=b"\0" * 128)  # Q8_0 blocks of 32
    with pytest.raises(GGUFError, match="block size"):
        inspect_gguf(str(write(tmp_path, blob)))


def test_duplicate_tensor_name(tmp_path):
    blob = build(tensors=[tensor_info("w", [8], 0, 0), tensor_info("w", [8], 0, 32)], data=b"\0" * 64)
    with pytest.raises(GGUFError, match="duplicate"):
        inspect_gguf(str(write(tmp_path, blob)))


def test_overlapping_tensors(tmp_path):
    # 'a' claims 16 floats (64 bytes) but 'b' starts 32 bytes in.
    blob = build(tensors=[tensor_info("a", [16], 0, 0), tensor_info("b", [8], 0, 32)], data=b"\0" * 96)
    with pytest.raises(GGUFError, match="overlap"):
        inspect_gguf(str(write(tmp_path, blob)))


def test_bad_alignment_value(tmp_path):
    blob = build(kvs=[kv_u32("general.alignment", 3)])
    with pytest.raises(GGUFError, match="alignment"):
        inspect_gguf(str(write(tmp_path, blob)))


def test_model_load_reports_gguf_errors_as_gguf_error(tmp_path):
    with pytest.raises(GGUFError):
        starcoder_cpp.Model(write(tmp_path, valid_file()[:50]))


def test_random_corruption_never_crashes(tiny_gguf_f16, tmp_path):
    # Flip bytes of a real model's header in a child process: every outcome
    # must be a clean load or a Python exception, never a signal.
    script = f"""
import random, sys
import starcoder_cpp
blob = bytearray(open({str(tiny_gguf_f16)!r}, 'rb').read())
rng = random.Random(1234)
header_end = 1_500_000  # the vocabulary and tensor table live in the first ~1.5 MB
for i in range(150):
    b = bytearray(blob)
    for _ in range(rng.randint(1, 4)):
        b[rng.randrange(0, header_end)] = rng.randrange(256)
    path = {str(tmp_path / 'c.gguf')!r}
    open(path, 'wb').write(b)
    try:
        starcoder_cpp.Model(path, n_ctx=32)
    except (ValueError, FileNotFoundError) as e:
        pass
print('ok')
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "ok"


@pytest.mark.parametrize("bad", [b"\xff", b"ab\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"])
def test_a_string_value_that_is_not_utf8_raises_gguf_error(tmp_path, bad):
    blob = build(kvs=[s("general.name") + struct.pack("<I", GGUF_STRING) + struct.pack("<Q", len(bad)) + bad])
    with pytest.raises(GGUFError, match="general.name.*UTF-8"):
        inspect_gguf(str(write(tmp_path, blob)))


def test_a_metadata_key_that_is_not_utf8_raises_gguf_error(tmp_path):
    blob = build(kvs=[struct.pack("<Q", 3) + b"k\xfe\xff" + struct.pack("<II", GGUF_UINT32, 1)])
    with pytest.raises(GGUFError, match="metadata key is not valid UTF-8"):
        inspect_gguf(str(write(tmp_path, blob)))


def test_a_tensor_name_that_is_not_utf8_raises_gguf_error(tmp_path):
    blob = build(tensors=[struct.pack("<Q", 2) + b"a\x80" + struct.pack("<IQIQ", 1, 8, 0, 0)],
                 data=np.zeros(8, np.float32).tobytes())
    with pytest.raises(GGUFError, match="tensor name is not valid UTF-8"):
        inspect_gguf(str(write(tmp_path, blob)))


def test_valid_multibyte_utf8_strings_are_accepted(tmp_path):
    text = "naïve — 日本語 🐍"
    blob = build(kvs=[kv_str("general.name", text)])
    assert inspect_gguf(str(write(tmp_path, blob)))["metadata"]["general.name"] == text


def test_a_model_whose_token_string_is_not_utf8_raises_gguf_error_naming_the_token(tiny_gguf_f16, tmp_path):
    blob = tiny_gguf_f16.read_bytes()
    i = blob.index(b"<fim_middle>")
    p = write(tmp_path, blob[:i + 5] + b"\xff" + blob[i + 6:])  # "<fim_\xffiddle>", same length
    with pytest.raises(GGUFError, match=r"element \d+ of 'tokenizer.ggml.tokens' is not valid UTF-8"):
        starcoder_cpp.Model(p)
    with pytest.raises(GGUFError, match="not valid UTF-8"):
        starcoder_cpp.Tokenizer(p)


def test_a_fifo_raises_gguf_error_instead_of_blocking(tmp_path):
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    # in a child, so that a regression hangs the child (killed by the timeout), not the test run
    script = f"import starcoder_cpp\ntry:\n    starcoder_cpp.inspect_gguf({str(fifo)!r})\n" \
             f"except starcoder_cpp.GGUFError as e:\n    print(e)\n"
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "not a regular file" in r.stdout, r.stderr[-2000:]
