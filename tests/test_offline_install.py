"""The air-gapped site: a wheelhouse from tools/make_wheelhouse.sh installs
and runs with no network at all.

Every command runs in a new network namespace with no interfaces
(`unshare -n` as root, `unshare -rn` otherwise), and the Python ones under an audit hook
that fails on any socket call. Point STARCODER_WHEELHOUSE at the wheelhouse:

    tools/make_wheelhouse.sh build/wheelhouse
    STARCODER_WHEELHOUSE=build/wheelhouse python -m pytest -m offline
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import starcoder_cpp
from conftest import REPO, REQUIRE_PEERS, TINY_MODEL_DIR

pytestmark = [pytest.mark.slow, pytest.mark.offline]

# Runs a starcoder-cpp CLI command; any socket use (even a DNS lookup) is a
# failure, and so is a hub or HTTP client module loaded on the way.
DRIVER = """
import sys
def no_network(event, args):
    if event.startswith("socket."):
        raise RuntimeError(f"network use: {event} {args!r}")
sys.addaudithook(no_network)
from starcoder_cpp.cli import main
rc = main(sys.argv[1:])
clients = sorted(m for m in ("huggingface_hub", "requests", "httpx", "urllib3", "aiohttp") if m in sys.modules)
if clients:
    print("network clients imported: " + ", ".join(clients), file=sys.stderr)
    rc = rc or 4
sys.exit(rc)
"""


def skip_or_fail(reason: str):
    if REQUIRE_PEERS:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    d = os.environ.get("STARCODER_WHEELHOUSE")
    if not d:
        skip_or_fail("STARCODER_WHEELHOUSE is not set (build one with tools/make_wheelhouse.sh DIR)")
    d = Path(d)
    if not any(d.glob("starcoder_cpp-*.whl")):
        pytest.fail(f"{d} holds no starcoder_cpp wheel")
    return d.resolve()


@pytest.fixture(scope="module")
def unshare() -> list[str]:
    """unshare(1) for a new network namespace: as root directly, otherwise
    inside a user namespace (where the kernel allows one)."""
    path = shutil.which("unshare")
    if path is None:
        skip_or_fail("unshare(1) is not installed (util-linux)")
    cmd = [path, "-n"] if os.geteuid() == 0 else [path, "-r", "-n"]
    if subprocess.run([*cmd, "true"], capture_output=True).returncode != 0:
        skip_or_fail(f"{' '.join(cmd)} is not permitted here (needs root or user namespaces)")
    return cmd


def offline(unshare, *cmd, cwd=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "HF_", "HUGGINGFACE", "TRANSFORMERS_", "PYTHONPATH", "STARCODER_CPU"))}
    return subprocess.run([*unshare, "--", *map(str, cmd)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


def offline_venv(unshare, wheelhouse, d: Path, requirement: str) -> Path:
    """A fresh venv at d with `requirement` installed from the wheelhouse alone."""
    r = offline(unshare, sys.executable, "-m", "venv", d)
    assert r.returncode == 0, r.stderr
    r = offline(unshare, d / "bin" / "python", "-m", "pip", "install", "--no-index", "--find-links", wheelhouse,
                "--disable-pip-version-check", requirement)
    assert r.returncode == 0, r.stdout + r.stderr
    return d


@pytest.fixture(scope="module")
def venv(unshare, wheelhouse, tmp_path_factory) -> Path:
    return offline_venv(unshare, wheelhouse, tmp_path_factory.mktemp("offline") / "venv", "starcoder-cpp")


def cli(unshare, venv, *args, cwd=None):
    return offline(unshare, venv / "bin" / "python", "-c", DRIVER, *args, cwd=cwd)


def test_the_namespace_has_no_network(unshare):
    r = offline(unshare, sys.executable, "-c",
                "import socket; socket.create_connection(('1.1.1.1', 443), timeout=5)")
    assert r.returncode != 0
    assert "unreachable" in r.stderr or "OSError" in r.stderr


def test_wheelhouse_installs_without_an_index(venv):
    r = subprocess.run([venv / "bin" / "python", "-m", "pip", "list", "--format=json"], capture_output=True,
                       text=True, check=True)
    names = {p["name"].lower() for p in json.loads(r.stdout)}
    assert {"starcoder-cpp", "numpy"} <= names
    assert not names & {"huggingface-hub", "requests", "torch", "transformers"}


@pytest.fixture(scope="module")
def converted(unshare, venv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("offline-models") / "tiny-f16.gguf"
    r = cli(unshare, venv, "convert", TINY_MODEL_DIR, "-o", out, "--type", "f16")
    assert r.returncode == 0, r.stderr
    return out


def test_convert_writes_a_gguf(converted):
    assert converted.read_bytes()[:4] == b"GGUF"


def test_quantize_then_complete_as_the_source_build_does(unshare, venv, converted):
    q = converted.with_name("tiny-q4_k_m.gguf")
    r = cli(unshare, venv, "quantize", converted, q, "--type", "q4_k_m")
    assert r.returncode == 0, r.stderr
    prompt = "def fibonacci(n):"
    r = cli(unshare, venv, "complete", "-m", q, prompt, "-n", "8", "--temperature", "0")
    assert r.returncode == 0, r.stderr
    assert r.stdout == prompt + starcoder_cpp.Model(q).complete(prompt, max_tokens=8, temperature=0) + "\n"


def test_infill_as_the_source_build_does(unshare, venv, converted):
    prefix, suffix = "def add(a, b):\n    ", "\n    return result\n"
    r = cli(unshare, venv, "infill", "-m", converted, "--prefix", prefix, "--suffix", suffix, "--middle-only",
            "-n", "8", "--temperature", "0")
    assert r.returncode == 0, r.stderr
    middle = starcoder_cpp.Model(converted).infill(prefix, suffix, max_tokens=8, temperature=0)
    assert middle and r.stdout == middle + "\n"


def test_perplexity_is_the_models_own(unshare, venv, converted):
    r = cli(unshare, venv, "perplexity", "-m", converted, TINY_MODEL_DIR / "val_sample.txt", "--window", "256", "-q")
    assert r.returncode == 0, r.stderr
    ref = json.loads((TINY_MODEL_DIR / "reference.json").read_text())["val_sample_ppl_win256"]
    assert float(r.stdout.split()[-1]) == pytest.approx(ref, rel=1e-3)


def test_a_hub_model_id_says_what_to_copy_instead(unshare, venv, tmp_path):
    r = cli(unshare, venv, "convert", "bigcode/starcoderbase-1b", "-o", tmp_path / "x.gguf", cwd=tmp_path)
    assert r.returncode == 1
    assert "never downloads" in r.stderr and "copy" in r.stderr
    assert "network use" not in r.stderr
    assert not (tmp_path / "x.gguf").exists()


def test_the_wheel_runs_outside_the_source_tree(venv):
    # The venv's package, not python/ of this checkout.
    r = subprocess.run([venv / "bin" / "python", "-c", "import starcoder_cpp; print(starcoder_cpp.__file__)"],
                       capture_output=True, text=True, check=True, cwd="/")
    assert not r.stdout.startswith(str(REPO / "python"))


# Serves on the namespace's loopback (brought up first: a new namespace has
# only `lo`, and down) and asks for one completion through it.
SERVE_AND_ASK = """
set -e
ip link set lo up
"$PY" -m starcoder_cpp.server -m "$MODEL" --host 127.0.0.1 --port 18931 --parallel 1 --ctx-size 256 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
"$PY" - <<'PYEOF'
import json, time, urllib.request
base = "http://127.0.0.1:18931"
for _ in range(600):
    try:
        urllib.request.urlopen(base + "/health", timeout=2)
        break
    except OSError:
        time.sleep(0.1)
req = urllib.request.Request(base + "/completion", method="POST", headers={"Content-Type": "application/json"},
                             data=json.dumps({"prompt": "def add(a, b):", "n_predict": 8, "temperature": 0}).encode())
print(json.dumps(json.load(urllib.request.urlopen(req, timeout=60))))
PYEOF
"""


@pytest.fixture(scope="module")
def server_venv(unshare, wheelhouse, tmp_path_factory) -> Path:
    return offline_venv(unshare, wheelhouse, tmp_path_factory.mktemp("offline-server") / "venv",
                        "starcoder-cpp[server]")


def test_the_server_extra_installs_and_serves_on_loopback(unshare, server_venv, converted):
    if shutil.which("ip") is None:
        skip_or_fail("ip(8) is not installed (iproute2): cannot bring up the namespace's loopback")
    env = {"PATH": os.environ.get("PATH", ""), "PY": str(server_venv / "bin" / "python"), "MODEL": str(converted)}
    r = subprocess.run([*unshare, "--", "sh", "-c", SERVE_AND_ASK], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    body = json.loads(r.stdout.strip().splitlines()[-1])
    assert body["content"] and body["tokens_predicted"] >= 1, body
