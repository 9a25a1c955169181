"""Where a checkpoint's weights come from: ``*.safetensors`` (memory-mapped,
numpy only) or ``pytorch_model*.bin`` (through torch, when it is installed)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..safetensors_reader import SafetensorsCheckpoint, SafetensorsError, find_safetensors_files
from .errors import ConversionError, load_json


class TensorSource:
    """Tensors of a checkpoint by HF name: metadata up front, data on demand."""

    description = ""

    def names(self) -> List[str]:
        raise NotImplementedError

    def shape(self, name: str) -> Tuple[int, ...]:
        raise NotImplementedError

    def dtype(self, name: str) -> str:
        """safetensors-style dtype name: F32, F16, BF16, ..."""
        raise NotImplementedError

    def raw(self, name: str) -> np.ndarray:
        """Stored data (BF16 as uint16 bits); may be memory-mapped."""
        raise NotImplementedError

    def release(self) -> None:
        pass


class SafetensorsSource(TensorSource):
    def __init__(self, directory: Path):
        try:
            self.ckpt = SafetensorsCheckpoint(directory)
        except SafetensorsError as e:
            raise ConversionError(str(e)) from None
        n = len(self.ckpt.files)
        self.description = f"{n} safetensors file{'s' if n != 1 else ''}"

    def names(self) -> List[str]:
        return self.ckpt.keys()

    def shape(self, name: str) -> Tuple[int, ...]:
        return self.ckpt.info(name).shape

    def dtype(self, name: str) -> str:
        return self.ckpt.info(name).dtype

    def raw(self, name: str) -> np.ndarray:
        return self.ckpt.raw(name)


_TORCH_DTYPE_NAMES = {
    "torch.float32": "F32",
    "torch.float16": "F16",
    "torch.bfloat16": "BF16",
    "torch.float64": "F64",
}


class TorchBinSource(TensorSource):
    """``pytorch_model*.bin`` shards via torch.load; one shard in memory at a time
    (zip-format files are memory-mapped, so that is cheap)."""

    def __init__(self, directory: Path, files: List[Path], weight_map: Optional[Dict[str, str]]):
        try:
            import torch  # noqa: F401
        except ImportError:
            raise ConversionError(
                f"{directory} holds only PyTorch pickle weights ({', '.join(p.name for p in files)}) "
                "and torch is not installed. Either install torch (pip install torch) and run the "
                "conversion again, or convert the weights to safetensors first, e.g. with "
                "transformers: AutoModelForCausalLM.from_pretrained(dir).save_pretrained(new_dir, "
                "safe_serialization=True)"
            ) from None
        self.files = files
        self.description = f"{len(files)} PyTorch .bin file{'s' if len(files) != 1 else ''}"
        self._cached_path: Optional[Path] = None
        self._cached: Optional[dict] = None
        self._meta: Dict[str, Tuple[Tuple[int, ...], str, Path]] = {}
        for path in files:
            sd = self._load(path)
            for name, t in sd.items():
                if name in self._meta:
                    raise ConversionError(
                        f"tensor {name!r} is stored twice: in {self._meta[name][2].name} and {path.name}"
                    )
                if not hasattr(t, "shape") or not hasattr(t, "dtype"):
                    raise ConversionError(f"{path.name}: entry {name!r} is not a tensor")
                dt = _TORCH_DTYPE_NAMES.get(str(t.dtype), str(t.dtype))
                self._meta[name] = (tuple(int(d) for d in t.shape), dt, path)
        if weight_map is not None:
            for name, fname in weight_map.items():
                if name not in self._meta:
                    raise ConversionError(f"index lists tensor {name!r} in {fname}, but no shard contains it")

    def _load(self, path: Path) -> dict:
        if self._cached_path == path:
            return self._cached  # type: ignore[return-value]
        import torch

        self._cached = None
        self._cached_path = None
        try:
            try:
                sd = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e).lower():
                    raise
                # legacy (non-zip) serialization cannot be memory-mapped
                sd = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many kinds of errors for bad pickles
            raise ConversionError(f"cannot load {path}: {e}") from None
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        if not isinstance(sd, dict):
            raise ConversionError(f"{path}: expected a state dict, got {type(sd).__name__}")
        self._cached, self._cached_path = sd, path
        return sd

    def names(self) -> List[str]:
        return list(self._meta)

    def shape(self, name: str) -> Tuple[int, ...]:
        return self._meta[name][0]

    def dtype(self, name: str) -> str:
        return self._meta[name][1]

    def raw(self, name: str) -> np.ndarray:
        import torch

        t = self._load(self._meta[name][2])[name].detach().contiguous()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(np.uint16)
        return t.numpy()

    def release(self) -> None:
        self._cached = None
        self._cached_path = None


def _torch_bin_files(d: Path) -> Tuple[List[Path], Optional[Dict[str, str]]]:
    index = d / "pytorch_model.bin.index.json"
    if index.is_file():
        data = load_json(index, "PyTorch weight index")
        weight_map = data.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ConversionError(f"{index}: missing or empty 'weight_map'")
        names = sorted(set(weight_map.values()))
        missing = [n for n in names if not (d / n).is_file()]
        if missing:
            raise ConversionError(f"{index} lists shard(s) that are not in {d}: {', '.join(missing)}")
        return [d / n for n in names], weight_map
    return sorted(p for p in d.glob("pytorch_model*.bin") if p.is_file()), None


def open_source(d: Path) -> TensorSource:
    """The weights of the checkpoint directory ``d``: safetensors when there are any."""
    try:
        st_files, _ = find_safetensors_files(d)
    except SafetensorsError as e:
        raise ConversionError(str(e)) from None
    if st_files:
        return SafetensorsSource(d)
    bin_files, weight_map = _torch_bin_files(d)
    if bin_files:
        return TorchBinSource(d, bin_files, weight_map)
    raise ConversionError(
        f"no model weights in {d}: expected model.safetensors, sharded *.safetensors "
        "(with model.safetensors.index.json), or pytorch_model*.bin"
    )
