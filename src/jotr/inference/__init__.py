"""Inference on full images: :class:`~jotr.inference.predictor.JOTRPredictor` (people in, meshes in the
original camera out), keypoint formats and files, the built-in multi-person detector, temporal smoothing,
output writers, ONNX export and the synthetic demo. Submodules are imported lazily
(``from jotr.inference import JOTRPredictor``)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "JOTRPredictor": "jotr.inference.predictor",
    "PersonInput": "jotr.inference.predictor",
    "PersonResult": "jotr.inference.predictor",
    "load_image": "jotr.inference.predictor",
    "KeypointSource": "jotr.inference.keypoints",
    "to_jotr30": "jotr.inference.keypoints",
    "PersonDetector": "jotr.inference.detector",
    "DetectionReport": "jotr.inference.detector",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'jotr.inference' has no attribute {name!r}")
