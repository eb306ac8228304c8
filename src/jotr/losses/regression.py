"""Masked L1 regression terms of JOTR (jotr-reference §2), pure and vectorised.

Normalisation (differs from the official code, jotr-reference §7 B9): every term is the **mean of |error| over
the valid entries** (entries whose mask is non-zero; a mask multiplies nothing, it selects), and exactly 0
(with zero gradient) when no entry is valid. The official code takes ``.mean()`` over all elements with the
masked ones as zeros, so its terms shrink with the share of invalid entries (e.g. ``joint_cam`` is halved by a
1:1 mix of 3D and 2D datasets, and the z column of ``joint_img`` weighs less than x and y). Masked entries
never reach the result, not even as NaN.

Scales (the official factors, written in resolution-independent units):

* ``joint_img`` / ``fit_joint_img``: official ``(1/64) * |64 J - target_hm|`` on a 64-cell grid = ``|J -
  target|`` in the unit cube; computed in the unit cube (targets through
  :func:`jotr.geometry.coords.hm_to_unit`), so the term is the same for any ``heatmap_size``.
* ``joint_proj``: official ``(1/8) * |proj_hm - target_hm|`` on the 64-cell grid = ``8 * |proj - target|`` in
  crop units; computed in the unit square with :data:`JOINT_PROJ_SCALE`.
* ``joint_cam``: ``cfg.joint_cam_scale`` (5) times the root-relative metric error.
* ``pose`` (axis-angle, radians) and ``shape``: unscaled.

Joint sets: the predicted ``joints_unit`` are the 15 query joints; targets are in the 30-joint set and are
reduced with :data:`jotr.body.joint_sets.JOTR15_FROM_30`. ``joint_proj`` and ``joint_cam`` use all 30 joints.
"""

from __future__ import annotations

import torch
from torch import Tensor

from jotr.body.joint_sets import JOTR15_FROM_30
from jotr.geometry.coords import hm_to_unit
from jotr.geometry.rotations import aa_to_rotmat, rotmat_to_aa

REFERENCE_HEATMAP_SIZE = 64  # grid of the official code, in which its scale factors are written
JOINT_IMG_SCALE = 1.0  # official (1/64) per 64-grid cell = 1 per unit-cube side
JOINT_PROJ_SCALE = REFERENCE_HEATMAP_SIZE / 8.0  # official (1/8) per 64-grid cell = 8 per crop side


def masked_l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean ``|pred - target|`` over the entries where ``mask > 0``; 0 if there are none.

    ``mask`` broadcasts to ``pred``'s shape (e.g. (B, K, 1) for (B, K, 3)). Returns a scalar.
    """
    m = (mask > 0).expand_as(pred)
    err = torch.where(m, (pred - target).abs(), torch.zeros_like(pred))
    return err.sum() / m.sum().clamp(min=1).to(pred.dtype)


def reduce_to_15(x: Tensor) -> Tensor:
    """(B, 30, ...) -> (B, 15, ...) the query joints (jotr.body.joint_sets.JOTR15_FROM_30)."""
    idx = torch.as_tensor(JOTR15_FROM_30).to(x.device, non_blocking=True)  # no host sync on CUDA
    return x.index_select(1, idx)


def joint_img_loss(
    joints_unit: Tensor, target_hm: Tensor, target_ok: Tensor, is_3d: Tensor | None, heatmap_size: int
) -> Tensor:
    """Query joints vs. GT joints in the unit cube.

    joints_unit: (B, 15, 3) predicted, unit cube. target_hm: (B, 30, 3) heatmap cells (z = depth cells).
    target_ok: (B, 30) 1 = usable GT joint. is_3d: (B,) 1 = the z column is supervised (None = always).
    """
    target = hm_to_unit(reduce_to_15(target_hm), heatmap_size)  # (B, 15, 3) unit cube
    ok = (reduce_to_15(target_ok) > 0).to(joints_unit.dtype)  # (B, 15)
    z_ok = ok if is_3d is None else ok * (is_3d > 0).to(ok.dtype)[:, None]  # z column only for 3D samples
    mask = torch.stack([ok, ok, z_ok], dim=-1)  # (B, 15, 3)
    return JOINT_IMG_SCALE * masked_l1(joints_unit, target, mask)


def pose_loss(pose_rotmat: Tensor, target_aa: Tensor, has_fit: Tensor, joint_mask: Tensor) -> Tensor:
    """Axis-angle L1. pose_rotmat: (B, J, 3, 3); target_aa: (B, J, 3); has_fit: (B,); joint_mask: (J,)."""
    pred_aa = rotmat_to_aa(pose_rotmat)  # (B, J, 3)
    mask = (has_fit > 0).to(pred_aa.dtype)[:, None, None] * joint_mask.to(pred_aa.dtype)[None, :, None]
    return masked_l1(pred_aa, target_aa, mask)


def pose_rotmat_loss(pose_rotmat: Tensor, target_aa: Tensor, has_fit: Tensor, joint_mask: Tensor) -> Tensor:
    """Rotation-matrix L1 (mean over the 9 entries of every supervised joint). pose_rotmat: (B, J, 3, 3);
    target_aa: (B, J, 3) axis-angle; has_fit: (B,); joint_mask: (J,). Smooth at 180 degrees, unlike
    :func:`pose_loss`."""
    target = aa_to_rotmat(target_aa.to(pose_rotmat.dtype))  # (B, J, 3, 3)
    mask = (has_fit > 0).to(pose_rotmat.dtype)[:, None, None, None] * joint_mask.to(pose_rotmat.dtype)[
        None, :, None, None
    ]
    return masked_l1(pose_rotmat, target, mask)


def shape_loss(shape: Tensor, target: Tensor, has_fit: Tensor) -> Tensor:
    """(B, S) vs (B, S), masked by has_fit (B,)."""
    return masked_l1(shape, target, has_fit[:, None])


def joint_proj_loss(proj_hm: Tensor, target_hm: Tensor, target_ok: Tensor, heatmap_size: int) -> Tensor:
    """(B, 30, 2) projected joints vs (B, 30, 2+) GT joints, heatmap cells; target_ok (B, 30)."""
    pred = hm_to_unit(proj_hm, heatmap_size)
    target = hm_to_unit(target_hm[..., :2], heatmap_size)
    return JOINT_PROJ_SCALE * masked_l1(pred, target, target_ok[..., None])


def joint_cam_loss(
    joints_cam: Tensor, target_cam: Tensor, valid: Tensor, is_3d: Tensor, scale: float
) -> Tensor:
    """(B, 30, 3) root-relative metres vs GT; valid (B, 30); only samples with is_3d (B,)."""
    mask = valid * (is_3d > 0).to(valid.dtype)[:, None]
    return scale * masked_l1(joints_cam, target_cam, mask[..., None])
