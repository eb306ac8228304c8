"""Ablation variants of JOTR in the same framework (issue #10): same inputs, same body model, same heads'
outputs, same :class:`~jotr.structures.JOTROutput`, so the criterion, trainer and evaluator work unchanged.

* :class:`JOTR2DOnly` -- JOTR without the 3D branch: no lifted volume, no 3D encoder, no joint sampling. The
  coarse-to-fine decoder attends to the 2D encoder's tokens in every layer; its joint tokens still predict
  the 15 query joints layer by layer (their supervision is unchanged).
* :class:`KeypointLifter` -- the keypoint-only baseline of issue 14 (Martinez et al. 2017 style): an MLP on
  the normalised input 2D keypoints (no image) -> the same body parameters, camera and 15 query joints.
* :class:`AvgFeatReg` -- an HMR-style baseline: globally averaged backbone features (after the same Pose2Feat
  early fusion of the 2D pose) -> an MLP with iterative error feedback that regresses the same body
  parameters, the camera and the 15 query joints (the joints only feed the joint-image loss).

Neither variant has a feature volume, so the contrastive losses cannot be used with them
(:func:`build_variant` refuses). ``feat_volume`` is an empty ``(B, 0, D, h, w)`` tensor and ``depth_exponent``
a constant 1.

:func:`build_variant` builds any of the three architectures by name (``"jotr"`` = the full network).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Literal

import torch
from einops import rearrange
from torch import Tensor, nn

from jotr.body.base import BodyModel, rest_pose_rotmat
from jotr.errors import InputError
from jotr.geometry.rotations import rot6d_to_rotmat, rotmat_to_rot6d
from jotr.models.config import ModelConfig
from jotr.models.jotr import JOTR, ParameterPrediction, drop_joints, normalised_keypoints
from jotr.structures import Inputs

logger = logging.getLogger(__name__)

Architecture = Literal["jotr", "jotr_2d_only", "avgfeat", "keypoint_lifter"]
ARCHITECTURES: tuple[str, ...] = ("jotr", "jotr_2d_only", "avgfeat", "keypoint_lifter")

# JOTR submodules / parameters / buffers that a variant does not use (removed after construction).
_THREE_D_PARTS = ("lift", "lift_coord", "encoder_3d", "depth_exponent", "pos_3d")
_TRANSFORMER_PARTS = (
    "input_proj",
    "encoder_2d",
    "decoder",
    "root_pose_head",
    "pose_head",
    "shape_head",
    "cam_head",
    "pos_2d",
)


def _remove(module: nn.Module, names: tuple[str, ...]) -> None:
    for name in names:
        delattr(module, name)


class _VariantBase(JOTR):
    """Shared helper of the variants: the body-parameter assembly (features: ``JOTRNetwork._features``)."""

    def __init__(self, cfg: ModelConfig, body: BodyModel, *, pretrained: bool = True) -> None:
        if cfg.pose_head != "rot6d":
            raise InputError(
                f"the ablation variants support model.pose_head='rot6d' only, got {cfg.pose_head!r}"
            )
        super().__init__(cfg, body, pretrained=pretrained)

    def _assemble(
        self, root6d: Tensor, pose6d: Tensor, shape: Tensor, cam: Tensor, joints_unit: Tensor
    ) -> ParameterPrediction:
        """Raw regressions -> :class:`ParameterPrediction`. (B, 6), (B, 6 (J-1)), (B, S), (B, 3),
        (L, B, 15, 3) unit cube."""
        B = root6d.shape[0]
        root = rot6d_to_rotmat(root6d)[:, None]  # (B, 1, 3, 3)
        body = rot6d_to_rotmat(pose6d.reshape(B, self.num_pose_joints - 1, 6))  # (B, J-1, 3, 3)
        if self.shape_bounds is not None:
            lo, hi = self.shape_bounds
            shape = lo + (hi - lo) * torch.sigmoid(shape)
        n, D = self.feat_size, self.cfg.volume_depth
        return ParameterPrediction(
            joints_unit=joints_unit,
            pose_rotmat=torch.cat([root, body], dim=1),
            shape=shape,
            cam=cam,
            cam_t=self.camera.translation(cam),
            feat_volume=root6d.new_zeros(B, 0, D, n, n),  # no volume in this variant
            depth_exponent=root6d.new_ones(()),  # no depth warp in this variant
            pose_latent=None,
        )


class JOTR2DOnly(_VariantBase):
    """JOTR without the 3D branch (variant 5 of the ablation): the decoder attends to 2D tokens only."""

    def __init__(self, cfg: ModelConfig, body: BodyModel, *, pretrained: bool = True) -> None:
        super().__init__(cfg, body, pretrained=pretrained)
        _remove(self, _THREE_D_PARTS)
        _remove(self.decoder, ("sample_pos",))

    def predict(self, inputs: Inputs, generator: torch.Generator | None = None) -> ParameterPrediction:
        feat, _ = self._features(inputs, generator)
        tokens_2d = rearrange(self.input_proj(feat), "b c h w -> b (h w) c")  # (B, h*w, C)
        pos_2d = self.pos_2d.to(tokens_2d.dtype)
        memory = self.encoder_2d(tokens_2d, pos_2d)
        body_tokens, joints_unit = self.decoder(memory, pos_2d, None, None)  # (L, B, 3, C), (L, B, 15, 3)
        with torch.autocast(device_type=inputs.image.device.type, enabled=False):
            body_tokens = body_tokens.float()
            return self._assemble(
                self.root_pose_head(body_tokens[:, :, 0]),
                self.pose_head(body_tokens[:, :, 0]),
                self.shape_head(body_tokens[:, :, 1]),
                self.cam_head(body_tokens[:, :, 2]),
                joints_unit,
            )


class AvgFeatReg(_VariantBase):
    """HMR-style regression from globally averaged backbone features (variant 6 of the ablation).

    ``theta = [root 6D, body 6D per joint, shape logits, camera, 15 joint logits]`` starts at a constant
    (identity rotations, zeros elsewhere) and is refined ``iterations`` times by
    ``theta += MLP([f, theta])`` (HMR's iterative error feedback; MLP = Linear-ReLU-Dropout x2 -> Linear).
    The joint logits pass through a sigmoid into the unit cube (one "layer" of joints_unit).
    """

    def __init__(
        self,
        cfg: ModelConfig,
        body: BodyModel,
        *,
        pretrained: bool = True,
        hidden: int = 1024,
        iterations: int = 3,
    ) -> None:
        super().__init__(cfg, body, pretrained=pretrained)
        _remove(self, _THREE_D_PARTS + _TRANSFORMER_PARTS)
        if iterations < 1:
            raise InputError(f"AvgFeatReg: iterations must be >= 1, got {iterations}")
        self.iterations = iterations
        J, S, Q = self.num_pose_joints, self.num_shape, cfg.num_query_joints
        self.splits = (6, 6 * (J - 1), S, 3, 3 * Q)  # root, body, shape, camera, joints
        dim = sum(self.splits)
        c_feat = self.backbone.out_channels
        self.regressor = nn.Sequential(
            nn.Linear(c_feat + dim, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout),
            nn.Linear(hidden, dim),
        )
        nn.init.xavier_uniform_(self.regressor[-1].weight, gain=0.01)  # HMR: small initial updates
        nn.init.zeros_(self.regressor[-1].bias)
        init = torch.zeros(dim)  # HMR's mean parameters: rest pose facing the camera, zero shape and camera
        init[: 6 * J] = rotmat_to_rot6d(rest_pose_rotmat(J)).reshape(-1)
        self.register_buffer("theta_init", init, persistent=False)  # (dim,) constant

    def predict(self, inputs: Inputs, generator: torch.Generator | None = None) -> ParameterPrediction:
        feat = self._features(inputs, generator)[0].mean(dim=(2, 3))  # (B, C_backbone) global average
        with torch.autocast(device_type=inputs.image.device.type, enabled=False):
            feat = feat.float()
            theta = self.theta_init.expand(feat.shape[0], -1)
            for _ in range(self.iterations):
                theta = theta + self.regressor(torch.cat([feat, theta], dim=-1))
            root6d, pose6d, shape, cam, joint_logits = torch.split(theta, self.splits, dim=-1)
            joints_unit = torch.sigmoid(joint_logits.reshape(-1, self.cfg.num_query_joints, 3))[None]
            return self._assemble(root6d, pose6d, shape, cam, joints_unit)


class _ResidualBlock(nn.Module):
    """Martinez et al. 2017: x + (Linear-BN-ReLU-Dropout) x2."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, dim),
            nn.BatchNorm1d(dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(dim, dim),
            nn.BatchNorm1d(dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class KeypointLifter(_VariantBase):
    """Keypoint-only lifting baseline: the 30 input keypoints (crop coordinates in [-1, 1] and validity, the
    same normalisation as JOTR's keypoint pathway) -> Linear -> ``blocks`` residual blocks -> Linear ->
    ``theta = [root 6D, body 6D per joint, shape logits, camera, 15 joint logits]`` added to the rest-pose
    parameters. Sees no image; trains and evaluates through the same criterion, trainer and evaluator.

    Training-time joint dropping (``model.joint_mask_prob``) applies as in JOTR.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        body: BodyModel,
        *,
        pretrained: bool = True,
        hidden: int = 1024,
        blocks: int = 2,
        dropout: float = 0.25,
    ) -> None:
        super().__init__(cfg, body, pretrained=False)
        _remove(self, _THREE_D_PARTS + _TRANSFORMER_PARTS + ("backbone", "pose2feat", "keypoint_encoder"))
        J, S, Q = self.num_pose_joints, self.num_shape, cfg.num_query_joints
        self.splits = (6, 6 * (J - 1), S, 3, 3 * Q)  # root, body, shape, camera, joints
        dim = sum(self.splits)
        self.net = nn.Sequential(
            nn.Linear(3 * cfg.num_input_joints, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            *[_ResidualBlock(hidden, dropout) for _ in range(blocks)],
            nn.Linear(hidden, dim),
        )
        nn.init.xavier_uniform_(self.net[-1].weight, gain=0.01)  # start at the rest pose
        nn.init.zeros_(self.net[-1].bias)
        init = torch.zeros(dim)
        init[: 6 * J] = rotmat_to_rot6d(rest_pose_rotmat(J)).reshape(-1)
        self.register_buffer("theta_init", init, persistent=False)  # (dim,) constant

    def predict(self, inputs: Inputs, generator: torch.Generator | None = None) -> ParameterPrediction:
        self.check_inputs(inputs)
        valid = inputs.keypoints_valid.float()
        if self.training:
            valid = drop_joints(valid, self.cfg.joint_mask_prob, generator)
        kp = normalised_keypoints(inputs.keypoints_hm.float(), valid, self.cfg.heatmap_size)  # (B, 30, 3)
        with torch.autocast(device_type=inputs.image.device.type, enabled=False):
            theta = self.theta_init + self.net(kp.flatten(1))
            root6d, pose6d, shape, cam, joint_logits = torch.split(theta, self.splits, dim=-1)
            joints_unit = torch.sigmoid(joint_logits.reshape(-1, self.cfg.num_query_joints, 3))[None]
            return self._assemble(root6d, pose6d, shape, cam, joints_unit)


def build_variant(
    architecture: str,
    cfg,
    *,
    body: BodyModel | None = None,
    pretrained: bool = True,
) -> JOTR:
    """The network of ``architecture`` (``"jotr"``, ``"jotr_2d_only"``, ``"avgfeat"``) for the full config
    ``cfg`` (a :class:`jotr.config.JOTRConfig`), with ``body`` or the body model of ``cfg.body``."""
    if architecture not in ARCHITECTURES:
        raise InputError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    if architecture != "jotr" and cfg.loss.use_contrastive:
        raise InputError(
            f"architecture {architecture!r} has no 3D feature volume: the contrastive losses "
            "(loss.use_contrastive) need the full JOTR network"
        )
    if body is None:
        from jotr.body import build_body_model

        body = build_body_model(cfg.body)
    if cfg.model.architecture != architecture:  # the stored config names the network it describes
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, architecture=architecture))
    if architecture == "jotr":
        return JOTR(cfg.model, body, pretrained=pretrained)
    cls = {"jotr_2d_only": JOTR2DOnly, "avgfeat": AvgFeatReg, "keypoint_lifter": KeypointLifter}[architecture]
    return cls(cfg.model, body, pretrained=pretrained)


__all__ = ["ARCHITECTURES", "AvgFeatReg", "JOTR2DOnly", "KeypointLifter", "build_variant"]
