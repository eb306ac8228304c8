"""J2J / J2N contrastive losses: sampling rules, voxel exclusion, equality with a per-anchor loop reference,
gradients, determinism, memory."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from jotr.geometry.coords import unit_to_grid
from jotr.losses.config import LossConfig
from jotr.losses.contrastive import (
    J2JSamples,
    J2NSamples,
    j2j_loss,
    j2n_loss,
    joint_contrastive_losses,
    joint_voxel_mask,
    sample_j2j,
    sample_j2n,
    sample_uniform,
    sample_volume,
)

TAU = 0.07


def _batch(B=6, C=16, size=(8, 8, 8), J=15, seed=0):
    g = torch.Generator().manual_seed(seed)
    vol = torch.randn(B, C, *size, generator=g, requires_grad=True)
    pred = (0.05 + 0.9 * torch.rand(B, J, 3, generator=g)).requires_grad_(True)
    gt = 0.05 + 0.9 * torch.rand(B, J, 3, generator=g)
    valid = torch.rand(B, J, generator=g) > 0.25
    is_3d = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])[:B]
    return vol, pred, gt, valid, is_3d


# ------------------------------------------------------------------------------------- loop reference


def _trilinear(vol_b: torch.Tensor, p_unit: torch.Tensor, k: float) -> torch.Tensor:
    """Feature of one (C, D, H, W) volume at one unit-cube point, written out by hand: x -> W, y -> H,
    z -> D after the decoder's depth warp z**k, voxel centres at the corners (align_corners=True)."""
    C, D, H, W = vol_b.shape
    x, y, z = p_unit[0], p_unit[1], p_unit[2] ** k
    fw, fh, fd = x * (W - 1), y * (H - 1), z * (D - 1)
    out = torch.zeros(C, dtype=vol_b.dtype)
    w0, h0, d0 = (int(math.floor(float(v.detach()))) for v in (fw, fh, fd))
    for dd in (0, 1):
        for hh in (0, 1):
            for ww in (0, 1):
                d, h, w = d0 + dd, h0 + hh, w0 + ww
                if not (0 <= d < D and 0 <= h < H and 0 <= w < W):
                    continue
                wt = (1 - abs(fd - d)) * (1 - abs(fh - h)) * (1 - abs(fw - w))
                out = out + wt * vol_b[:, d, h, w]
    return out


def _nce(anchor, positive, negatives):
    """Official-style InfoNCE for one (anchor, positive) with its negatives: cross-entropy, label 0."""
    a, p, n = F.normalize(anchor, dim=0), F.normalize(positive, dim=0), F.normalize(negatives, dim=1)
    logits = torch.cat([(a * p).sum()[None], n @ a]) / TAU
    return F.cross_entropy(logits[None], torch.zeros(1, dtype=torch.long))


def _ref_j2j(vol, pred, pos_pts, s: J2JSamples, k):
    J = pred.shape[1]
    per_anchor = []
    for a in range(len(s.anchor)):
        if not bool(s.valid[a]):
            continue
        ai = int(s.anchor[a])
        fa = _trilinear(vol[ai // J], pred[ai // J, ai % J], k)
        negs = torch.stack(
            [_trilinear(vol[int(n) // J], pred[int(n) // J, int(n) % J], k) for n in s.negative[a]]
        )
        losses = []
        for p in s.positive[a]:
            p = int(p)
            fp = _trilinear(vol[p // J], pos_pts[p // J, p % J], k)
            losses.append(_nce(fa, fp, negs))
        per_anchor.append(torch.stack(losses).mean())
    return torch.stack(per_anchor).mean()


def _ref_j2n(vol, pred, s: J2NSamples, k):
    B, C, D, H, W = vol.shape
    J = pred.shape[1]
    negs = []
    for n in s.negative:
        n = int(n)
        b, v = n // (D * H * W), n % (D * H * W)
        negs.append(vol[b, :, v // (H * W), (v // W) % H, v % W])
    negs = torch.stack(negs)
    losses = []
    for a in range(len(s.anchor)):
        if not bool(s.valid[a]):
            continue
        ai = int(s.anchor[a])
        fa = _trilinear(vol[ai // J], pred[ai // J, ai % J], k)
        for p in s.positive[a]:
            p = int(p)
            losses.append(_nce(fa, _trilinear(vol[p // J], pred[p // J, p % J], k), negs))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("source", ["gt", "pred"])
def test_j2j_equals_per_anchor_loop_reference(source):
    vol, pred, gt, valid, is_3d = _batch(B=5, size=(4, 6, 8))
    k = 2.5
    s = sample_j2j(
        is_3d > 0,
        valid,
        num_anchors=12,
        num_positives=7,
        num_negatives=9,
        positive_source=source,
        generator=torch.Generator().manual_seed(1),
    )
    assert bool(s.valid.any())
    pos_pts = gt if source == "gt" else pred
    pred_grid = unit_to_grid(pred, exponent=k)
    pos_grid = unit_to_grid(gt, exponent=k) if source == "gt" else pred_grid
    f_pred = sample_volume(vol, pred_grid)
    got = j2j_loss(f_pred, sample_volume(vol, pos_grid) if source == "gt" else f_pred, s, TAU)
    want = _ref_j2j(vol, pred, pos_pts, s, k)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    g_got = torch.autograd.grad(got, (vol, pred))
    g_want = torch.autograd.grad(want, (vol, pred))
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_j2n_equals_per_anchor_loop_reference():
    vol, pred, _, _, is_3d = _batch(B=5, size=(4, 6, 8))
    k = 3.0
    pred_grid = unit_to_grid(pred, exponent=k)
    excluded = joint_voxel_mask(pred_grid, (4, 6, 8))
    s = sample_j2n(
        is_3d > 0,
        excluded,
        15,
        num_anchors=10,
        num_positives=11,
        num_negatives=13,
        generator=torch.Generator().manual_seed(2),
    )
    got = j2n_loss(sample_volume(vol, pred_grid), vol, s, TAU)
    want = _ref_j2n(vol, pred, s, k)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    g_got = torch.autograd.grad(got, (vol, pred))
    g_want = torch.autograd.grad(want, (vol, pred))
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------------- sampling rules


def test_sample_uniform_replacement_rule_and_allowed_columns():
    g = torch.Generator().manual_seed(0)
    allowed = torch.zeros(3, 50, dtype=torch.bool)
    allowed[0, :40] = True  # enough for 30 -> no replacement
    allowed[1, 10:15] = True  # 5 < 30 -> replacement
    idx = sample_uniform(allowed, 30, g)
    assert idx.shape == (3, 30)
    assert len(set(idx[0].tolist())) == 30 and idx[0].max() < 40
    assert set(idx[1].tolist()) <= set(range(10, 15))
    # uniform over the allowed columns (with replacement): every allowed column is drawn
    big = sample_uniform(allowed[1:2], 2000, g)
    counts = torch.bincount(big[0], minlength=50)[10:15].float()
    assert counts.min() > 300 and counts.max() < 500


def test_j2j_sampling_rules():
    B, J = 6, 15
    g = torch.Generator().manual_seed(3)
    used = torch.tensor([True, False, True, True, False, True])
    valid = torch.rand(B, J, generator=g) > 0.3
    valid[:, 4] = False  # joint type 4 never has a GT positive
    s = sample_j2j(used, valid, num_anchors=60, num_positives=20, num_negatives=30, generator=g)
    a_b, a_j = s.anchor // J, s.anchor % J
    assert used[a_b].all()
    assert len(set(s.anchor.tolist())) == 60  # 60 candidates >= 60: without replacement, each once
    pos_b, pos_j = s.positive // J, s.positive % J
    neg_b, neg_j = s.negative // J, s.negative % J
    ok = s.valid
    assert ok.any() and (~ok).any()
    assert torch.equal(~ok, a_j == 4)
    assert (pos_j[ok] == a_j[ok, None]).all() and used[pos_b[ok]].all() and valid[pos_b[ok], pos_j[ok]].all()
    assert (neg_j != a_j[:, None]).all() and used[neg_b].all()


def test_j2n_sampling_excludes_joint_voxels_and_anchor():
    vol, pred, _, _, is_3d = _batch(B=6)
    grid = unit_to_grid(pred.detach(), exponent=3.0)
    excluded = joint_voxel_mask(grid, (8, 8, 8))
    used = is_3d > 0
    s = sample_j2n(used, excluded, 15, num_anchors=30, num_positives=50, num_negatives=900)
    nb, nv = s.negative // 512, s.negative % 512
    assert used[nb].all()
    assert not excluded[nb, nv].any()
    assert len(set(s.negative.tolist())) == 900  # pool of ~4 * 512 - joints >= 900: no replacement
    assert (s.positive != s.anchor[:, None]).all()
    assert used[s.positive // 15].all() and s.valid.all()


def test_exclusion_mask_marks_the_8_voxels_around_each_joint():
    """Hand-made case on a non-cubic (D, H, W) = (4, 6, 8) volume with the depth warp k = 2."""
    D, H, W = 4, 6, 8
    k = 2.0
    # continuous voxel index (d, h, w) = (1.5, 2.25, 5.5): x = 5.5 / 7, y = 2.25 / 5, z ** 2 = 1.5 / 3
    unit = torch.tensor([[[5.5 / 7, 2.25 / 5, math.sqrt(0.5)]]])
    mask = joint_voxel_mask(unit_to_grid(unit, exponent=k), (D, H, W)).reshape(D, H, W)
    expected = torch.zeros(D, H, W, dtype=torch.bool)
    for d in (1, 2):
        for h in (2, 3):
            for w in (5, 6):
                expected[d, h, w] = True
    assert torch.equal(mask[None], expected[None])
    assert mask.sum() == 8
    # a joint on a voxel centre marks that voxel only; one at the far corner stays inside the volume
    unit2 = torch.tensor([[[3 / 7, 1.0, 0.0], [1.0, 0.0, 1.0]]])
    mask2 = joint_voxel_mask(unit_to_grid(unit2, exponent=k), (D, H, W)).reshape(D, H, W)
    assert mask2.sum() == 2 and mask2[0, 5, 3] and mask2[3, 0, 7]


# ------------------------------------------------------------------------------------- end-to-end


def test_losses_reach_volume_and_joints_and_ignore_2d_samples():
    vol, pred, gt, valid, is_3d = _batch()
    cfg = LossConfig()
    out = joint_contrastive_losses(
        vol, pred, gt, valid, is_3d, torch.tensor(3.0), cfg, torch.Generator().manual_seed(0)
    )
    assert out.num_used.item() == 4
    (out.j2j + out.j2n).backward()
    assert torch.isfinite(vol.grad).all() and torch.isfinite(pred.grad).all()
    used = is_3d > 0
    assert vol.grad[used].abs().sum() > 0 and pred.grad[used].abs().sum() > 0
    assert vol.grad[~used].abs().sum() == 0 and pred.grad[~used].abs().sum() == 0


def test_no_3d_sample_gives_zero_without_error():
    vol, pred, gt, valid, _ = _batch()
    out = joint_contrastive_losses(vol, pred, gt, valid, torch.zeros(6), 3.0, LossConfig())
    assert out.j2j.item() == 0.0 and out.j2n.item() == 0.0
    (out.j2j + out.j2n).backward()
    assert vol.grad.abs().sum() == 0
    # no valid GT joint at all: J2J is 0, J2N still works
    out = joint_contrastive_losses(
        vol, pred, gt, torch.zeros(6, 15, dtype=torch.bool), torch.ones(6), 3.0, LossConfig()
    )
    assert out.j2j.item() == 0.0 and out.j2n.item() > 0.0


def test_generator_determinism_and_global_rng_untouched():
    vol, pred, gt, valid, is_3d = _batch()
    cfg = LossConfig()

    def run(seed):
        o = joint_contrastive_losses(
            vol, pred, gt, valid, is_3d, 3.0, cfg, torch.Generator().manual_seed(seed)
        )
        return o.j2j.item(), o.j2n.item()

    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, b, c = run(7), run(7), run(8)
    assert torch.equal(state, torch.get_rng_state())
    assert a == b
    assert a[0] != c[0] and a[1] != c[1]


def test_depth_warp_is_used_for_sampling():
    vol, pred, gt, valid, is_3d = _batch()
    cfg = LossConfig()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    k3 = joint_contrastive_losses(vol, pred, gt, valid, is_3d, 3.0, cfg, g())
    k1 = joint_contrastive_losses(vol, pred, gt, valid, is_3d, 1.0, cfg, g())
    assert k3.j2j.item() != pytest.approx(k1.j2j.item(), rel=1e-6)


def test_memory_bounded_saved_tensors_at_batch_8():
    """Everything autograd keeps for backward of J2J + J2N at batch 8 with the default sample counts stays
    within a few MB (the official paired-negative tensor alone is 12800 x 256 x 256 floats = 3.4 GB)."""
    g = torch.Generator().manual_seed(0)
    B = 8
    vol = torch.randn(B, 256, 8, 8, 8, generator=g, requires_grad=True)
    pred = torch.rand(B, 15, 3, generator=g, requires_grad=True)
    gt = torch.rand(B, 15, 3, generator=g)
    saved: dict[int, int] = {}

    def pack(t):
        saved[id(t)] = max(saved.get(id(t), 0), t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = joint_contrastive_losses(
            vol, pred, gt, torch.ones(B, 15, dtype=torch.bool), torch.ones(B), 3.0, LossConfig(), g
        )
    largest = max(saved.values())
    total = sum(saved.values())
    vol_bytes = vol.numel() * 4
    assert largest <= vol_bytes  # nothing bigger than the feature volume itself
    assert total < 4 * vol_bytes + (16 << 20), total  # < ~32 MB
    (out.j2j + out.j2n).backward()
