"""The training criterion: regression terms, learned weights, contrastive terms -> :class:`LossOutput`.

``total = sum(weighted.values())`` where ``weighted`` holds each regression term times its learned weight, one
``reg_<group>`` regulariser per learned weight (:mod:`jotr.losses.weighting`) and, when
``cfg.use_contrastive``, ``j2j_weight * j2j`` and ``j2n_weight * j2n`` (fixed weights). All losses use the
final decoder layer only.

Under DDP the regression terms are per-rank means (DDP averages them); the contrastive terms are computed on
the batch gathered over ranks (:mod:`jotr.losses.gather`): give every rank a generator in the same state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from jotr.body.base import BodyModel
from jotr.errors import InputError
from jotr.geometry.coords import hm_to_unit
from jotr.losses import regression as R
from jotr.losses.config import LossConfig
from jotr.losses.contrastive import joint_contrastive_losses
from jotr.losses.weighting import UncertaintyWeighting
from jotr.models.config import ModelConfig
from jotr.structures import JOTROutput, Targets

logger = logging.getLogger(__name__)

REGRESSION_TERMS = ("joint_img", "fit_joint_img", "pose", "shape", "joint_proj", "joint_cam")
CONTRASTIVE_TERMS = ("j2j", "j2n")


@dataclass
class LossOutput:
    total: Tensor  # () scalar to back-propagate
    terms: dict[str, Tensor]  # () each, unweighted terms (REGRESSION_TERMS, + CONTRASTIVE_TERMS when enabled)
    weighted: dict[
        str, Tensor
    ]  # () each, contributions to total (weighted terms + reg_<group>); they sum to total
    weights: dict[str, Tensor]  # () each, detached effective multiplier of each term


class Criterion(nn.Module):
    """Holds the learned loss weights. ``forward(out, targets, generator) -> LossOutput``."""

    def __init__(self, cfg: LossConfig, body: BodyModel, model_cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.heatmap_size = model_cfg.heatmap_size
        self.num_query_joints = model_cfg.num_query_joints
        self.num_input_joints = model_cfg.num_input_joints
        self.num_pose_joints = body.num_pose_joints
        self.num_shape = body.num_shape
        mask = body.pose_supervision_mask().float()
        if mask.shape != (body.num_pose_joints,):
            raise InputError(f"{body.name}: pose_supervision_mask must be ({body.num_pose_joints},)")
        self.register_buffer("pose_mask", mask, persistent=False)  # (J,)
        self.weighting = UncertaintyWeighting(cfg.weighting, REGRESSION_TERMS)

    def weight_parameters(self) -> list[nn.Parameter]:
        """The learned loss weights: put them in an optimiser group with ``weight_decay=0``."""
        return list(self.weighting.parameters())

    def _check(self, out: JOTROutput, t: Targets) -> None:
        B = out.joints_cam.shape[0]
        Jq, Ji = self.num_query_joints, self.num_input_joints
        expect = {
            "out.joints_unit": (out.joints_unit.shape[1:], (B, Jq, 3)),
            "out.pose_rotmat": (out.pose_rotmat.shape, (B, self.num_pose_joints, 3, 3)),
            "out.shape": (out.shape.shape, (B, self.num_shape)),
            "out.joints_cam": (out.joints_cam.shape, (B, Ji, 3)),
            "out.joints_proj_hm": (out.joints_proj_hm.shape, (B, Ji, 2)),
            "targets.joints_hm": (t.joints_hm.shape, (B, Ji, 3)),
            "targets.joints_trunc": (t.joints_trunc.shape, (B, Ji)),
            "targets.joints_cam": (t.joints_cam.shape, (B, Ji, 3)),
            "targets.joints_valid": (t.joints_valid.shape, (B, Ji)),
            "targets.is_3d": (t.is_3d.shape, (B,)),
            "targets.fit_joints_hm": (t.fit_joints_hm.shape, (B, Ji, 3)),
            "targets.fit_joints_trunc": (t.fit_joints_trunc.shape, (B, Ji)),
            "targets.pose_aa": (t.pose_aa.shape, (B, self.num_pose_joints, 3)),
            "targets.shape": (t.shape.shape, (B, self.num_shape)),
            "targets.has_fit": (t.has_fit.shape, (B,)),
        }
        for name, (got, want) in expect.items():
            if tuple(got) != tuple(want):
                raise InputError(f"criterion: {name} must have shape {tuple(want)}, got {tuple(got)}")

    def forward(
        self, out: JOTROutput, targets: Targets, generator: torch.Generator | None = None
    ) -> LossOutput:
        self._check(out, targets)
        t = targets
        hm = self.heatmap_size
        joints = out.joints_final_unit  # (B, 15, 3) unit cube
        gt_ok = t.joints_trunc * t.joints_valid  # (B, 30) annotated and inside the crop
        cfg = self.cfg
        pose_fn = R.pose_rotmat_loss if cfg.pose_loss == "rotmat" else R.pose_loss
        terms: dict[str, Tensor] = {
            "joint_img": R.joint_img_loss(joints, t.joints_hm, gt_ok, t.is_3d, hm),
            "fit_joint_img": R.joint_img_loss(
                joints, t.fit_joints_hm, t.fit_joints_trunc * t.has_fit[:, None], None, hm
            ),
            "pose": pose_fn(out.pose_rotmat, t.pose_aa, t.has_fit, self.pose_mask),
            "shape": R.shape_loss(out.shape, t.shape, t.has_fit),
            "joint_proj": R.joint_proj_loss(out.joints_proj_hm, t.joints_hm, gt_ok, hm),
            "joint_cam": R.joint_cam_loss(
                out.joints_cam, t.joints_cam, t.joints_valid, t.is_3d, cfg.joint_cam_scale
            ),
        }
        # Fixed multipliers (loss.<term>_weight, 1 = the paper) go in before the learned weighting; the
        # logged ``terms`` stay unscaled. A term with multiplier 0 is left out of the total.
        scaled = {k: v * getattr(cfg, f"{k}_weight") for k, v in terms.items()}
        weighted, weights = self.weighting(scaled)
        for k in terms:
            weights[k] = weights[k] * getattr(cfg, f"{k}_weight")

        if self.cfg.use_contrastive:
            c = joint_contrastive_losses(
                out.feat_volume,
                joints,
                hm_to_unit(R.reduce_to_15(t.joints_hm), hm),
                R.reduce_to_15(gt_ok) > 0,
                t.is_3d,
                out.depth_exponent,
                self.cfg,
                generator,
            )
            for name, value, w in (("j2j", c.j2j, self.cfg.j2j_weight), ("j2n", c.j2n, self.cfg.j2n_weight)):
                terms[name] = value
                weights[name] = value.new_full((), w)
                weighted[name] = w * value

        total = torch.stack([v.to(torch.float32) for v in weighted.values()]).sum()
        return LossOutput(total=total, terms=terms, weighted=weighted, weights=weights)


def first_non_finite(loss: LossOutput) -> str | None:
    """``"<entry> = <value>"`` for the first non-finite entry (``terms.<name>``, ``weighted.<name>``,
    ``total``), or None when all are finite.

    One host synchronisation; meant for the trainer, after the forward pass.
    """
    named = [(f"terms.{k}", v) for k, v in loss.terms.items()]
    named += [(f"weighted.{k}", v) for k, v in loss.weighted.items()]
    named.append(("total", loss.total))
    values = torch.stack([v.detach().to(torch.float32).reshape(()) for _, v in named])
    bad = ~torch.isfinite(values)
    if not bool(bad.any()):
        return None
    i = int(bad.nonzero()[0, 0])
    return f"{named[i][0]} = {float(values[i])}"
