#!/usr/bin/env python3
"""atheris harness: the safetensors reader the converter uses
(starcoder_cpp.safetensors_reader) on arbitrary file bytes.

Every input either opens, with every tensor readable as float32 in the shape
its header declares, or raises SafetensorsError; anything else (another
exception, a crash, a hang, memory beyond libFuzzer's limit) is a finding.

    python tests/fuzz/fuzz_safetensors.py [libFuzzer flags] CORPUS_DIR [SEED_DIR ...]
"""

import os
import sys
import tempfile

import atheris
import numpy  # noqa: F401 - imported before instrumentation: only this project's code is instrumented

with atheris.instrument_imports(include=["starcoder_cpp"]):
    from starcoder_cpp.safetensors_reader import SafetensorsError, SafetensorsFile

PATH = os.path.join(tempfile.mkdtemp(prefix="fuzz-safetensors-"), "input.safetensors")


def TestOneInput(data: bytes) -> None:
    with open(PATH, "wb") as f:
        f.write(data)
    try:
        st = SafetensorsFile(PATH)
    except SafetensorsError:
        return
    for name in st.keys():
        try:
            a = st.float32(name)
        except SafetensorsError:
            continue
        assert a.shape == st.info(name).shape, (name, a.shape, st.info(name).shape)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
