"""MPJPE, PA-MPJPE and PVE (jotr-reference §4): metres in, millimetres out, batched."""

from __future__ import annotations

import pytest
import torch

from jotr.evaluation.metrics import (
    H36M_EVAL_14,
    mpjpe,
    pa_mpjpe,
    per_joint_error,
    pve,
    root_relative,
    similarity_procrustes,
)
from jotr.geometry.rotations import aa_to_rotmat


def _similarity(points: torch.Tensor, seed: int) -> torch.Tensor:
    """An arbitrary similarity transform (scale, proper rotation, translation) applied per sample."""
    g = torch.Generator().manual_seed(seed)
    B = points.shape[0]
    R = aa_to_rotmat(torch.randn(B, 3, generator=g, dtype=points.dtype))
    s = 0.5 + 2.0 * torch.rand(B, 1, 1, generator=g, dtype=points.dtype)
    t = torch.randn(B, 1, 3, generator=g, dtype=points.dtype) * 3.0
    return s * points @ R.transpose(1, 2) + t


def _joints(B=4, N=14, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, N, 3, generator=g, dtype=dtype) * 0.4


def test_mpjpe_hand_computed():
    gt = torch.zeros(1, 3, 3)
    pred = torch.tensor([[[0.003, 0.004, 0.0], [0.0, 0.0, 0.010], [0.0, 0.0, 0.0]]])  # 5 mm, 10 mm, 0 mm
    torch.testing.assert_close(per_joint_error(pred, gt), torch.tensor([[5.0, 10.0, 0.0]]))
    torch.testing.assert_close(mpjpe(pred, gt), torch.tensor([5.0]))
    # root-relative: a common offset vanishes
    shifted = pred + torch.tensor([1.0, 2.0, 3.0])
    rel = root_relative(shifted, 2)
    torch.testing.assert_close(rel[:, 2], torch.zeros(1, 3))
    torch.testing.assert_close(mpjpe(rel, root_relative(pred, 2)), torch.tensor([0.0]), atol=1e-3, rtol=0)
    assert H36M_EVAL_14 == (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pa_mpjpe_removes_similarity_transforms(dtype):
    gt = _joints(dtype=dtype)
    assert (pa_mpjpe(gt, gt) < 1e-3).all()
    assert (mpjpe(gt, gt) == 0).all()
    moved = _similarity(gt, seed=1)
    assert (mpjpe(moved, gt) > 100).all()  # really moved
    assert (pa_mpjpe(moved, gt) < 1e-3).all()
    aligned = similarity_procrustes(moved, gt)
    assert aligned.dtype == dtype
    torch.testing.assert_close(aligned, gt, atol=1e-5, rtol=0)
    # invariance: a noisy prediction scores the same after any similarity transform of it
    noisy = gt + 0.05 * _joints(seed=5, dtype=dtype)
    base = pa_mpjpe(noisy, gt)
    assert (base > 1).all()
    torch.testing.assert_close(pa_mpjpe(_similarity(noisy, seed=2), gt), base, atol=1e-3, rtol=1e-4)
    assert (base <= mpjpe(noisy, gt) + 1e-4).all()  # alignment never hurts


def test_pa_mpjpe_does_not_undo_a_reflection():
    gt = _joints()
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0])  # an improper transform: not a similarity
    assert (pa_mpjpe(mirrored, gt) > 10).all()


def test_batched_equals_per_sample():
    gt, pred = _joints(B=5), _joints(B=5, seed=3)
    batched = (mpjpe(pred, gt), pa_mpjpe(pred, gt), pve(pred, gt))
    for i in range(5):
        single = (
            mpjpe(pred[i : i + 1], gt[i : i + 1]),
            pa_mpjpe(pred[i : i + 1], gt[i : i + 1]),
            pve(pred[i : i + 1], gt[i : i + 1]),
        )
        for b, s in zip(batched, single):
            torch.testing.assert_close(b[i : i + 1], s)
    assert batched[0].shape == (5,)


def test_pve_with_roots():
    g = torch.Generator().manual_seed(0)
    gt = torch.randn(2, 100, 3, generator=g)
    t = torch.tensor([[0.5, -0.2, 3.0], [1.0, 1.0, 1.0]])
    pred = gt + t[:, None]
    gt_root, pred_root = gt[:, 7], pred[:, 7]  # each mesh's own root (e.g. its regressed pelvis)
    torch.testing.assert_close(pve(pred, gt, pred_root, gt_root), torch.zeros(2), atol=1e-3, rtol=0)
    torch.testing.assert_close(pve(pred, gt), t.norm(dim=-1) * 1000)  # no root: the offset counts
    # roots do not align anything else: a per-vertex error survives
    bumped = pred.clone()
    bumped[:, 0] += torch.tensor([0.0, 0.1, 0.0])
    torch.testing.assert_close(
        pve(bumped, gt, pred_root, gt_root), torch.full((2,), 100.0 / 100), atol=1e-3, rtol=0
    )


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        mpjpe(torch.zeros(2, 14, 3), torch.zeros(2, 17, 3))
    with pytest.raises(ValueError):
        pa_mpjpe(torch.zeros(14, 3), torch.zeros(14, 3))
