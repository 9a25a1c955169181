"""Shared fixtures: the test data carried in tests/data (see its README), and
checkpoints built and converted once per session."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO / "tests" / "data"
TINY_MODEL_DIR = DATA_DIR / "tiny-bigcode-py"
VOCAB_DIR = DATA_DIR / "vocab"

sys.path.insert(0, str(REPO / "tools"))

# CI sets STARCODER_REQUIRE_PEERS=1 so that a missing peer (llama.cpp,
# transformers, torch, ...) fails the run instead of skipping tests.
REQUIRE_PEERS = os.environ.get("STARCODER_REQUIRE_PEERS") == "1"


def json_from_python(code: str, cpu_level=None):
    """What `python -c code` prints as JSON, in a fresh process whose kernel
    level is cpu_level (STARCODER_CPU), or the dispatcher's own choice for
    None: the level is chosen once per process."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "STARCODER_CPU"}
    if cpu_level is not None:
        env["STARCODER_CPU"] = cpu_level
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def require(module_name: str):
    """Import a peer package, or skip (fail under STARCODER_REQUIRE_PEERS=1)."""
    if REQUIRE_PEERS:
        return __import__(module_name)
    return pytest.importorskip(
        module_name, reason=f"peer {module_name!r} is not installed (STARCODER_REQUIRE_PEERS=1 makes this a failure)")


def require_path(path: Path) -> Path:
    """A file of tests/data. It is part of the repository, so a missing one is
    a broken checkout: always an error, never a skip."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: test data missing from the checkout (see tests/data/README.md)")
    return path


def truncated_tokenizer(n_keep: int) -> dict:
    """StarCoder's tokenizer.json cut to its first n_keep tokens (for small random models)."""
    tok = json.loads((VOCAB_DIR / "starcoder-v1-tokenizer.json").read_text(encoding="utf-8"))
    vocab = {t: i for t, i in tok["model"]["vocab"].items() if i < n_keep}
    tok["model"]["vocab"] = vocab
    tok["model"]["merges"] = [[a, b] for a, b in tok["model"]["merges"] if a in vocab and b in vocab and a + b in vocab]
    return tok


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    return require_path(TINY_MODEL_DIR)


@pytest.fixture(scope="session")
def tiny_reference(tiny_model_dir) -> dict:
    return json.loads((tiny_model_dir / "reference.json").read_text())


@pytest.fixture(scope="session")
def tiny_gguf_f32(tiny_model_dir, tmp_path_factory) -> Path:
    from starcoder_cpp.convert import convert_checkpoint

    out = tmp_path_factory.mktemp("tiny") / "tiny-f32.gguf"
    convert_checkpoint(str(tiny_model_dir), str(out), out_type="f32", progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_gguf_f16(tiny_model_dir, tmp_path_factory) -> Path:
    from starcoder_cpp.convert import convert_checkpoint

    out = tmp_path_factory.mktemp("tiny") / "tiny-f16.gguf"
    convert_checkpoint(str(tiny_model_dir), str(out), out_type="f16", progress=False)
    return out
