"""The layering of csrc/ (docs/ARCHITECTURE.md): arrows that must never exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parents[1] / "csrc"
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

# folder -> folders of csrc/ it may include (besides itself)
ALLOWED = {
    "util": set(),
    "format": {"util"},
    "text": {"format", "util"},
    "offline": {"format", "util"},
    "backend": {"format", "util"},
    "model": {"backend", "format", "text", "util"},
    "runtime": {"model", "backend", "format", "text", "util"},
    "python": {"runtime", "model", "backend", "format", "text", "util", "offline"},
}


def sources():
    return sorted(p for p in CSRC.rglob("*") if p.suffix in (".h", ".cpp", ".inc", ".cu", ".cuh"))


def test_every_source_lives_in_a_layer_folder():
    loose = [p.relative_to(CSRC).as_posix() for p in sources() if p.parent == CSRC]
    assert loose == []
    assert {p.relative_to(CSRC).parts[0] for p in sources()} <= set(ALLOWED)


@pytest.mark.parametrize("src", [p.relative_to(CSRC).as_posix() for p in sources()])
def test_includes_point_only_down_the_layers(src):
    layer = src.split("/")[0]
    for inc in INCLUDE.findall((CSRC / src).read_text()):
        target = inc.split("/")[0]
        assert target in ALLOWED or (CSRC / Path(src).parent / inc).exists(), f"{src}: unknown include {inc}"
        if target in ALLOWED and target != layer:
            assert target in ALLOWED[layer], f"{src} includes {inc}: {layer}/ may not depend on {target}/"


def test_backends_are_siblings_that_never_include_each_other():
    backends = [d.name for d in (CSRC / "backend").iterdir() if d.is_dir()]
    for p in sources():
        rel = p.relative_to(CSRC).parts
        if rel[0] != "backend" or len(rel) < 3:
            continue
        for inc in INCLUDE.findall(p.read_text()):
            parts = inc.split("/")
            if parts[0] == "backend" and len(parts) > 2:
                assert parts[1] == rel[1], f"{p.relative_to(CSRC)} includes another backend's {inc}"


def test_only_the_python_folder_knows_pybind11():
    for p in sources():
        if p.relative_to(CSRC).parts[0] != "python":
            assert "pybind11" not in p.read_text(), p.relative_to(CSRC).as_posix()


def test_the_block_formats_header_includes_nothing_but_the_standard_library():
    text = (CSRC / "format" / "quant_blocks.h").read_text()
    assert INCLUDE.findall(text) == []
