"""The reader -> pipeline contract.

Every dataset reader (real or synthetic) parses its annotation files into :class:`PersonRecord` objects, one
per person, in *original image* coordinates. The shared sample pipeline (``jotr.data.pipeline``) turns a
record into a training/evaluation sample (crop, heatmap-space targets, augmentation) and then into a
:class:`jotr.structures.Batch`.
All joint arrays are in JOTR's 30-joint order (``jotr.body.joint_sets.JOTR30``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class PersonRecord:
    dataset: str  # reader name, e.g. "synthetic", "pw3d"
    sample_id: str  # unique within the dataset, e.g. "<image id>_<annotation id>"
    image_path: str  # absolute path of the image file
    image_size: tuple[int, int]  # (width, height) pixels
    bbox_xywh: np.ndarray | None = None  # (4,) annotation box, image pixels; None = derive from keypoints
    joints_img: np.ndarray | None = None  # (30, 2) GT 2D joints, image pixels
    joints_img_valid: np.ndarray | None = None  # (30,) float 0/1
    # (30, 3) GT 3D joints, camera frame, metres, absolute (not root-relative)
    joints_cam: np.ndarray | None = None
    joints_cam_valid: np.ndarray | None = None  # (30,) float 0/1
    # (30, 3) detector keypoints: x, y image px, confidence; None = synthesise
    input_keypoints: np.ndarray | None = None
    body_model: str = "smpl"  # which model the parameters below belong to: "smpl" | "anny"
    pose_aa: np.ndarray | None = None  # (J, 3) body pose, axis-angle, root rotation in the camera frame
    shape: np.ndarray | None = None  # (S,) betas / phenotypes
    trans: np.ndarray | None = None  # (3,) body translation in the camera frame, metres
    gender: str = "neutral"
    focal: tuple[float, float] | None = None  # camera intrinsics of the original image, pixels
    princpt: tuple[float, float] | None = None
    is_3d: bool = False  # 3D joint annotation present (H36M, MuCo, synthetic)
    has_fit: bool = False  # pose/shape are trusted as (pseudo-)GT for supervision
    visible_fraction: float = math.nan  # share of the person that is visible, if known
    extra: dict[str, Any] = field(default_factory=dict)


class DatasetReader:
    """Base of every dataset reader: parse annotation files into ``self.records`` at construction.

    ``spec.root`` is the dataset folder, ``spec.split`` the split, ``spec.options`` reader-specific settings.
    Malformed or incomplete entries are skipped and counted in ``self.skipped`` (reason -> count) and
    summarised in one log line; a missing annotation file raises :class:`jotr.errors.InputError` naming the
    path.
    Registry: ``jotr.data.datasets.DATASETS`` maps a name to ``"module:Class"``.
    """

    name: str = "dataset"
    is_3d: bool = False  # default for its records

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.records: list[PersonRecord] = []
        self.skipped: dict[str, int] = {}

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def summary(self) -> str:
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items())) or "none"
        split = getattr(self.spec, "split", "")
        return f"{self.name}[{split}]: {len(self.records)} persons, skipped {skipped}"

    def __len__(self) -> int:
        return len(self.records)
