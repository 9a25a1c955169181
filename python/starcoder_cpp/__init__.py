"""starcoder-cpp: native CPU inference for GPT-BigCode (StarCoder) code models.

    >>> import starcoder_cpp
    >>> m = starcoder_cpp.Model(starcoder_cpp.demo_model_path())
    >>> m.complete("def fibonacci(n):", max_tokens=16)
"""

from ._core import BackendError, ContextOverflowError, GGUFError, MemoryLimitError, ModelError, inspect_gguf
from .model import Model, Tokenizer, demo_model_path
from .sampling import SamplingOptions

__all__ = [
    "Model",
    "Tokenizer",
    "SamplingOptions",
    "GGUFError",
    "ModelError",
    "ContextOverflowError",
    "BackendError",
    "MemoryLimitError",
    "demo_model_path",
    "inspect_gguf",
]
__version__ = "0.1.0"
