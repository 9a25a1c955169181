"""A local completion server speaking the HTTP APIs editors and SDKs use:
Text Generation Inference, OpenAI completions and llama.cpp's server.

    starcoder-cpp serve -m MODEL.gguf      (or python -m starcoder_cpp.server -m ...)

Needs the `server` extra: pip install 'starcoder-cpp[server]'.
"""

from __future__ import annotations

import argparse
import logging
import sys

INSTALL_HINT = "the server needs Starlette and uvicorn: pip install 'starcoder-cpp[server]'"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model", required=True, help="GGUF model file ('demo': the bundled demo model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--parallel", type=int, default=4, help="slots decoding at once, each with its own KV cache (default 4)")
    p.add_argument("--ctx-size", type=int, default=None, help="context per slot in tokens (default: the model's, at most 8192)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--api-key", default=None, help="require `Authorization: Bearer KEY` on every route but /health")
    p.add_argument("--model-alias", default=None, help="model name reported to clients (default: the file's name)")
    p.add_argument("--fim-order", choices=("psm", "spm"), default="psm",
                   help="fill-in-the-middle prompt layout (default psm)")
    p.add_argument("--max-queue", type=int, default=64,
                   help="requests waiting for a slot before the server answers 'overloaded' (default 64)")
    p.add_argument("--kv-type", choices=("f16", "f32", "q8_0"), default="f16", help="KV cache type (default f16)")
    p.add_argument("--matmul-precision", choices=("f32", "bf16"), default="f32",
                   help="products of F16/BF16 weights in prompts: f32 (default; exact) or bf16 (weights and activations rounded to bfloat16, about twice the speed where the CPU has AVX512_BF16; f32 elsewhere)")
    p.add_argument("--prefill-chunk", type=int, default=128,
                   help="prompt tokens evaluated per step beside the running streams: while a long new prompt "
                        "is read, each of their tokens waits for one chunk, not the whole prompt (default 128)")


def build_state(args):
    from ..model import _resolve_path
    from .state import ServerState

    if not 1 <= args.parallel <= 64:
        raise ValueError("--parallel must be in [1, 64]")
    if args.max_queue < 0:
        raise ValueError("--max-queue must be >= 0")
    if not 1 <= args.prefill_chunk <= 512:
        raise ValueError("--prefill-chunk must be in [1, 512]")
    return ServerState(_resolve_path(args.model), n_ctx=args.ctx_size or 0, n_threads=args.threads or 0,
                       parallel=args.parallel, api_key=args.api_key, model_alias=args.model_alias,
                       fim_order=args.fim_order, max_queue=args.max_queue, kv_type=args.kv_type,
                       prefill_chunk=args.prefill_chunk, matmul_precision=args.matmul_precision)


def serve(args) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        print(f"starcoder-cpp: error: {INSTALL_HINT}", file=sys.stderr)
        return 1
    from .app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    state = build_state(args)
    logging.getLogger("starcoder_cpp.server").info(
        "model %s: %d slots x %d tokens, %d threads, FIM %s, prompts %d tokens per step; http://%s:%d", state.alias,
        state.parallel, state.n_ctx, state.core.n_threads, state.fim_order.upper(), state.core.prefill_chunk, args.host,
        args.port)
    uvicorn.run(create_app(state), host=args.host, port=args.port, log_level="warning")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m starcoder_cpp.server", description=__doc__.split("\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return serve(args)
    except (ValueError, OSError, MemoryError) as e:
        print(f"starcoder-cpp: error: {e}", file=sys.stderr)
        return 1
