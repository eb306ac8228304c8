"""Build the network a shipped-model file describes and load its weights strictly."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from jotr.errors import CheckpointError
from jotr.weights import shipped_file
from jotr.weights.int8 import dequantize_int8
from jotr.weights.shipped_file import INT8_SCALE_SUFFIX, read_shipped_file, shipped_config

if TYPE_CHECKING:
    from jotr.config import JOTRConfig


def load_shipped_model(
    path: str | Path | None = None,
    device: str | torch.device | None = None,
    overrides: Sequence[str] = (),
) -> tuple[torch.nn.Module, JOTRConfig]:
    """Build the network of a shipped file's config (with its body model) and load the weights strictly.

    float16 tensors are loaded as float32 (the dtype of the network's own parameters). Returns
    ``(model, cfg)``, the model in eval mode on ``device`` (default CPU)."""
    from jotr.engine.checkpoint import load_state_strict
    from jotr.models import build_model

    path = Path(path) if path is not None else shipped_file.default_shipped_path()
    tensors, metadata = read_shipped_file(path)
    cfg = shipped_config(metadata, overrides, source=str(path))
    try:
        int8_keys = json.loads(metadata.get("int8_keys", "[]"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"shipped model {path}: unreadable 'int8_keys' metadata: {exc}") from exc
    for key in int8_keys:
        scale = tensors.pop(key + INT8_SCALE_SUFFIX, None)
        if key not in tensors or scale is None or tensors[key].dtype != torch.int8:
            raise CheckpointError(f"shipped model {path}: int8 tensor {key} or its scales are missing")
        tensors[key] = dequantize_int8(tensors[key], scale)
    model = build_model(cfg, pretrained=False)  # every weight comes from the file
    expected = model.state_dict()
    state = {
        k: v.to(expected[k].dtype) if k in expected and v.is_floating_point() else v
        for k, v in tensors.items()
    }
    load_state_strict(model, state, source=f"shipped model {path}")
    model.eval()
    if device is not None:
        model.to(torch.device(device))
    return model, cfg
