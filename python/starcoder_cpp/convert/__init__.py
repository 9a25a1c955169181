"""Convert a Hugging Face GPT-BigCode (StarCoder) checkpoint to GGUF.

The output follows llama.cpp's ``starcoder`` architecture, so the files load in
llama.cpp as well as in this project's runtime::

    from starcoder_cpp.convert import convert_checkpoint
    convert_checkpoint("path/to/hf_model", "model-f16.gguf", out_type="f16")

numpy and gguf-py are all that ``*.safetensors`` checkpoints need; older
checkpoints that only have ``pytorch_model*.bin`` files need torch.

Conversion streams: every source tensor is memory-mapped, converted in row
chunks and written before the next one is touched, so memory use stays near
the size of one chunk whatever the model size.

The parts:

* ``hparams``: config.json -> ``HParams``;
* ``sources``: the weights (safetensors, or PyTorch ``.bin`` through torch);
* ``tokenizer``: tokenizer.json -> vocabulary, merges, special ids;
* ``tensors``: names, order, storage types and the row-chunk encoding;
* ``writer``: ``convert_checkpoint``, which puts them into a GGUF file through
  gguf-py's ``GGUFWriter`` (see ``starcoder_cpp.gguf_output``).

With a quantization preset (``out_type="q4_k_m"`` ...) the weights are
quantized in the C++ core with llama.cpp's per-tensor type choices; the output
is byte-identical to llama-quantize run on the F32 conversion.
"""

from .errors import ConversionError
from .hparams import ACTIVATIONS, HParams, read_hparams
from .tensors import map_tensor_name, qkv_row_permutation
from .tokenizer import TokenizerData, read_tokenizer
from .writer import ARCH, OUT_TYPE_NAMES, OUT_TYPES, convert_checkpoint

__all__ = [
    "ConversionError",
    "convert_checkpoint",
    "HParams",
    "read_hparams",
    "read_tokenizer",
    "TokenizerData",
    "map_tensor_name",
    "qkv_row_permutation",
    "ACTIVATIONS",
    "OUT_TYPES",
    "OUT_TYPE_NAMES",
    "ARCH",
]
