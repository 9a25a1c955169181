#!/usr/bin/env python3
"""atheris harness: the converter's reading of config.json
(starcoder_cpp.convert.hparams.read_hparams) on arbitrary JSON text.

Every JSON object either yields hyper-parameters from which the converter's
tensor plan can be built, or raises ConversionError; anything else is a
finding. Inputs that are not a JSON object are the JSON loader's business
(load_json turns them into ConversionError) and are skipped.

    python tests/fuzz/fuzz_config.py [libFuzzer flags] CORPUS_DIR [SEED_DIR ...]
"""

import json
import sys

import atheris
import numpy  # noqa: F401 - imported before instrumentation: only this project's code is instrumented

with atheris.instrument_imports(include=["starcoder_cpp"]):
    from starcoder_cpp.convert.errors import ConversionError
    from starcoder_cpp.convert.hparams import read_hparams
    from starcoder_cpp.convert.tensors import expected_tensors


def TestOneInput(data: bytes) -> None:
    try:
        config = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return
    if not isinstance(config, dict):
        return
    try:
        hp = read_hparams(config)
    except ConversionError:
        return
    for name, shape in expected_tensors(hp, with_output=True):
        assert all(isinstance(d, int) and d > 0 for d in shape), (name, shape)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
