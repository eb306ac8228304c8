"""Criterion section of the config tree (owned by ``jotr.losses``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class LossConfig:
    # Learned uncertainty weighting: one weight per term (official code), the paper's three groups, or none.
    weighting: Literal["per_term", "grouped", "none"] = "per_term"
    joint_cam_scale: float = 5.0  # fixed factor on the root-relative 3D joint term (official code)
    # Pose term: L1 on axis-angle (official code) or L1 on rotation matrices. Axis-angle is discontinuous at
    # 180 degrees (a person facing away from the camera has a root near there) and its mean over mostly-zero
    # joint angles is tiny; the rotation-matrix L1 is smooth everywhere (CPU recipe, issue 14).
    pose_loss: Literal["axis_angle", "rotmat"] = "axis_angle"
    # Fixed multipliers of the regression terms, applied before the (learned) weighting. 1 = the paper.
    joint_img_weight: float = 1.0
    fit_joint_img_weight: float = 1.0
    pose_weight: float = 1.0
    shape_weight: float = 1.0
    joint_proj_weight: float = 1.0
    joint_cam_weight: float = 1.0
    use_contrastive: bool = False  # stage 2 (fine-tuning) turns this on
    j2j_weight: float = 0.1  # official code 0.1; paper text 0.01
    j2n_weight: float = 0.1
    temperature: float = 0.07
    j2j_anchors: int = 100
    j2j_positives: int = 128
    j2j_negatives: int = 256
    j2j_positive_source: Literal["gt", "pred"] = "gt"
    j2n_anchors: int = 100
    j2n_positives: int = 1024
    j2n_negatives: int = 2048

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"loss.temperature must be > 0, got {self.temperature}")
        for name in (
            "j2j_anchors",
            "j2j_positives",
            "j2j_negatives",
            "j2n_anchors",
            "j2n_positives",
            "j2n_negatives",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"loss.{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "joint_cam_scale",
            "j2j_weight",
            "j2n_weight",
            "joint_img_weight",
            "fit_joint_img_weight",
            "pose_weight",
            "shape_weight",
            "joint_proj_weight",
            "joint_cam_weight",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"loss.{name} must be >= 0, got {getattr(self, name)}")
