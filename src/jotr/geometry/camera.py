"""The virtual crop camera of JOTR / 3DCrowdNet (jotr-reference §1.9) and perspective projection.

The network sees a square crop of ``input_size`` pixels. It is treated as the image of a pinhole camera with
focal length ``focal_256 * input_size / 256`` pixels (5000 for the paper's 256-px crop) and the principal
point at the crop centre. The camera head predicts (t_x, t_y, gamma); the depth is ``k * sigmoid(gamma)`` with
``k = sqrt(f_x f_y camera_3d_size^2 / (W H))`` (48.83 m for the paper's numbers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

PROJECTION_EPS = 1e-4  # added to depth before dividing, as the official code does


@dataclass(frozen=True)
class VirtualCamera:
    focal: float  # pixels of the crop (f_x = f_y)
    input_size: int  # crop side, pixels
    camera_3d_size: float = 2.5  # metres

    @staticmethod
    def for_crop(input_size: int, focal_256: float = 5000.0, camera_3d_size: float = 2.5) -> VirtualCamera:
        focal = focal_256 * input_size / 256.0
        return VirtualCamera(focal=focal, input_size=input_size, camera_3d_size=camera_3d_size)

    @property
    def princpt(self) -> tuple[float, float]:
        return (self.input_size / 2.0, self.input_size / 2.0)

    @property
    def depth_scale(self) -> float:
        """k = sqrt(f_x f_y s^2 / (W H))."""
        area = self.input_size * self.input_size
        return math.sqrt(self.focal * self.focal * self.camera_3d_size**2 / area)

    def translation(self, cam: Tensor) -> Tensor:
        """(B, 3) head output (t_x, t_y, gamma) -> (B, 3) camera translation in metres."""
        return torch.cat([cam[..., :2], self.depth_scale * torch.sigmoid(cam[..., 2:3])], dim=-1)

    def project(self, points_cam: Tensor) -> Tensor:
        """(..., N, 3) camera-frame metres -> (..., N, 2) crop pixels."""
        return project_points(points_cam, (self.focal, self.focal), self.princpt)


def project_points(
    points_cam: Tensor, focal: tuple[float, float] | Tensor, princpt: tuple[float, float] | Tensor
) -> Tensor:
    """Pinhole projection: ``x = X / (Z + eps) * f + c``. (..., N, 3) -> (..., N, 2).

    ``focal`` and ``princpt`` are pairs of floats or tensors broadcastable to (..., 1, 2).
    """
    f = torch.as_tensor(focal, dtype=points_cam.dtype, device=points_cam.device)
    c = torch.as_tensor(princpt, dtype=points_cam.dtype, device=points_cam.device)
    if f.dim() >= 1 and f.shape[-1] == 2 and f.dim() > 1:
        f = f.unsqueeze(-2)
    if c.dim() >= 1 and c.shape[-1] == 2 and c.dim() > 1:
        c = c.unsqueeze(-2)
    xy = points_cam[..., :2] / (points_cam[..., 2:3] + PROJECTION_EPS)
    return xy * f + c
