"""Every conversion between the project's coordinate spaces lives here, under a name.

Spaces (suffixes used throughout the code base):

``_img``   original image pixels, (x, y).
``_px``    crop pixels, (x, y) in [0, input_size); the crop is the network's input image.
``_hm``    heatmap grid cells, (x, y[, z]) in [0, heatmap_size); ``hm = px * heatmap_size / input_size``.
           The z column (targets only) is root-relative depth mapped to the same grid (jotr-reference §2).
``_unit``  unit cube: x, y in [0, 1] over the crop; z in [0, 1] over root-relative depth
           [-bbox_3d_size / 2, +bbox_3d_size / 2] metres. The decoder predicts joints in this space.
``_grid``  ``torch.nn.functional.grid_sample`` coordinates in [-1, 1], last axis ordered (x, y, z), which
           index the (W, H, D) axes of an (N, C, D, H, W) volume -- note the reversed order. With
           ``align_corners=True``, -1 and +1 are the centres of the first and last voxels.
``_cam``   camera frame, metres: x right, y down, z forward (root-relative unless stated otherwise).
``_world`` export frame of result files (``--frame world``): Y up, metres, feet on y = 0 (see below).

The depth axis of the lifted volume is warped: voxel slice d (of D) sits at depth ``z = (d / D) ** k`` with
the learned exponent k (jotr-reference §1.5). The decoder samples the volume at ``2 * z ** k - 1``
(:func:`unit_to_grid` with ``exponent=k``) and the contrastive losses use the same warp.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# ------------------------------------------------------------------------------------ crop pixels / heatmap


def px_to_hm(xy_px: Tensor, input_size: int, heatmap_size: int) -> Tensor:
    """(..., 2) crop pixels -> (..., 2) heatmap cells."""
    return xy_px * (heatmap_size / input_size)


def hm_to_px(xy_hm: Tensor, input_size: int, heatmap_size: int) -> Tensor:
    """(..., 2) heatmap cells -> (..., 2) crop pixels."""
    return xy_hm * (input_size / heatmap_size)


# ------------------------------------------------------------------------------------ unit cube / heatmap


def unit_to_hm(xyz_unit: Tensor, heatmap_size: int) -> Tensor:
    """(..., 2 or 3) unit cube -> heatmap cells (every column is scaled by heatmap_size)."""
    return xyz_unit * heatmap_size


def hm_to_unit(xyz_hm: Tensor, heatmap_size: int) -> Tensor:
    """(..., 2 or 3) heatmap cells -> unit cube."""
    return xyz_hm / heatmap_size


def depth_to_unit(z_rel_m: Tensor, bbox_3d_size: float) -> Tensor:
    """Root-relative depth in metres -> unit z in [0, 1] (0.5 = root depth)."""
    return (z_rel_m / (bbox_3d_size / 2.0) + 1.0) / 2.0


def unit_to_depth(z_unit: Tensor, bbox_3d_size: float) -> Tensor:
    """Unit z in [0, 1] -> root-relative depth in metres."""
    return (z_unit * 2.0 - 1.0) * (bbox_3d_size / 2.0)


# ------------------------------------------------------------------------------------ grid_sample space


def unit_to_grid(xyz_unit: Tensor, exponent: Tensor | float | None = None) -> Tensor:
    """(..., 3) unit cube -> (..., 3) grid_sample coordinates (x, y, z) for an (N, C, D, H, W) volume.

    With ``exponent`` (the learned depth exponent k), depth is warped as ``z ** k`` before the mapping, which
    is how the decoder samples the lifted volume; without it, depth maps linearly.
    """
    xy = xyz_unit[..., :2] * 2.0 - 1.0
    z = xyz_unit[..., 2:3]
    if exponent is not None:
        z = z.clamp(min=0.0) ** exponent
    return torch.cat([xy, z * 2.0 - 1.0], dim=-1)


def grid_to_unit(xyz_grid: Tensor, exponent: Tensor | float | None = None) -> Tensor:
    """Inverse of :func:`unit_to_grid`."""
    u = (xyz_grid + 1.0) / 2.0
    if exponent is None:
        return u
    z = u[..., 2:3].clamp(min=0.0) ** (1.0 / exponent)
    return torch.cat([u[..., :2], z], dim=-1)


def grid_to_voxel_index(xyz_grid: Tensor, size_dhw: tuple[int, int, int]) -> Tensor:
    """(..., 3) grid (x, y, z) -> (..., 3) continuous voxel indices in (d, h, w) order
    (align_corners=True)."""
    d, h, w = size_dhw
    x, y, z = xyz_grid.unbind(-1)
    return torch.stack(
        [(z + 1.0) / 2.0 * (d - 1), (y + 1.0) / 2.0 * (h - 1), (x + 1.0) / 2.0 * (w - 1)], dim=-1
    )


def depth_anchors(depth: int, exponent: Tensor | float, device=None, dtype=None) -> Tensor:
    """(D,) unit depth of each slice of the lifted volume: ``(d / D) ** k`` for d = 0..D-1."""
    d = torch.arange(depth, device=device, dtype=dtype or torch.float32) / depth
    return d**exponent


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Logit with clamping (DETR's ``inverse_sigmoid``)."""
    x = x.clamp(0.0, 1.0)
    return torch.log(x.clamp(min=eps) / (1.0 - x).clamp(min=eps))


# ------------------------------------------------------------------------------- export frames (numpy, 4x4)
# ``_world`` (export files only): Y up, metres, x right and z towards the camera (the camera's axes turned
# 180 deg about x, so a person who faces the camera faces +z, glTF's "front"); origin on the ground under the
# people: y = 0 at the lowest mesh point of the result, x = z = 0 below the mean pelvis. The camera's tilt is
# not estimated: the ground is taken parallel to the camera's x-z plane.

# (x, y, z)_cam -> (x, -y, -z): OpenCV camera axes (y down, z forward) -> Y-up axes (z towards the camera).
YUP_FROM_CAM = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))


def world_from_camera(points_cam, pelvis_cam) -> np.ndarray:
    """(N, 3) mesh points and (P, 3) pelvis positions of one result, camera frame metres -> the (4, 4) rigid
    transform ``T`` with ``p_world = T[:3, :3] @ p_cam + T[:3, 3]`` (the ``_world`` frame above)."""
    rot = np.array(YUP_FROM_CAM)
    pts = np.asarray(points_cam, np.float64).reshape(-1, 3) @ rot.T
    pelvis = np.asarray(pelvis_cam, np.float64).reshape(-1, 3) @ rot.T
    if not len(pts) or not len(pelvis):
        raise ValueError("world_from_camera needs at least one mesh point and one pelvis")
    T = np.eye(4)
    T[:3, :3] = rot
    T[:3, 3] = [-pelvis[:, 0].mean(), -pts[:, 1].min(), -pelvis[:, 2].mean()]
    return T


def export_from_camera(frame: str, points_cam, pelvis_cam) -> np.ndarray:
    """(4, 4) transform camera frame -> the export ``frame``: ``"camera"`` (identity) or ``"world"``."""
    if frame == "camera":
        return np.eye(4)
    if frame == "world":
        return world_from_camera(points_cam, pelvis_cam)
    raise ValueError(f"unknown export frame {frame!r} (camera | world)")


def apply_rigid(T, points) -> np.ndarray:
    """(4, 4) rigid/affine transform applied to (..., 3) points (numpy, float64)."""
    T = np.asarray(T, np.float64)
    return np.asarray(points, np.float64) @ T[:3, :3].T + T[:3, 3]
