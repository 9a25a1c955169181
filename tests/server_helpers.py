"""Starts the HTTP server on the demo model, on a free loopback port, in a
background thread of the test process (uvicorn's own server, real sockets)."""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import threading
import time
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_body(name: str) -> dict:
    """A request body an editor client sends, copied into tests/data/server."""
    return json.loads((DATA / f"{name}.json").read_text())["body"]


@contextlib.contextmanager
def running_server(**options):
    pytest.importorskip("starlette")
    uvicorn = pytest.importorskip("uvicorn")
    from starcoder_cpp.server import add_arguments, build_state
    from starcoder_cpp.server.app import create_app

    p = argparse.ArgumentParser()
    add_arguments(p)
    argv = ["-m", "demo", "--threads", str(options.pop("threads", 1)), "--ctx-size", str(options.pop("ctx_size", 1024))]
    for k, v in options.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    state = build_state(p.parse_args(argv))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def sse_data(lines) -> list:
    """The `data:` payloads of an SSE response, in order."""
    out = []
    for line in lines:
        if line.startswith("data:"):
            out.append(line[5:].strip())
    return out
