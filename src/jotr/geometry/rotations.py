"""Rotation conversions (axis-angle, rotation matrix, 6D) on top of roma.

6D convention (Zhou et al.; the official JOTR/VPoser code): the 6 numbers are a 3x2 matrix read row-major,
whose two columns are orthonormalised by Gram-Schmidt into the first two columns of the rotation matrix.
"""

from __future__ import annotations

import roma
import torch
from torch import Tensor


def rot6d_to_rotmat(x: Tensor) -> Tensor:
    """(..., 6) -> (..., 3, 3)."""
    if x.shape[-1] != 6:
        raise ValueError(f"rot6d_to_rotmat expects (..., 6), got {tuple(x.shape)}")
    return roma.special_gramschmidt(x.reshape(*x.shape[:-1], 3, 2))


def rotmat_to_rot6d(R: Tensor) -> Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns, row-major."""
    return R[..., :, :2].reshape(*R.shape[:-2], 6)


def aa_to_rotmat(aa: Tensor) -> Tensor:
    """(..., 3) axis-angle -> (..., 3, 3)."""
    return roma.rotvec_to_rotmat(aa)


def rotmat_to_aa(R: Tensor) -> Tensor:
    """(..., 3, 3) -> (..., 3) axis-angle (angle in [0, pi])."""
    return roma.rotmat_to_rotvec(R)


def rot6d_to_aa(x: Tensor) -> Tensor:
    return rotmat_to_aa(rot6d_to_rotmat(x))


def aa_to_rot6d(aa: Tensor) -> Tensor:
    return rotmat_to_rot6d(aa_to_rotmat(aa))


def rotation_about_axis(angle: Tensor, axis: str) -> Tensor:
    """(...,) angles in radians -> (..., 3, 3) rotation about the x, y or z axis."""
    c, s = torch.cos(angle), torch.sin(angle)
    o, z = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == "x":
        rows = [o, z, z, z, c, -s, z, s, c]
    elif axis == "y":
        rows = [c, z, s, z, o, z, -s, z, c]
    elif axis == "z":
        rows = [c, -s, z, s, c, z, z, z, o]
    else:
        raise ValueError(f"axis must be 'x', 'y' or 'z', got {axis!r}")
    return torch.stack(rows, dim=-1).reshape(*angle.shape, 3, 3)
