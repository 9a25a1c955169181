"""The playground page at GET /, in headless Chromium (Debian's `chromium`),
driven over the DevTools protocol on a pipe (no extra Python packages): load
the page, run an infill on the demo model, read the result from the DOM."""

import json
import os
import shutil
import subprocess
import tempfile
import time

import httpx
import pytest

import starcoder_cpp
from server_helpers import running_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (apt-get install chromium)")


class DevTools:
    """Chrome DevTools protocol over --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-separated JSON)."""

    def __init__(self):
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()
        self._profile = tempfile.TemporaryDirectory()
        # Move both child ends above 4 first, so placing them on 3 and 4 cannot clobber either.
        high_r, high_w = os.dup(cmd_r), os.dup(out_w)
        os.close(cmd_r)
        os.close(out_w)

        def fds():
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             f"--user-data-dir={self._profile.name}", "about:blank"],
            preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # the browser is not ours: a sanitizer runtime preloaded for our
            # extension (tools/sanitize_tests.sh) must not be loaded into it
            env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})
        os.close(high_r)
        os.close(high_w)
        self._buf = b""
        self._id = 0

    def call(self, method, session=None, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self._buf:
                chunk = os.read(self._out_r, 65536)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(reply["error"])
                return reply["result"]

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        os.close(self._cmd_w)
        os.close(self._out_r)
        self._profile.cleanup()


@pytest.fixture(scope="module")
def server():
    with running_server() as (url, state):
        yield url


def test_playground_page_is_static_and_needs_no_network_beyond_the_server(server):
    html = httpx.get(server + "/").text
    assert "<script>" in html and "http://" not in html and "https://" not in html


def test_playground_streams_an_infill_in_headless_chromium(server):
    model = starcoder_cpp.Model("demo", n_ctx=1024, n_threads=1)
    url = server
    dt = DevTools()
    try:
        target = dt.call("Target.createTarget", url=url + "/?autorun")["targetId"]
        session = dt.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        deadline = time.time() + 60
        done = None
        while time.time() < deadline:
            r = dt.call("Runtime.evaluate", session,
                        expression="JSON.stringify({done: document.getElementById('result')?.dataset.done || '',"
                                   "output: document.getElementById('output')?.textContent,"
                                   "prefix: document.getElementById('prefix')?.value,"
                                   "suffix: document.getElementById('suffix')?.value,"
                                   "stats: document.getElementById('stats')?.textContent})",
                        returnByValue=True)
            page = json.loads(r["result"]["value"])
            if page["done"]:
                done = page
                break
            time.sleep(0.2)
    finally:
        dt.close()
    assert done is not None, "the page did not finish its completion"
    assert done["output"] == model.infill(done["prefix"], done["suffix"], max_tokens=64, temperature=0)
    assert "tokens/s" in done["stats"]
