"""The model that ships with jotr (``jotr_anny_small.safetensors`` in this folder) and its file format.

* :mod:`jotr.weights.shipped_file` -- the file format: write, read and check a shipped-model file;
* :mod:`jotr.weights.int8` -- per-channel int8 storage of the largest weights (only when float16 is too big);
* :mod:`jotr.weights.loading` -- build the network a file describes and load it strictly;
* :mod:`jotr.weights.export` -- a training checkpoint -> the shipped file;
* :mod:`jotr.weights.reference` -- the fixed reference input and prediction (imports :mod:`jotr.inference`, so
  it is not re-exported here: ``from jotr.weights.reference import compare_to_reference``).
"""

from __future__ import annotations

from jotr.weights.export import export_shipped_model
from jotr.weights.int8 import dequantize_int8, quantize_int8
from jotr.weights.loading import load_shipped_model
from jotr.weights.shipped_file import (
    MAX_SHIPPED_BYTES,
    NO_SHIPPED_MODEL_HINT,
    SHIPPED_FORMAT,
    SHIPPED_MODEL_NAME,
    SHIPPED_VERSION,
    default_shipped_path,
    file_sha256,
    read_shipped_file,
    save_shipped_model,
    shipped_config,
    shipped_provenance,
    shipped_tensors,
)

__all__ = [
    "MAX_SHIPPED_BYTES",
    "NO_SHIPPED_MODEL_HINT",
    "SHIPPED_FORMAT",
    "SHIPPED_MODEL_NAME",
    "SHIPPED_VERSION",
    "default_shipped_path",
    "dequantize_int8",
    "export_shipped_model",
    "file_sha256",
    "load_shipped_model",
    "quantize_int8",
    "read_shipped_file",
    "save_shipped_model",
    "shipped_config",
    "shipped_provenance",
    "shipped_tensors",
]
