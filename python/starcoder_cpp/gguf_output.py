"""Writing a GGUF file through gguf-py's ``GGUFWriter``, one tensor at a time
and each tensor in chunks, under a temporary name.

gguf-py writes the header, the metadata and the tensor table; the tensor data
goes through ``GGUFWriter.write_tensor_data``, which needs of its argument
only ``nbytes`` and ``tofile(file)`` (the same duck type gguf-py's own lazy
tensors use). ``StreamedTensor`` provides both over an iterator of encoded
chunks, so no tensor is ever whole in memory.

The file is written as ``OUT.part`` and renamed to ``OUT`` only once every
tensor is complete; on any error the partial file is removed, so an
interrupted conversion never leaves a valid-looking file behind::

    with GGUFOutput(out_path, "starcoder") as out:
        out.writer.add_uint32(...)                 # metadata: gguf-py's writer
        out.declare("token_embd.weight", (n_vocab, n_embd), GGMLType.F16)
        out.write_header()
        out.write_tensor("token_embd.weight", chunks)  # in declaration order
    # renamed into place here
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
from gguf import GGUFWriter

from .ggml_types import GGMLType, byte_shape, tensor_nbytes

__all__ = ["GGUFOutput", "GGUFOutputError", "StreamedTensor", "checked_threads", "output_path_problem"]


class GGUFOutputError(ValueError):
    """Tensor data that does not match what was declared for it."""


def output_path_problem(out: Path, inputs: Iterable[Path]) -> Optional[str]:
    """Why ``out`` must not be written, or None. Checked before anything is
    read or created: the rename at the end would replace an input that
    ``out`` names (the same file by any path), and would turn a FIFO or a
    device node at ``out`` into a regular file."""
    for p in (out, out.with_name(out.name + ".part")):
        try:
            st = os.stat(p)
        except FileNotFoundError:
            continue
        except OSError as e:
            return f"cannot check the output path {p}: {e}"
        if stat.S_ISDIR(st.st_mode):
            return f"output path is a directory: {p}"
        if not stat.S_ISREG(st.st_mode):
            return f"output path {p} exists and is not a regular file (a FIFO, device or socket); refusing to replace it"
    if not out.exists():
        return None
    for src in inputs:
        try:
            same = os.path.samefile(out, src)
        except OSError:
            continue
        if same:
            return f"the output file {out} is an input ({src}); writing it would destroy the input"
    return None


def checked_threads(n_threads, error: type) -> int:
    """A writer's thread count (0: all cores), checked before the output is
    opened: `error` (the caller's exception type) for a non-int, a negative
    count or more than the core's cap (4x the cores)."""
    from . import _core

    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)):
        raise error(f"n_threads must be an int, not {type(n_threads).__name__}")
    if n_threads < 0:
        raise error(f"n_threads must be >= 0, got {n_threads}")
    try:
        return _core.resolve_thread_count(int(n_threads)) if n_threads else 0
    except ValueError as e:
        raise error(str(e)) from None


def _bytes_of(chunk) -> memoryview:
    if isinstance(chunk, np.ndarray):
        chunk = np.ascontiguousarray(chunk)
        return memoryview(chunk.reshape(-1).view(np.uint8))
    return memoryview(chunk).cast("B")


class StreamedTensor:
    """One tensor's data as a stream of encoded chunks (ndarrays or buffers)."""

    def __init__(self, name: str, nbytes: int, chunks: Iterable, on_chunk: Optional[Callable[[int], None]] = None):
        self.name = name
        self.nbytes = nbytes
        self._chunks = chunks
        self._on_chunk = on_chunk

    def tofile(self, fout) -> None:
        written = 0
        for chunk in self._chunks:
            buf = _bytes_of(chunk)
            if written + buf.nbytes > self.nbytes:
                raise GGUFOutputError(
                    f"tensor {self.name!r}: more than the declared {self.nbytes} bytes of data"
                )
            fout.write(buf)
            written += buf.nbytes
            if self._on_chunk is not None:
                self._on_chunk(buf.nbytes)
        if written != self.nbytes:
            raise GGUFOutputError(f"tensor {self.name!r}: {written} bytes of data, declared {self.nbytes}")


class GGUFOutput:
    """A GGUF file being written; see the module docstring for the protocol."""

    def __init__(self, out_path: Union[str, os.PathLike], arch: str, alignment: Optional[int] = None):
        self.path = Path(out_path)
        self.tmp_path = self.path.with_name(self.path.name + ".part")
        self.writer = GGUFWriter(self.tmp_path, arch)
        if alignment is not None and alignment != self.writer.data_alignment:
            self.writer.add_custom_alignment(alignment)
        self._order: List[str] = []
        self._nbytes: Dict[str, int] = {}
        self._next = 0

    def declare(self, name: str, shape: Sequence[int], ggml_type: GGMLType) -> int:
        """Adds a tensor to the table (``shape`` in numpy order); returns its byte size."""
        nbytes = tensor_nbytes(ggml_type, shape)
        # described as raw bytes, the one form gguf-py takes for every type
        self.writer.add_tensor_info(name, byte_shape(ggml_type, shape), np.dtype(np.uint8), nbytes,
                                    raw_dtype=GGMLType(int(ggml_type)))
        self._order.append(name)
        self._nbytes[name] = nbytes
        return nbytes

    def write_header(self) -> None:
        """Writes header, metadata and tensor table: after this only tensor data may follow."""
        self.writer.write_header_to_file()
        self.writer.write_kv_data_to_file()
        self.writer.write_ti_data_to_file()

    def write_tensor(self, name: str, chunks: Iterable, on_chunk: Optional[Callable[[int], None]] = None) -> None:
        """Writes the next declared tensor's data from its encoded chunks."""
        if self._next >= len(self._order) or self._order[self._next] != name:
            expected = self._order[self._next] if self._next < len(self._order) else None
            raise GGUFOutputError(f"tensor data out of order: expected {expected!r}, got {name!r}")
        self.writer.write_tensor_data(StreamedTensor(name, self._nbytes[name], chunks, on_chunk))
        self._next += 1

    def finish(self) -> None:
        if self._next != len(self._order):
            raise GGUFOutputError(
                f"{len(self._order) - self._next} declared tensor(s) were not written, "
                f"first {self._order[self._next]!r}"
            )
        self.writer.close()
        os.replace(self.tmp_path, self.path)

    def abort(self) -> None:
        self.writer.close()
        try:
            self.tmp_path.unlink()
        except OSError:
            pass

    def __enter__(self) -> "GGUFOutput":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.finish()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()
