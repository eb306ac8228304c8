"""The body-model interface shared by SMPL, Anny and the procedural test model.

Frames: every model's canonical frame is SMPL's -- metres, at identity root rotation the body is upright along
+Y, faces +Z, and its left side is at +X. The root rotation maps this canonical body into the camera frame
(x right, y down, z forward), exactly as the datasets' camera-frame root poses do (an upright person facing
the camera has a root rotation of about R_x(180 deg)). Implementations convert their native frame once, at
this boundary (Anny is Z-up facing -Y: ``(x, y, z) -> (x, z, -y)``; SMPL needs no conversion).

Pose: rotation matrices for every pose joint, root first, ``(B, J, 3, 3)``, relative to the parent joint (the
model's kinematic tree). Shape: ``(B, S)`` (SMPL betas; Anny phenotypes in [0, 1]).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from jotr.body.joint_sets import get_joint_set
from jotr.errors import InputError


def rest_pose_rotmat(num_pose_joints: int) -> Tensor:
    """(J, 3, 3) the rest pose of an upright person facing the camera: root R_x(180 deg) (the canonical body
    turned into the camera frame, see the module docstring), identity for every other pose joint."""
    if num_pose_joints < 1:
        raise ValueError(f"rest_pose_rotmat: num_pose_joints must be >= 1, got {num_pose_joints}")
    rot = torch.eye(3).repeat(num_pose_joints, 1, 1)
    rot[0] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    return rot


@dataclass
class BodyOutput:
    vertices: Tensor  # (B, V, 3) metres, rotated by the root rotation, model origin (not root-relative)
    skeleton: Tensor  # (B, K, 3) the model's native joints (SMPL 24 / Anny bone heads), same frame


class BodyModel(nn.Module, ABC):
    """Base class. Subclasses set the attributes below and implement :meth:`forward`.

    Joint sets are linear regressors over the concatenation ``[vertices; skeleton]`` of shape
    ``(K, V + K_native)``, registered as non-persistent buffers ``regressor_<set name>`` so that checkpoints
    never carry (possibly licensed) body-model arrays.
    """

    name: str = "body"
    num_skeleton_joints: int  # K of BodyOutput.skeleton
    num_pose_joints: int  # rotations per body, root included
    num_shape: int  # shape-vector size
    shape_bounds: tuple[float, float] | None = None  # e.g. (0, 1) for Anny phenotypes; None = unbounded
    pose_joint_names: tuple[str, ...]
    parents: tuple[int, ...]  # kinematic tree of the pose joints (-1 for the root)

    @property
    def faces(self) -> Tensor:
        """(F, 3) int64 triangle indices."""
        return self._faces  # type: ignore[attr-defined]

    @property
    def num_vertices(self) -> int:
        return int(self._num_vertices)  # type: ignore[attr-defined]

    @abstractmethod
    def forward(self, pose_rotmat: Tensor, shape: Tensor) -> BodyOutput:
        """(B, J, 3, 3) local rotations (root first) and (B, S) shape -> :class:`BodyOutput`."""

    def default_shape(self, batch: int = 1, device=None, dtype=torch.float32) -> Tensor:
        """(B, S) the 'average person' shape."""
        lo_hi = self.shape_bounds
        value = 0.0 if lo_hi is None else 0.5 * (lo_hi[0] + lo_hi[1])
        return torch.full((batch, self.num_shape), value, device=device, dtype=dtype)

    def rest_pose(self, batch: int = 1, device=None, dtype=torch.float32) -> Tensor:
        """(B, J, 3, 3) identity rotations."""
        eye = torch.eye(3, device=device, dtype=dtype)
        return eye.expand(batch, self.num_pose_joints, 3, 3).clone()

    def pose_supervision_mask(self) -> Tensor:
        """(J,) float mask of pose joints whose rotation target is trusted (1) or ignored (0)."""
        return torch.ones(self.num_pose_joints)

    # ---------------------------------------------------------------------------------------------- joints

    def register_joint_regressor(self, set_name: str, regressor: Tensor) -> None:
        expected = len(get_joint_set(set_name))
        cols = self._num_vertices + self.num_skeleton_joints  # type: ignore[attr-defined]
        if tuple(regressor.shape) != (expected, cols):
            raise ValueError(
                f"regressor for {set_name} must be ({expected}, {cols}), got {tuple(regressor.shape)}"
            )
        self.register_buffer(f"regressor_{set_name}", regressor.float(), persistent=False)

    def joints(self, out: BodyOutput, set_name: str) -> Tensor:
        """(B, K, 3) joints of a named set (see ``jotr.body.joint_sets``)."""
        reg = getattr(self, f"regressor_{set_name}", None)
        if reg is None:
            raise KeyError(f"{self.name} body model has no regressor for joint set {set_name!r}")
        points = torch.cat([out.vertices, out.skeleton], dim=1)
        return torch.einsum("kn,bnc->bkc", reg.to(points.dtype), points)

    def check_inputs(self, pose_rotmat: Tensor, shape: Tensor) -> None:
        B = pose_rotmat.shape[0]
        if pose_rotmat.shape[1:] != (self.num_pose_joints, 3, 3):
            raise InputError(
                f"{self.name}: pose must be (B, {self.num_pose_joints}, 3, 3) rotation matrices, "
                f"got {tuple(pose_rotmat.shape)}"
            )
        if shape.shape != (B, self.num_shape):
            raise InputError(f"{self.name}: shape must be ({B}, {self.num_shape}), got {tuple(shape.shape)}")
