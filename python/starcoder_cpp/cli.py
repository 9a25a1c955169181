"""The starcoder-cpp command line.

Exit codes: 0 success, 2 usage error (argparse), 1 runtime error with a
one-line message (the traceback only with --verbose).
"""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_convert(args) -> int:
    from .convert import convert_checkpoint

    summary = convert_checkpoint(args.hf_dir, args.outfile, out_type=args.type, progress=not args.quiet)
    if not args.quiet and isinstance(summary, dict):
        print(json.dumps(summary, indent=2, default=str), file=sys.stderr)
    return 0


def _load(args):
    from .model import Model

    return Model(args.model, n_ctx=args.n_ctx, n_threads=args.threads)


def _cmd_complete(args) -> int:
    m = _load(args)
    sys.stdout.write(args.prompt)
    sys.stdout.write(m.complete(args.prompt, max_tokens=args.max_tokens))
    sys.stdout.write("\n")
    return 0


def _cmd_tokenize(args) -> int:
    from .model import Tokenizer

    tok = Tokenizer(args.model)
    ids = tok.tokenize(args.text, special=args.special)
    if args.ids_only:
        print(" ".join(map(str, ids)))
    else:
        for i in ids:
            piece = tok.detokenize_bytes([i])
            print(f"{i:>6}  {piece!r}")
    return 0


def _cmd_info(args) -> int:
    m = _load(args)
    print(json.dumps(m.info(), indent=2))
    return 0


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model", required=True, help="GGUF model file ('demo': the bundled demo model)")
    p.add_argument("-c", "--n-ctx", type=int, default=None, help="context size (default: the model's, at most 8192)")
    p.add_argument("-t", "--threads", type=int, default=None, help="CPU threads (default: all cores)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="starcoder-cpp",
        description="Run GPT-BigCode (StarCoder) code models on the CPU from GGUF files.",
    )
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("convert", help="convert a Hugging Face GPT-BigCode checkpoint to GGUF")
    p.add_argument("hf_dir", help="directory with config.json, tokenizer.json and *.safetensors")
    p.add_argument("-o", "--outfile", required=True, help="output GGUF file")
    p.add_argument("--type", default="f16", choices=["f32", "f16"], help="weight type (default f16)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("complete", help="complete a prompt (greedy)")
    _add_model_args(p)
    p.add_argument("prompt", help="text to continue")
    p.add_argument("-n", "--max-tokens", type=int, default=64, help="tokens to generate (default 64)")
    p.set_defaults(func=_cmd_complete)

    p = sub.add_parser("tokenize", help="show the token ids of a text")
    p.add_argument("-m", "--model", required=True, help="GGUF model or vocab file ('demo' for the demo model)")
    p.add_argument("text")
    p.add_argument("--special", action="store_true", help="recognise special tokens such as <fim_prefix>")
    p.add_argument("--ids-only", action="store_true", help="print only the ids, space separated")
    p.set_defaults(func=_cmd_tokenize)

    p = sub.add_parser("info", help="show a model's shape and tensor types")
    p.add_argument("model", help="GGUF model file ('demo' for the demo model)")
    p.set_defaults(func=_cmd_info, n_ctx=None, threads=None)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line unless --verbose
        if args.verbose:
            raise
        print(f"starcoder-cpp: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
