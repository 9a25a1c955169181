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

    summary = convert_checkpoint(args.hf_dir, args.outfile, out_type=args.type, progress=not args.quiet,
                                 n_threads=args.threads or 0, lora_dir=args.lora)
    if not args.quiet and isinstance(summary, dict):
        print(json.dumps(summary, indent=2, default=str), file=sys.stderr)
    return 0


def _cmd_quantize(args) -> int:
    from .quantize import quantize_gguf

    summary = quantize_gguf(args.infile, args.outfile, args.type, n_threads=args.threads or 0,
                            allow_requantize=args.allow_requantize,
                            progress=not args.quiet and sys.stderr.isatty())
    if not args.quiet:
        print(json.dumps(summary, indent=2, default=str), file=sys.stderr)
    return 0


def _cmd_serve(args) -> int:
    from .server import serve

    return serve(args)


def _type_choices():
    from .quant_presets import PRESET_ALIASES, PRESETS

    return list(PRESETS) + list(PRESET_ALIASES)


def _load(args):
    from .model import Model

    return Model(args.model, n_ctx=args.n_ctx, n_threads=args.threads, kv_type=args.kv_type, backend=args.backend,
                 matmul_precision=args.matmul_precision)


def _generation_kwargs(args) -> dict:
    from .sampling import SamplingOptions

    sampling = SamplingOptions(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                               repeat_penalty=args.repeat_penalty, repeat_last_n=args.repeat_last_n, seed=args.seed)
    return dict(max_tokens=args.max_tokens, stop=args.stop or None, sampling=sampling)


def _stream(pieces, out=sys.stdout) -> None:
    for piece in pieces:
        out.write(piece)
        out.flush()


def _report(stream, args) -> None:
    if args.verbose:
        print(f"\n[finish: {stream.finish_reason}, prompt tokens: {stream.n_prompt_tokens}, "
              f"generated: {len(stream.tokens)}]", file=sys.stderr)


def _too_long(e, what: str) -> Exception:
    """The library's ContextOverflowError reworded with this CLI's flags."""
    n, n_ctx = getattr(e, "n_prompt_tokens", None), getattr(e, "n_ctx", None)
    if n is None:
        return e
    return type(e)(f"the prompt has {n} tokens but the context holds {n_ctx}; pass --truncate to {what}, "
                   f"or a larger --n-ctx (at most the model's context length)")


def _cmd_complete(args) -> int:
    from ._core import ContextOverflowError

    m = _load(args)
    try:
        stream = m.complete(args.prompt, stream=True, truncate_prompt=args.truncate, **_generation_kwargs(args))
    except ContextOverflowError as e:
        raise _too_long(e, "drop tokens from its start") from None
    sys.stdout.write(args.prompt)
    _stream(stream)
    sys.stdout.write("\n")
    _report(stream, args)
    return 0


def _cmd_infill(args) -> int:
    from ._core import ContextOverflowError

    m = _load(args)
    try:
        stream = m.infill(args.prefix, args.suffix, stream=True, truncate_prompt=args.truncate,
                          **_generation_kwargs(args))
    except ContextOverflowError as e:
        raise _too_long(e, "keep the end of the prefix and the start of the suffix") from None
    if args.middle_only:
        _stream(stream)
    else:
        sys.stdout.write(args.prefix)
        _stream(stream)
        sys.stdout.write(args.suffix)
    sys.stdout.write("\n")
    _report(stream, args)
    return 0


def _cmd_perplexity(args) -> int:
    m = _load(args)
    with open(args.file, encoding="utf-8") as f:
        text = f.read()
    from .progress import progress_bar

    with progress_bar(None, "perplexity", unit="window", enabled=not args.quiet) as bar:
        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        ppl = m.perplexity(text, window=args.window, stride=args.stride, progress=update)
    print(f"{ppl:.4f}")
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


def _cmd_bench(args) -> int:
    from .bench import (BenchConfig, bench_model, decode_bytes_per_token, fit_config, format_report,
                        gguf_context_length, measure_bandwidth, raise_priority)
    from .model import _resolve_path

    path = _resolve_path(args.model)
    cfg = BenchConfig(prompt_tokens=args.prompt_tokens, decode_prompt_tokens=args.decode_prompt_tokens,
                      decode_tokens=args.decode_tokens, fim_tokens=args.fim_tokens,
                      long_context=args.long_context, long_decode_tokens=args.long_decode_tokens)
    cfg.check()
    fitted = fit_config(cfg, gguf_context_length(path))
    if fitted is not cfg:
        print(f"note: the model holds {fitted.long_context} positions; token counts scaled down to fit",
              file=sys.stderr)
    raise_priority()
    bandwidth = measure_bandwidth(args.threads) if args.bandwidth else None
    r = bench_model(path, n_threads=args.threads, config=fitted)
    bpt = decode_bytes_per_token(path)
    if args.json:
        r["weights_bytes_per_token"] = bpt
        if bandwidth:
            r["bandwidth"] = bandwidth
        print(json.dumps(r, indent=2))
    else:
        print(format_report(r, bpt, bandwidth["read_gbps"] if bandwidth else None))
    return 0


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model", required=True, help="GGUF model file ('demo': the bundled demo model)")
    p.add_argument("-c", "--n-ctx", type=int, default=None, help="context size (default: the model's, at most 8192)")
    p.add_argument("-t", "--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--kv-type", choices=["f16", "f32", "q8_0"], default="f16",
                   help="KV cache element type (default f16)")
    p.add_argument("--backend", choices=["cpu", "cuda", "auto"], default="cpu",
                   help="where to run: cpu (default), cuda, or auto (the GPU when one works)")
    p.add_argument("--matmul-precision", choices=["f32", "bf16"], default="f32",
                   help="products of F16/BF16 weights in prompts: f32 (default; exact) or bf16 (weights and activations rounded to bfloat16, about twice the speed where the CPU has AVX512_BF16; f32 elsewhere)")


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    from .sampling import SamplingOptions

    d = SamplingOptions()
    g = p.add_argument_group("generation")
    g.add_argument("-n", "--max-tokens", type=int, default=128, help="tokens to generate (default 128)")
    g.add_argument("--temperature", "--temp", type=float, default=d.temperature,
                   help=f"0 for greedy (default {d.temperature:g})")
    g.add_argument("--top-k", type=int, default=d.top_k,
                   help=f"keep the k most likely tokens (default {d.top_k}; 0: off)")
    g.add_argument("--top-p", type=float, default=d.top_p,
                   help=f"nucleus sampling mass (default {d.top_p:g}; 1: off)")
    g.add_argument("--min-p", type=float, default=d.min_p,
                   help=f"drop tokens below min-p x best (default {d.min_p:g}; 0: off)")
    g.add_argument("--repeat-penalty", type=float, default=d.repeat_penalty,
                   help=f"penalty for recent tokens (default {d.repeat_penalty:g}; 1: off)")
    g.add_argument("--repeat-last-n", type=int, default=d.repeat_last_n,
                   help=f"how many recent tokens the penalty sees (default {d.repeat_last_n}; -1: all)")
    g.add_argument("--seed", type=int, default=d.seed, help="random seed (default: random)")
    g.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    g.add_argument("--truncate", action="store_true",
                   help="fit a prompt too long for the context: drop its start (infill: the start of the prefix "
                        "and the end of the suffix)")


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
    p.add_argument("--type", default="f16", type=str.lower, choices=_type_choices(), metavar="TYPE",
                   help="f32, f16, bf16 or a llama.cpp quantization preset: q8_0, q6_k, q5_k_m, q5_k_s, "
                        "q5_1, q5_0, q4_k_m, q4_k_s, q4_1, q4_0, q3_k_l, q3_k_m, q3_k_s, q2_k (default f16)")
    p.add_argument("-t", "--threads", type=int, default=None, help="quantization threads (default: all cores)")
    p.add_argument("--lora", metavar="ADAPTER_DIR", default=None,
                   help="merge this PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) first")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("quantize", help="quantize an F32/F16 GGUF model (llama.cpp presets, same bytes)")
    p.add_argument("infile", help="input GGUF (f32, f16 or bf16 weights)")
    p.add_argument("outfile", help="output GGUF")
    p.add_argument("--type", required=True, type=str.lower, choices=_type_choices(), metavar="TYPE",
                   help="preset: q8_0, q6_k, q5_k_m, q5_k_s, q5_1, q5_0, q4_k_m, q4_k_s, q4_1, q4_0, "
                        "q3_k_l, q3_k_m, q3_k_s, q2_k (or f32, f16, bf16)")
    p.add_argument("-t", "--threads", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("--allow-requantize", action="store_true", help="re-quantize tensors that are already quantized")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary")
    p.set_defaults(func=_cmd_quantize)

    p = sub.add_parser("complete", help="complete a prompt, streaming to the terminal")
    _add_model_args(p)
    p.add_argument("prompt", help="text to continue (special tokens such as <fim_prefix> are recognised)")
    _add_sampling_args(p)
    p.set_defaults(func=_cmd_complete)

    p = sub.add_parser("infill", help="fill in the middle between a prefix and a suffix")
    _add_model_args(p)
    p.add_argument("--prefix", required=True, help="text before the gap")
    p.add_argument("--suffix", default="", help="text after the gap")
    p.add_argument("--middle-only", action="store_true", help="print only the generated middle")
    _add_sampling_args(p)
    p.set_defaults(func=_cmd_infill)

    p = sub.add_parser("perplexity", help="perplexity of a text file")
    _add_model_args(p)
    p.add_argument("file", help="UTF-8 text file")
    p.add_argument("--window", type=int, default=None, help="tokens per window (default: n_ctx, at most 1024)")
    p.add_argument("--stride", type=int, default=None, help="tokens between window starts (default: window)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_perplexity)

    p = sub.add_parser("tokenize", help="show the token ids of a text")
    p.add_argument("-m", "--model", required=True, help="GGUF model or vocab file ('demo' for the demo model)")
    p.add_argument("text")
    p.add_argument("--special", action="store_true", help="recognise special tokens such as <fim_prefix>")
    p.add_argument("--ids-only", action="store_true", help="print only the ids, space separated")
    p.set_defaults(func=_cmd_tokenize)

    p = sub.add_parser("bench", help="measure load time, prompt and decode speed, TTFT and peak RSS of a model")
    p.add_argument("-m", "--model", required=True, help="GGUF model file ('demo': the bundled demo model)")
    p.add_argument("-t", "--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--prompt-tokens", type=int, default=512, help="prompt throughput prompt (default 512)")
    p.add_argument("--decode-tokens", type=int, default=128, help="tokens decoded one by one (default 128)")
    p.add_argument("--decode-prompt-tokens", type=int, default=128, help="prompt before them (default 128)")
    p.add_argument("--fim-tokens", type=int, default=2048, help="FIM prompt for time to first token (default 2048)")
    p.add_argument("--long-context", type=int, default=4096, help="context of the long decode (default 4096)")
    p.add_argument("--long-decode-tokens", type=int, default=32, help="tokens decoded there (default 32)")
    p.add_argument("--bandwidth", action="store_true",
                   help="also measure memory bandwidth (numpy, ~1 GB) and show decode as a fraction of its bound")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("serve", help="serve completions over HTTP (TGI, OpenAI and llama.cpp APIs)")
    from .server import add_arguments as _server_args

    _server_args(p)
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("info", help="show a model's shape and tensor types")
    p.add_argument("model", help="GGUF model file ('demo' for the demo model)")
    p.add_argument("--backend", choices=["cpu", "cuda", "auto"], default="cpu", help="where to run (default cpu)")
    p.set_defaults(func=_cmd_info, n_ctx=None, threads=None, kv_type="f16", matmul_precision="f32")
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
