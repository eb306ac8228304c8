"""Typed containers passed between data, model, criterion and evaluator.

Glossary of coordinate spaces: see ``jotr.geometry.coords``. Joint sets: ``jotr.body.joint_sets``
(``30`` = JOTR's input set, ``15`` = query set). B = batch, L = decoder layers, J = pose joints of the body
model, S = shape size, V = vertices, C = feature channels, D/H/W = lifted volume size.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor


@dataclass
class Inputs:
    image: Tensor  # (B, 3, H, W) crop, RGB in [0, 1], no mean/std normalisation
    keypoints_hm: Tensor  # (B, 30, 2) detector 2D keypoints, heatmap cells of the crop
    keypoints_valid: Tensor  # (B, 30) float, 1 = joint present (confidence > threshold and inside the crop)


@dataclass
class Targets:
    """Supervision; every field has a matching mask. Missing annotations are zeros with mask 0."""

    joints_hm: Tensor  # (B, 30, 3) GT joints: x, y heatmap cells; z root-relative depth mapped to cells
    joints_trunc: Tensor  # (B, 30) float, 1 = GT joint inside the crop (x, y, and z in range)
    joints_cam: Tensor  # (B, 30, 3) root-relative camera-frame metres
    joints_valid: Tensor  # (B, 30) float, 1 = GT joint annotated
    is_3d: Tensor  # (B,) float, 1 = sample has 3D joint annotation (z columns and joints_cam are used)
    fit_joints_hm: Tensor  # (B, 30, 3) joints of the fitted body (pseudo-GT), like joints_hm
    fit_joints_trunc: Tensor  # (B, 30) float
    pose_aa: Tensor  # (B, J, 3) fitted body pose, axis-angle, root first
    shape: Tensor  # (B, S) fitted body shape
    has_fit: Tensor  # (B,) float, 1 = pose_aa / shape / fit_joints are valid


@dataclass
class Meta:
    """Per-sample bookkeeping; not used by the loss."""

    dataset: list[str]  # (B,) dataset name
    sample_id: list[str]  # (B,) unique id within the dataset (image id + annotation id)
    crop_to_img: Tensor  # (B, 2, 3) affine matrix mapping crop pixels to original image pixels
    visible_fraction: Tensor  # (B,) share of the person visible (1 = unoccluded; NaN = unknown)
    gender: list[str] = field(default_factory=list)  # (B,) "neutral" | "male" | "female" (GT mesh for eval)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Batch:
    inputs: Inputs
    targets: Targets
    meta: Meta

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        def move(obj):
            if isinstance(obj, Tensor):
                return obj.to(device, non_blocking=non_blocking)
            return obj

        def move_dc(dc):
            return type(dc)(**{f.name: move(getattr(dc, f.name)) for f in fields(dc)})

        return Batch(inputs=move_dc(self.inputs), targets=move_dc(self.targets), meta=move_dc(self.meta))

    def __len__(self) -> int:
        return self.inputs.image.shape[0]


@dataclass
class JOTROutput:
    """What the network returns in train and eval mode alike."""

    joints_unit: Tensor  # (L, B, 15, 3) per decoder layer, query joints in the unit cube of the crop
    pose_rotmat: Tensor  # (B, J, 3, 3) local joint rotations, root first
    shape: Tensor  # (B, S) body shape
    cam: Tensor  # (B, 3) raw camera head output (t_x, t_y, gamma)
    cam_t: Tensor  # (B, 3) camera translation in metres (virtual crop camera)
    vertices: Tensor  # (B, V, 3) root-relative camera-frame metres
    joints_cam: Tensor  # (B, 30, 3) root-relative camera-frame metres (root = body model's pelvis)
    joints_proj_hm: Tensor  # (B, 30, 2) projection of the posed joints with cam_t, heatmap cells
    feat_volume: Tensor  # (B, C, D, H, W) 3D feature volume from the 3D encoder (contrastive losses)
    depth_exponent: Tensor  # () learned depth-warp exponent k, clamped
    pose_latent: Tensor | None = None  # (B, 32) VPoser latent when the vposer head is used

    @property
    def joints_final_unit(self) -> Tensor:
        """(B, 15, 3) last decoder layer's joints."""
        return self.joints_unit[-1]
