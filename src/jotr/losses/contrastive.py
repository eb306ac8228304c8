"""3D joint contrastive losses on the lifted feature volume: joint-to-joint (J2J) and joint-to-non-joint
(J2N).

Specification: jotr-reference §2 "Contrastive losses". Features are the 3D encoder's volume V
``(B, C, D, H, W)``, read with ``grid_sample(align_corners=True)`` and L2-normalised; similarity = cosine;
InfoNCE with temperature tau. Only samples with 3D annotation (``is_3d``) take part, after gathering every
rank's batch.

* **J2J**: anchors = predicted joints (any type); positives = features at the **GT** positions (or, as an
  option, the predicted positions) of the same joint type in the gathered batch, restricted to valid GT
  joints; negatives = predicted joints of the other types. Each (anchor, positive) pair is scored against the
  anchor's own negatives ("paired" negatives); mean over positives, then over anchors that have positives.
* **J2N**: anchors = predicted joints; positives = any other predicted joint; negatives = one shared set of
  random voxels, drawn away from the 8 voxels around every predicted joint of their sample.

Sampling follows the official rule: uniform, without replacement when the pool holds enough candidates, else
with replacement.

Implementation notes
--------------------
* Vectorised: samples are *indices* into small candidate sets (the ``B * J`` joints, the ``B * D * H * W``
  voxels), and the logits are gathered from ``A x (B*J)`` similarity matrices of normalised features (for J2N
  negatives, an ``A x N`` product). Paired-negative InfoNCE is
  ``logaddexp(s_ap / tau, logsumexp_n s_an / tau) - s_ap / tau``, so no ``(A * P, N, C)`` (official: 12800 x
  256 x 256) tensor is ever made.
* All randomness comes from one ``torch.Generator`` on the features' device; the number of random draws
  depends only on the shapes, never on the data, so every rank given the same generator state draws the same
  samples.
* No host synchronisation: ``is_3d`` filtering and "no valid anchor / positive" are masks, and a loss with
  nothing to average is 0 (with zero gradient).

Fixed with respect to the official code (jotr-reference §7, B7)
---------------------------------------------------------------
1. J2N exclusion of joint voxels: the official code maps grid coordinates to indices with ``(v + 1) * 4``,
   wrong for ``align_corners=True`` (the voxel centres are at ``(v + 1) / 2 * (size - 1)``), and writes its
   ``(D, H, W)`` mask at ``[x, y, z]`` (x and z swapped), so voxels at joints could be drawn as negatives.
   Here the indices come from :func:`jotr.geometry.coords.grid_to_voxel_index` in ``(d, h, w)`` order, and the
   floor/ceil corners are masked.
2. Depth warp: the official losses read the volume at linear depth ``2z - 1`` while the decoder reads it at
   ``2 z**k - 1``; here every point goes through :func:`jotr.geometry.coords.unit_to_grid` with the model's
   exponent k, so the losses read the features where the decoder reads them. (k is detached here: these losses
   shape the features and the predicted joints, as in the official code, not the warp.)
3. Works in a single process (the official ``AllGather`` needs torch.distributed), and the gather's backward
   is correct under DDP gradient averaging (:mod:`jotr.losses.gather`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from jotr.errors import InputError
from jotr.geometry.coords import grid_to_voxel_index, unit_to_grid
from jotr.losses.config import LossConfig
from jotr.losses.gather import all_gather_cat, distributed_world

# ------------------------------------------------------------------------------------------------ sampling


def sample_uniform(allowed: Tensor, num: int, generator: torch.Generator | None = None) -> Tensor:
    """Draw ``num`` column indices per row, uniformly over the allowed columns.

    ``allowed``: (R, M) bool. Returns (R, num) int64. A row with at least ``num`` allowed columns is sampled
    without replacement, otherwise with replacement (the official rule). Rows with no allowed column get
    arbitrary indices: callers mask them out. The random numbers drawn depend only on (R, M, num), never on
    ``allowed``.
    """
    R, M = allowed.shape
    count = allowed.sum(dim=1)  # (R,)
    pool = torch.where((count > 0)[:, None], allowed, torch.ones_like(allowed))  # empty rows: any column
    cdf = pool.to(torch.int64).cumsum(dim=1)  # (R, M) number of pool columns up to each column
    # with replacement: the k-th pool column for k uniform in [0, pool size), by inverse CDF
    u = torch.rand((R, num), generator=generator, device=allowed.device)
    size = cdf[:, -1:]  # (R, 1)
    k = torch.minimum((u * size.to(u.dtype)).floor().to(torch.int64), size - 1)  # (R, num) in [0, size)
    with_repl = torch.searchsorted(cdf, k, right=True)  # first column whose cdf exceeds k
    if num > M:
        return with_repl
    keys = torch.rand((R, M), generator=generator, device=allowed.device)  # random order; invalid -> -1
    keys = keys.masked_fill(~allowed, -1.0)
    # (R, num): distinct allowed columns whenever the row allows at least num
    without = keys.topk(num, dim=1, sorted=False).indices
    return torch.where((count >= num)[:, None], without, with_repl)


@dataclass
class J2JSamples:
    """Indices into the ``B * J`` joints of a batch (flat index ``b * J + j``)."""

    anchor: Tensor  # (A,) predicted joints
    positive: Tensor  # (A, P) positive candidates (GT or predicted positions), same joint type as the anchor
    negative: Tensor  # (A, N) predicted joints of other joint types
    valid: Tensor  # (A,) bool: anchor in a used sample, with >= 1 positive and >= 1 negative


@dataclass
class J2NSamples:
    anchor: Tensor  # (A,) predicted joints, flat index b * J + j
    positive: Tensor  # (A, P) other predicted joints, flat index b * J + j
    negative: Tensor  # (N,) voxels, flat index b * (D * H * W) + (d * H + h) * W + w
    valid: Tensor  # (A,) bool: anchor in a used sample, with >= 1 positive and >= 1 negative voxel


def sample_j2j(
    used: Tensor,
    gt_valid: Tensor,
    *,
    num_anchors: int,
    num_positives: int,
    num_negatives: int,
    positive_source: str = "gt",
    generator: torch.Generator | None = None,
) -> J2JSamples:
    """Draw J2J samples. ``used``: (B,) bool samples taking part; ``gt_valid``: (B, J) bool valid GT joints.

    GT positives need a valid GT joint; predicted positives (``positive_source="pred"``) exclude the anchor
    itself.
    """
    B, J = gt_valid.shape
    M = B * J
    device = gt_valid.device
    flat = torch.arange(M, device=device)
    joint_type = flat % J  # (M,)
    used_flat = used[:, None].expand(B, J).reshape(M)  # (M,)
    anchor = sample_uniform(used_flat[None], num_anchors, generator)[0]  # (A,)
    same_type = joint_type[None, :] == (anchor % J)[:, None]  # (A, M)
    if positive_source == "gt":
        pos_allowed = same_type & (used[:, None] & gt_valid).reshape(1, M)
    elif positive_source == "pred":
        pos_allowed = same_type & used_flat[None] & (flat[None, :] != anchor[:, None])
    else:
        raise InputError(f"j2j positive_source must be 'gt' or 'pred', got {positive_source!r}")
    neg_allowed = ~same_type & used_flat[None]
    positive = sample_uniform(pos_allowed, num_positives, generator)  # (A, P)
    negative = sample_uniform(neg_allowed, num_negatives, generator)  # (A, N)
    valid = used_flat[anchor] & pos_allowed.any(dim=1) & neg_allowed.any(dim=1)
    return J2JSamples(anchor=anchor, positive=positive, negative=negative, valid=valid)


def joint_voxel_mask(joints_grid: Tensor, size_dhw: tuple[int, int, int]) -> Tensor:
    """(B, J, 3) grid (x, y, z) points -> (B, D * H * W) bool, True at the floor/ceil voxels around each
    point.

    Voxel centres follow ``align_corners=True`` (:func:`grid_to_voxel_index`); each axis takes the floor and
    the ceil of the continuous index, clamped to the volume, so up to 8 voxels per joint are marked (fewer
    when an index is integral). Flat voxel index = ``(d * H + h) * W + w``, the order of
    ``volume.flatten(2)``.
    """
    D, H, W = size_dhw
    B = joints_grid.shape[0]
    idx = grid_to_voxel_index(joints_grid.detach(), size_dhw)  # (B, J, 3) continuous (d, h, w)
    corner = torch.arange(8, device=idx.device)
    bits = torch.stack([corner // 4 % 2, corner // 2 % 2, corner % 2], dim=-1).bool()  # (8, 3): floor or ceil
    lo, hi = idx.floor().to(torch.int64), idx.ceil().to(torch.int64)
    c = torch.where(bits, hi[..., None, :], lo[..., None, :])  # (B, J, 8, 3)
    d, h, w = c[..., 0].clamp(0, D - 1), c[..., 1].clamp(0, H - 1), c[..., 2].clamp(0, W - 1)
    flat = ((d * H + h) * W + w).reshape(B, -1)  # (B, J * 8)
    mask = torch.zeros(B, D * H * W, dtype=torch.bool, device=idx.device)
    return mask.scatter(1, flat, True)


def sample_j2n(
    used: Tensor,
    excluded: Tensor,
    num_joints: int,
    *,
    num_anchors: int,
    num_positives: int,
    num_negatives: int,
    generator: torch.Generator | None = None,
) -> J2NSamples:
    """Draw J2N samples. ``used``: (B,) bool; ``excluded``: (B, D*H*W) bool voxels that may not be
    negatives."""
    B = used.shape[0]
    J = num_joints
    M = B * J
    flat = torch.arange(M, device=used.device)
    used_flat = used[:, None].expand(B, J).reshape(M)
    anchor = sample_uniform(used_flat[None], num_anchors, generator)[0]  # (A,)
    pos_allowed = used_flat[None] & (flat[None, :] != anchor[:, None])  # (A, M)
    positive = sample_uniform(pos_allowed, num_positives, generator)  # (A, P)
    neg_allowed = (used[:, None] & ~excluded).reshape(1, -1)  # (1, B * DHW)
    negative = sample_uniform(neg_allowed, num_negatives, generator)[0]  # (N,)
    valid = used_flat[anchor] & pos_allowed.any(dim=1) & neg_allowed.any()
    return J2NSamples(anchor=anchor, positive=positive, negative=negative, valid=valid)


# ------------------------------------------------------------------------------------------------ losses


def sample_volume(volume: Tensor, points_grid: Tensor) -> Tensor:
    """(B, C, D, H, W) volume, (B, K, 3) grid points (x, y, z) -> (B, K, C) trilinear features
    (align_corners)."""
    out = F.grid_sample(volume, points_grid[:, :, None, None, :], mode="bilinear", align_corners=True)
    return out[:, :, :, 0, 0].transpose(1, 2)  # (B, K, C)


def info_nce(s_pos: Tensor, s_neg: Tensor, temperature: float) -> Tensor:
    """(A, P) positive and (A, N) negative cosine similarities -> (A, P) InfoNCE losses.

    Each (a, p) pair: ``-log(exp(s_ap/t) / (exp(s_ap/t) + sum_n exp(s_an/t)))``; the negatives of anchor a are
    shared by all its positives (the official 'paired' mode with one negative set per anchor).
    """
    lp = s_pos / temperature
    ln = torch.logsumexp(s_neg / temperature, dim=1, keepdim=True)  # (A, 1)
    return torch.logaddexp(lp, ln) - lp


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of values[mask]; 0 (with zero gradient) when the mask is empty. No host sync."""
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp(min=1).to(values.dtype)


def j2j_loss(f_pred: Tensor, f_pos: Tensor, samples: J2JSamples, temperature: float) -> Tensor:
    """Joint-to-joint InfoNCE from (B, J, C) features at the predicted joints and at the positive candidates
    (GT joints, or the predicted joints again). Returns a scalar."""
    fp = F.normalize(f_pred.flatten(0, 1), dim=-1)  # (B*J, C)
    fq = fp if f_pos is f_pred else F.normalize(f_pos.flatten(0, 1), dim=-1)  # (B*J, C)
    a = fp[samples.anchor]  # (A, C)
    s_pos = (a @ fq.T).gather(1, samples.positive)  # (A, P)
    s_neg = (a @ fp.T).gather(1, samples.negative)  # (A, N)
    per_anchor = info_nce(s_pos, s_neg, temperature).mean(dim=1)  # (A,)
    return _masked_mean(per_anchor, samples.valid)


def j2n_loss(f_pred: Tensor, volume: Tensor, samples: J2NSamples, temperature: float) -> Tensor:
    """Joint-to-non-joint InfoNCE from (B, J, C) features at the predicted joints and the (B, C, D, H, W)
    volume (negative voxels). Returns a scalar."""
    fp = F.normalize(f_pred.flatten(0, 1), dim=-1)  # (B*J, C)
    a = fp[samples.anchor]  # (A, C)
    s_pos = (a @ fp.T).gather(1, samples.positive)  # (A, P)
    flat = volume.flatten(2)  # (B, C, D*H*W)
    n_vox = flat.shape[2]
    neg = F.normalize(flat[samples.negative // n_vox, :, samples.negative % n_vox], dim=-1)  # (N, C)
    s_neg = a @ neg.T  # (A, N)
    per_anchor = info_nce(s_pos, s_neg, temperature).mean(dim=1)  # (A,)
    return _masked_mean(per_anchor, samples.valid)


# ------------------------------------------------------------------------------------------------ entry point


@dataclass
class ContrastiveOutput:
    j2j: Tensor  # () scalar J2J loss (0 when no sample of the gathered batch has 3D annotation)
    j2n: Tensor  # () scalar J2N loss (idem)
    num_used: Tensor  # () number of samples of the gathered batch that took part (is_3d)


def _gather_inputs(
    volume: Tensor, pred_unit: Tensor, gt_unit: Tensor, gt_valid: Tensor, is_3d: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """All-gather the per-sample inputs in one collective (identity in a single process)."""
    _, world = distributed_world()
    if world == 1:
        return volume, pred_unit, gt_unit, gt_valid, is_3d
    B, C, D, H, W = volume.shape
    J = pred_unit.shape[1]
    packed = torch.cat(
        [
            volume.reshape(B, -1),
            pred_unit.reshape(B, -1),
            gt_unit.reshape(B, -1),
            gt_valid.to(volume.dtype).reshape(B, -1),
            is_3d.to(volume.dtype).reshape(B, 1),
        ],
        dim=1,
    )
    g = all_gather_cat(packed)  # (B_total, K)
    Bt = g.shape[0]
    sizes = [C * D * H * W, J * 3, J * 3, J, 1]
    vol, pred, gt, valid, flag = torch.split(g, sizes, dim=1)
    return (
        vol.reshape(Bt, C, D, H, W),
        pred.reshape(Bt, J, 3),
        gt.reshape(Bt, J, 3),
        valid.reshape(Bt, J) > 0.5,
        flag.reshape(Bt) > 0.5,
    )


def joint_contrastive_losses(
    volume: Tensor,
    joints_pred_unit: Tensor,
    joints_gt_unit: Tensor,
    joints_gt_valid: Tensor,
    is_3d: Tensor,
    exponent: Tensor | float,
    cfg: LossConfig,
    generator: torch.Generator | None = None,
) -> ContrastiveOutput:
    """J2J and J2N losses of a batch (gathered over ranks when torch.distributed runs with several processes).

    Args:
        volume: (B, C, D, H, W) feature volume of the 3D encoder.
        joints_pred_unit: (B, J, 3) predicted joints (final decoder layer), unit cube.
        joints_gt_unit: (B, J, 3) GT joints of the same set, unit cube (z = root-relative depth).
        joints_gt_valid: (B, J) bool/float, 1 = GT joint usable (annotated and inside the crop).
        is_3d: (B,) bool/float, 1 = sample has 3D annotation; only these samples take part.
        exponent: the decoder's depth-warp exponent k (detached here).
        cfg: sample counts, temperature and J2J positive source.
        generator: torch.Generator on ``volume``'s device (None = torch's default generator). Under DDP pass
            generators in the same state on every rank to draw the same samples (see jotr.losses.gather).
    """
    if volume.dim() != 5:
        raise InputError(f"feat_volume must be (B, C, D, H, W), got {tuple(volume.shape)}")
    B = volume.shape[0]
    if joints_pred_unit.dim() != 3 or joints_pred_unit.shape[0] != B or joints_pred_unit.shape[2] != 3:
        raise InputError(f"predicted joints must be ({B}, J, 3), got {tuple(joints_pred_unit.shape)}")
    J = joints_pred_unit.shape[1]
    if joints_gt_unit.shape != (B, J, 3) or joints_gt_valid.shape != (B, J) or is_3d.shape != (B,):
        raise InputError(
            f"contrastive targets must be GT joints ({B}, {J}, 3), validity ({B}, {J}) and is_3d ({B},); got "
            f"{tuple(joints_gt_unit.shape)}, {tuple(joints_gt_valid.shape)}, {tuple(is_3d.shape)}"
        )
    if generator is not None and torch.device(generator.device) != volume.device:
        raise InputError(f"contrastive generator is on {generator.device}, features on {volume.device}")

    with torch.autocast(device_type=volume.device.type, enabled=False):
        volume32 = volume.float()
        vol, pred, gt, gt_ok, used = _gather_inputs(
            volume32, joints_pred_unit.float(), joints_gt_unit.float(), joints_gt_valid > 0.5, is_3d > 0.5
        )
        D, H, W = vol.shape[2:]
        k = exponent.detach().float() if isinstance(exponent, Tensor) else exponent
        pred_grid = unit_to_grid(pred, exponent=k)  # (Bt, J, 3) same warp as the decoder
        gt_grid = unit_to_grid(gt, exponent=k)

        # one trilinear read for every joint point (predicted, and GT when they are the J2J positives)
        if cfg.j2j_positive_source == "gt":
            feats = sample_volume(vol, torch.cat([pred_grid, gt_grid], dim=1))  # (Bt, 2J, C)
            f_pred, f_pos = feats[:, :J], feats[:, J:]
        elif cfg.j2j_positive_source == "pred":
            f_pred = f_pos = sample_volume(vol, pred_grid)  # (Bt, J, C)
        else:
            raise InputError(
                f"loss.j2j_positive_source must be 'gt' or 'pred', got {cfg.j2j_positive_source!r}"
            )
        s_j2j = sample_j2j(
            used,
            gt_ok,
            num_anchors=cfg.j2j_anchors,
            num_positives=cfg.j2j_positives,
            num_negatives=cfg.j2j_negatives,
            positive_source=cfg.j2j_positive_source,
            generator=generator,
        )
        j2j = j2j_loss(f_pred, f_pos, s_j2j, cfg.temperature)

        excluded = joint_voxel_mask(pred_grid, (D, H, W))  # (Bt, D*H*W)
        s_j2n = sample_j2n(
            used,
            excluded,
            J,
            num_anchors=cfg.j2n_anchors,
            num_positives=cfg.j2n_positives,
            num_negatives=cfg.j2n_negatives,
            generator=generator,
        )
        j2n = j2n_loss(f_pred, vol, s_j2n, cfg.temperature)
    return ContrastiveOutput(j2j=j2j, j2n=j2n, num_used=used.sum())
