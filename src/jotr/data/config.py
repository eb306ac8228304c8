"""Data section of the config tree (owned by ``jotr.data``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # registry key, e.g. "synthetic", "pw3d", "h36m", "muco", "coco", "crowdpose", "oh3d"
    root: str = ""  # dataset folder
    split: str = ""  # e.g. "train", "test", "oc", "pc", "crowd"
    options: Mapping[str, Any] = field(default_factory=dict)  # reader-specific settings


def dataset_label(spec: DatasetSpec) -> str:
    """``name`` or ``name/split`` -- the key of a dataset in logs and result tables."""
    return f"{spec.name}/{spec.split}" if getattr(spec, "split", "") else spec.name


@dataclass(frozen=True)
class AugmentConfig:
    scale_factor: float = 0.25
    rot_factor: float = 30.0  # degrees (N(0,1) * factor, clipped at 2x)
    rot_prob: float = 0.6
    color_factor: float = 0.2
    flip_prob: float = 0.5
    bbox_enlarge: tuple[float, float] = (1.0, 1.2)
    keypoint_noise: bool = True  # PoseFix-style corruption of the input 2D keypoints
    occluder_prob: float = 0.0  # synthetic occluders pasted on training crops
    occluder_dir: str | None = None  # optional folder of RGBA object cut-outs
    # Training crop box: "gt" = tight GT box x U(bbox_enlarge) (official code); "keypoints" = the test
    # protocol's box (valid input keypoints x1.2, square, x1.1) x U(bbox_enlarge), so that training crops are
    # made like test and inference crops (people cut by the frame included; CPU recipe, issue 14).
    train_box: Literal["gt", "keypoints"] = "gt"
    box_shift: float = 0.0  # training: random crop-centre shift, N(0, 1) clipped at 2, times box side
    # Where occluders go: "uniform" in the central 3/4 of the crop (3DCrowdNet's recipe) or centred on a
    # random visible joint of the person ("joints", issue 22). Covered joints lose their input keypoint.
    occluder_placement: Literal["uniform", "joints"] = "uniform"
    # Input-keypoint corruption that only the image can undo (issue 22, jotr.data.keypoint_aug; the targets
    # are unchanged): each limb (arm = shoulder/elbow/wrist/hand, leg = hip/knee/ankle/foot of one side)
    # loses all its input keypoints with limb_drop_prob; with neighbour_limb_prob one limb is replaced by
    # that limb of another person of the image (when the record has one).
    limb_drop_prob: float = 0.0
    neighbour_limb_prob: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rot_prob", "flip_prob", "occluder_prob", "limb_drop_prob", "neighbour_limb_prob"):
            _in_range(f"data.augment.{name}", getattr(self, name), 0.0, 1.0)
        for name in ("scale_factor", "rot_factor", "color_factor", "box_shift"):
            _in_range(f"data.augment.{name}", getattr(self, name), 0.0, math.inf)
        lo, hi = (float(v) for v in self.bbox_enlarge)
        if not (0.0 < lo <= hi < math.inf):
            raise ValueError(
                f"data.augment.bbox_enlarge must be two finite numbers 0 < a <= b, got {self.bbox_enlarge}"
            )


@dataclass(frozen=True)
class DataConfig:
    train_3d: tuple[DatasetSpec, ...] = ()
    train_2d: tuple[DatasetSpec, ...] = ()
    ratio_3d: float = 0.5  # share of 3D-group samples in the mixed training stream (paper 1:1)
    val: tuple[DatasetSpec, ...] = ()
    test: tuple[DatasetSpec, ...] = ()
    num_workers: int = 2
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        _in_range("data.ratio_3d", self.ratio_3d, 0.0, 1.0)
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {self.num_workers}")


def _in_range(name: str, value: float, lo: float, hi: float) -> None:
    """ValueError unless ``lo <= value <= hi`` (NaN fails)."""
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo:g}, {hi:g}], got {value}")
