"""Training augmentation: random parameters, the matching 3D transform, left/right flips and colour.

Image, 2D joints, 3D joints and body pose are transformed consistently:

* the crop (``jotr.geometry.boxes.crop_transform``) mirrors first, then rotates by ``rot_deg``
  counter-clockwise;
* the same happens to camera-frame 3D points about the camera's optical axis: ``X' = R_z @ F @ X`` with ``F =
  diag(-1, 1, 1)`` when flipped and ``R_z = [[c, s, 0], [-s, c, 0], [0, 0, 1]]`` (image y points down);
* the root rotation becomes ``R_z @ F @ R_root @ F``; every other joint's axis-angle is mirrored as ``(a_x,
  -a_y, -a_z)`` and swapped with its left/right counterpart;
* joints of every set swap left/right through a permutation derived from the joint *names*: ``L_x``/``R_x``
  (SMPL, JOTR30) or ``x.L``/``x.R`` (Anny bones).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jotr.data.config import AugmentConfig


@dataclass(frozen=True)
class AugParams:
    scale: float = 1.0  # crop side multiplier (> 1 = the person appears smaller)
    rot_deg: float = 0.0  # counter-clockwise image rotation, degrees
    flip: bool = False  # horizontal mirror
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel RGB multipliers
    enlarge: float = 1.0  # extra enlargement of the tight training box


def sample_aug_params(cfg: AugmentConfig, rng: np.random.Generator) -> AugParams:
    """Draw augmentation parameters (official ``get_aug_config``); always the same number of draws."""
    z_scale, z_rot = rng.standard_normal(2)
    u_rot, u_flip, u_enlarge = rng.random(3)
    color = rng.uniform(1.0 - cfg.color_factor, 1.0 + cfg.color_factor, size=3)
    scale = float(np.clip(z_scale, -1.0, 1.0) * cfg.scale_factor + 1.0)
    rot = float(np.clip(z_rot, -2.0, 2.0) * cfg.rot_factor) if u_rot < cfg.rot_prob else 0.0
    lo, hi = cfg.bbox_enlarge
    return AugParams(
        scale=scale,
        rot_deg=rot,
        flip=bool(u_flip < cfg.flip_prob),
        color=(float(color[0]), float(color[1]), float(color[2])),
        enlarge=float(lo + (hi - lo) * u_enlarge),
    )


def camera_transform(rot_deg: float, flip: bool) -> np.ndarray:
    """(3, 3) matrix applied to camera-frame points to match the crop's flip + rotation (improper if
    flipped)."""
    a = math.radians(rot_deg)
    c, s = math.cos(a), math.sin(a)
    R = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    if flip:
        R = R @ np.diag([-1.0, 1.0, 1.0])
    return R


def flip_permutation(names: Sequence[str]) -> np.ndarray:
    """perm with ``flipped[k] = x[perm[k]]``: swaps ``L_x``/``R_x`` and ``x.L``/``x.R`` joints by name.

    Raises ValueError when a left/right joint has no counterpart (the flip would silently be wrong).
    """
    names = list(names)
    lookup = {n: i for i, n in enumerate(names)}
    perm = np.arange(len(names))
    for i, n in enumerate(names):
        if n.startswith("L_"):
            other = "R_" + n[2:]
        elif n.startswith("R_"):
            other = "L_" + n[2:]
        elif n.endswith(".L"):
            other = n[:-2] + ".R"
        elif n.endswith(".R"):
            other = n[:-2] + ".L"
        else:
            continue
        if other not in lookup:
            raise ValueError(f"joint {n!r} has no left/right counterpart {other!r}")
        perm[i] = lookup[other]
    return perm


def augment_pose(pose_aa: np.ndarray, rot_deg: float, flip: bool, perm: np.ndarray | None) -> np.ndarray:
    """(J, 3) axis-angle pose, root first (camera frame) -> the pose of the flipped and rotated person."""
    import cv2

    pose = np.array(pose_aa, dtype=np.float64).reshape(-1, 3)
    if flip:
        if perm is None:
            raise ValueError("augment_pose: a flip needs the pose-joint permutation")
        pose = pose[perm]
        pose[:, 1:] *= -1.0  # F R F for F = diag(-1, 1, 1)
    if rot_deg != 0.0:
        Rz = camera_transform(rot_deg, False)
        root = cv2.Rodrigues(pose[0].reshape(3, 1))[0]
        pose[0] = cv2.Rodrigues(Rz @ root)[0].reshape(3)
    return pose


def apply_color(image: np.ndarray, color: Sequence[float]) -> np.ndarray:
    """(H, W, 3) RGB float image in [0, 255] -> per-channel scaled and clipped copy."""
    return np.clip(image * np.asarray(color, dtype=image.dtype)[None, None, :], 0.0, 255.0)
