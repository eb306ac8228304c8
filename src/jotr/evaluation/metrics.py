"""Pure metric functions (jotr-reference §4). Inputs in metres, outputs in millimetres.

All functions are batched: ``(B, N, 3)`` in, ``(B,)`` (or ``(B, N)`` per joint) out, no reduction over the
batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

M_TO_MM = 1000.0

# H36M-17 indices: pelvis is the root; evaluation keeps 14 joints (drops pelvis 0, torso 7, nose 9).
H36M_ROOT = 0
H36M_EVAL_14 = (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)


def _check(pred: Tensor, gt: Tensor) -> None:
    if pred.shape != gt.shape or pred.dim() != 3 or pred.shape[-1] != 3:
        raise ValueError(
            f"expected two (B, N, 3) tensors of the same shape, got {tuple(pred.shape)} and {tuple(gt.shape)}"
        )


def root_relative(joints: Tensor, root_index: int = H36M_ROOT) -> Tensor:
    """(B, N, 3) -> (B, N, 3) with joint ``root_index`` moved to the origin."""
    return joints - joints[:, root_index : root_index + 1]


def per_joint_error(pred: Tensor, gt: Tensor) -> Tensor:
    """(B, N, 3) x2 metres -> (B, N) Euclidean error in mm (no alignment)."""
    _check(pred, gt)
    return torch.linalg.vector_norm(pred - gt, dim=-1) * M_TO_MM


def mpjpe(pred: Tensor, gt: Tensor) -> Tensor:
    """Mean per-joint position error, (B, N, 3) x2 metres -> (B,) mm. Align roots beforehand."""
    return per_joint_error(pred, gt).mean(dim=-1)


def similarity_procrustes(pred: Tensor, gt: Tensor) -> Tensor:
    """Align ``pred`` to ``gt`` with the best scale, proper rotation and translation (Umeyama).

    (B, N, 3) x2 -> (B, N, 3). A sample with a NaN/inf in ``pred`` or ``gt`` gives NaN (the SVD never sees
    it, so one broken prediction cannot make the whole batch fail).
    """
    _check(pred, gt)
    dtype = pred.dtype
    X, Y = pred.double(), gt.double()
    finite = (torch.isfinite(X).all(dim=2).all(dim=1) & torch.isfinite(Y).all(dim=2).all(dim=1))[
        :, None, None
    ]
    all_finite = bool(finite.all())
    if not all_finite:
        X, Y = torch.where(finite, X, 0.0), torch.where(finite, Y, 0.0)
    mu_x, mu_y = X.mean(1, keepdim=True), Y.mean(1, keepdim=True)
    X0, Y0 = X - mu_x, Y - mu_y
    var_x = (X0**2).sum(dim=(1, 2))
    K = X0.transpose(1, 2) @ Y0  # (B, 3, 3)
    U, S, Vh = torch.linalg.svd(K)
    V = Vh.transpose(1, 2)
    d = torch.sign(torch.linalg.det(V @ U.transpose(1, 2)))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=-1))
    R = V @ D @ U.transpose(1, 2)  # rotation taking X0 to Y0
    scale = (S * torch.diagonal(D, dim1=1, dim2=2)).sum(-1) / var_x.clamp(min=1e-12)
    aligned = scale[:, None, None] * (X0 @ R.transpose(1, 2)) + mu_y
    if not all_finite:
        aligned = torch.where(finite, aligned, torch.nan)
    return aligned.to(dtype)


def pa_mpjpe(pred: Tensor, gt: Tensor) -> Tensor:
    """MPJPE after similarity Procrustes alignment, (B, N, 3) x2 metres -> (B,) mm."""
    return mpjpe(similarity_procrustes(pred, gt), gt)


def pve(
    pred_vertices: Tensor, gt_vertices: Tensor, pred_root: Tensor | None = None, gt_root: Tensor | None = None
) -> Tensor:
    """Mean per-vertex error, (B, V, 3) x2 metres -> (B,) mm.

    Each mesh is translated by its own root (``(B, 3)``, e.g. the regressed pelvis) when given; no alignment.
    """
    if pred_root is not None:
        pred_vertices = pred_vertices - pred_root[:, None]
    if gt_root is not None:
        gt_vertices = gt_vertices - gt_root[:, None]
    return mpjpe(pred_vertices, gt_vertices)
