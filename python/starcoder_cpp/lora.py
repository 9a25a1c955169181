"""Merging a PEFT LoRA adapter into GPT-BigCode weights during conversion.

A LoRA adapter (adapter_config.json + adapter_model.safetensors, as
`peft`'s save_pretrained writes them) holds, for each adapted linear layer, two
small matrices A [r, in] and B [out, r]. Merging replaces the layer's weight W
[out, in] by W + scale * (B @ A), with scale = lora_alpha / r (or
lora_alpha / sqrt(r) with use_rslora), r and lora_alpha possibly overridden per
module by rank_pattern / alpha_pattern. This is what peft's merge_and_unload()
computes; doing it in the converter ships a fine-tune as one GGUF file.

The update is computed for the rows of the source tensor in the checkpoint's
own layout (the converter asks for the rows it is writing, after any
reordering such as that of multi-head c_attn rows), a block at a time.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from .safetensors_reader import SafetensorsError, SafetensorsFile


class LoraError(ValueError):
    """The adapter cannot be merged (missing files, unsupported options, shape mismatch)."""


_PREFIX = "base_model.model."
_SUFFIX_A = ".lora_A.weight"
_SUFFIX_B = ".lora_B.weight"


def _pattern_value(patterns: Dict[str, float], module: str, default):
    # peft matches a pattern key against the end of the module name, on a dot boundary.
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


class LoraAdapter:
    def __init__(self, adapter_dir):
        d = Path(adapter_dir)
        cfg_path, weights = d / "adapter_config.json", d / "adapter_model.safetensors"
        if not cfg_path.is_file():
            raise LoraError(f"{d}: no adapter_config.json (expected a PEFT LoRA adapter directory)")
        if not weights.is_file():
            if (d / "adapter_model.bin").is_file():
                raise LoraError(f"{d}: only adapter_model.bin found; re-save the adapter with safetensors "
                                "(peft: model.save_pretrained(dir, safe_serialization=True))")
            raise LoraError(f"{d}: no adapter_model.safetensors")
        cfg = json.loads(cfg_path.read_text())
        if cfg.get("peft_type", "LORA") != "LORA":
            raise LoraError(f"{d}: peft_type is {cfg.get('peft_type')!r}; only LORA adapters can be merged")
        for flag, what in (("use_dora", "DoRA"), ("lora_bias", "LoRA biases")):
            if cfg.get(flag):
                raise LoraError(f"{d}: {what} ({flag}=true) are not supported")
        if cfg.get("modules_to_save"):
            raise LoraError(f"{d}: modules_to_save={cfg['modules_to_save']} (fully trained modules) is not supported")
        self.r = int(cfg["r"])
        self.alpha = float(cfg["lora_alpha"])
        self.rslora = bool(cfg.get("use_rslora", False))
        self.fan_in_fan_out = bool(cfg.get("fan_in_fan_out", False))
        self.rank_pattern = cfg.get("rank_pattern") or {}
        self.alpha_pattern = cfg.get("alpha_pattern") or {}
        try:
            self._file = SafetensorsFile(weights)
        except SafetensorsError as e:
            raise LoraError(str(e)) from e
        self._pairs: Dict[str, Tuple[str, str]] = {}
        for key in self._file.keys():
            if key.endswith(_SUFFIX_A):
                module = key[: -len(_SUFFIX_A)]
                b = module + _SUFFIX_B
                if b not in self._file:
                    raise LoraError(f"{weights}: {key} has no matching {b}")
                name = module[len(_PREFIX):] if module.startswith(_PREFIX) else module
                self._pairs[name + ".weight"] = (key, b)
            elif not key.endswith(_SUFFIX_B):
                raise LoraError(f"{weights}: unexpected tensor {key!r} (only lora_A/lora_B weights are supported)")
        if not self._pairs:
            raise LoraError(f"{weights}: no LoRA weights found")
        self._merged = set()

    @property
    def targets(self):
        """The checkpoint weight names (e.g. transformer.h.0.attn.c_attn.weight) the adapter changes."""
        return sorted(self._pairs)

    def scale(self, weight_name: str) -> float:
        module = weight_name[: -len(".weight")]
        r = _pattern_value(self.rank_pattern, module, self.r)
        alpha = _pattern_value(self.alpha_pattern, module, self.alpha)
        return alpha / math.sqrt(r) if self.rslora else alpha / r

    def touches(self, weight_name: str) -> bool:
        return weight_name in self._pairs

    def delta_rows(self, weight_name: str, rows, shape: Tuple[int, int]) -> np.ndarray:
        """scale * (B @ A) restricted to `rows` (a slice or index array) of the
        weight, float32, as peft computes it. `shape` is the full weight's
        [out, in], checked against the adapter. Works a row block at a time so
        a large layer never needs a full float copy of its update."""
        a_name, b_name = self._pairs[weight_name]
        a = self._file.float32(a_name)  # [r, in]
        b = self._file.float32(b_name)  # [out, r]
        full = (a.shape[1], b.shape[0]) if self.fan_in_fan_out else (b.shape[0], a.shape[1])
        if tuple(full) != tuple(shape) or a.shape[0] != b.shape[1]:
            raise LoraError(f"LoRA update for {weight_name} has shape {list(full)}, the weight {list(shape)}: "
                            "the adapter was trained for a different base model")
        self._merged.add(weight_name)
        scale = np.float32(self.scale(weight_name))
        if self.fan_in_fan_out:  # the update is (B @ A).T
            return (a[:, rows].T @ b.T) * scale
        return (b[rows] @ a) * scale

    def check_all_merged(self) -> None:
        missing = sorted(set(self._pairs) - self._merged)
        if missing:
            raise LoraError(f"the adapter targets weights the checkpoint does not have: {missing[:5]}"
                            f"{' ...' if len(missing) > 5 else ''}")
