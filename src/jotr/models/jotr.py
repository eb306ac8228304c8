"""The JOTR network (jotr-reference §1): Pose2Feat early fusion, 2D encoder, lifted 3D volume + 3D encoder,
coarse-to-fine decoder with 3 body tokens and 15 joint tokens, cascade regression heads, body model.

Two classes:

* :class:`JOTRNetwork` -- every learnable part; needs only the body model's *layout* (pose joints, shape size,
  shape bounds). Its state dict is the checkpoint. The official-checkpoint converter builds it without a body.
* :class:`JOTR` -- the network plus a :class:`jotr.body.BodyModel` (non-persistent buffers, so the state-dict
keys
  are the same); ``forward(Inputs) -> JOTROutput`` in train and eval mode alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from jotr.body.base import BodyModel, rest_pose_rotmat
from jotr.body.joint_sets import SMPL24
from jotr.errors import InputError
from jotr.geometry.camera import VirtualCamera
from jotr.geometry.coords import hm_to_unit, inverse_sigmoid, px_to_hm, unit_to_grid
from jotr.geometry.rotations import rot6d_to_rotmat, rotmat_to_rot6d
from jotr.models.config import ModelConfig
from jotr.models.efficientnet import EfficientNetLite, load_efficientnet_weights
from jotr.models.pose_backbone import MoveNetBackbone, load_pose_backbone_weights
from jotr.models.resnet import (
    STEM_CHANNELS,
    ResNet,
    clear_folded_cache,
    conv_bn,
    load_backbone_weights,
)
from jotr.models.transformer import (
    DecoderLayer,
    Encoder,
    autocast_param,
    sine_position_encoding_2d,
    sinusoid_table_1d,
)
from jotr.models.vposer import VPOSER_JOINTS, VPOSER_LATENT, VPoserV1, load_vposer_weights
from jotr.structures import Inputs, JOTROutput

logger = logging.getLogger(__name__)

NUM_BODY_TOKENS = 3  # pose, shape, camera
PELVIS = 0  # index of the pelvis in the jotr30 joint set


# ------------------------------------------------------------------------------------------- heatmaps


def render_heatmaps(keypoints_hm: Tensor, valid: Tensor, size: int, sigma: float) -> Tensor:
    """Gaussian joint heatmaps on the heatmap grid, multiplied by validity.

    (B, J, 2) keypoints in heatmap cells, (B, J) validity -> (B, J, size, size). The Gaussian of cell (x, y)
    is
    ``exp(-((x - u)^2 + (y - v)^2) / (2 sigma^2))`` with cells at integer coordinates, built separably.
    """
    keep = (valid > 0) & torch.isfinite(keypoints_hm).all(dim=-1)  # non-finite keypoints count as missing
    kp = torch.where(keep[..., None], keypoints_hm, torch.zeros_like(keypoints_hm))
    grid = torch.arange(size, device=kp.device, dtype=kp.dtype)
    scale = -0.5 / (sigma * sigma)
    gx = torch.exp(scale * (grid - kp[..., 0:1]) ** 2)  # (B, J, W)
    gy = torch.exp(scale * (grid - kp[..., 1:2]) ** 2)  # (B, J, H)
    gy = gy * (valid * keep).to(kp.dtype)[..., None]
    return gy[..., :, None] * gx[..., None, :]


def drop_joints(valid: Tensor, prob: float, generator: torch.Generator | None) -> Tensor:
    """Zero each joint's validity with probability ``prob`` (training-time input augmentation)."""
    if prob <= 0:
        return valid
    draw = torch.rand(valid.shape, generator=generator, device=valid.device, dtype=torch.float32)
    return valid * (draw >= prob).to(valid.dtype)


# ------------------------------------------------------------------------------------------ modules


class Pose2Feat(nn.Module):
    """Early fusion: concat stem features and joint heatmaps -> Conv3x3 -> BN -> ReLU (3DCrowdNet)."""

    def __init__(
        self, in_channels: int, num_joints: int, out_channels: int = STEM_CHANNELS, channels_last: bool = True
    ) -> None:
        super().__init__()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.conv = nn.Conv2d(in_channels + num_joints, out_channels, 3, 1, 1)
        self.bn = nn.BatchNorm2d(out_channels)
        nn.init.normal_(self.conv.weight, std=0.001)
        nn.init.zeros_(self.conv.bias)

    def train(self, mode: bool = True) -> Pose2Feat:
        clear_folded_cache(self)
        return super().train(mode)

    def forward(self, feat: Tensor, heatmaps: Tensor) -> Tensor:
        """(B, C, h, w) stem features, (B, J, h, w) heatmaps -> (B, out, h, w)."""
        x = torch.cat([feat, heatmaps.to(feat.dtype)], dim=1).contiguous(memory_format=self.memory_format)
        return F.relu(conv_bn(x, self.conv, self.bn), inplace=True)


def normalised_keypoints(keypoints_hm: Tensor, valid: Tensor, heatmap_size: int) -> Tensor:
    """(B, J, 2) heatmap cells + (B, J) validity -> (B, J, 3): x, y in [-1, 1] of the crop and the validity
    flag; invalid or non-finite keypoints become (0, 0, 0)."""
    keep = (valid > 0) & torch.isfinite(keypoints_hm).all(dim=-1)  # (B, J)
    xy = hm_to_unit(keypoints_hm, heatmap_size) * 2.0 - 1.0
    xy = torch.where(keep[..., None], xy, torch.zeros_like(xy))
    return torch.cat([xy, keep[..., None].to(xy.dtype)], dim=-1)


class KeypointEncoder(nn.Module):
    """The direct keypoint pathway (``model.keypoint_tokens``): per-joint tokens for the 2D encoder and the
    content of the body queries from an MLP over all keypoints (a 2D-to-3D lifter inside the network)."""

    def __init__(self, num_joints: int, d_model: int, hidden: int) -> None:
        super().__init__()
        self.token = nn.Linear(3, d_model)
        self.joint_embed = nn.Embedding(num_joints, d_model)  # position of each keypoint token
        self.mlp = nn.Sequential(
            nn.Linear(3 * num_joints, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, NUM_BODY_TOKENS * d_model),
        )

    def forward(self, kp: Tensor) -> tuple[Tensor, Tensor]:
        """(B, J, 3) normalised keypoints -> (B, J, C) tokens, (B, 3, C) body-query content."""
        tokens = self.token(kp)
        body = self.mlp(kp.flatten(1)).reshape(kp.shape[0], NUM_BODY_TOKENS, -1)
        return tokens, body


class CascadeHead(nn.Module):
    """Cascade regression over the decoder layers (§1.9): ``out_0 = fc_0(h_0)``,
    ``out_l = out_{l-1} + fc_l([h_l, out_{l-1}])``."""

    def __init__(self, d_model: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [nn.Linear(d_model, out_dim)]
            + [nn.Linear(d_model + out_dim, out_dim) for _ in range(num_layers - 1)]
        )

    @torch.no_grad()
    def init_small(self, start: Tensor) -> None:
        """Small weights (Xavier gain 0.01) and the output ``start`` (out_dim,) for any input: the first
        layer's bias is ``start``, the refining layers' biases are zero."""
        for fc in self.layers:
            nn.init.xavier_uniform_(fc.weight, gain=0.01)
            nn.init.zeros_(fc.bias)
        self.layers[0].bias.copy_(start)

    def forward(self, tokens: Tensor) -> Tensor:
        """(L, B, C) normalised tokens of every decoder layer -> (B, out_dim)."""
        out = self.layers[0](tokens[0])
        for fc, h in zip(self.layers[1:], tokens[1:]):
            out = out + fc(torch.cat([h, out], dim=-1))
        return out


class CoarseToFineDecoder(nn.Module):
    """DETR decoder whose joint tokens predict 3D joints after every layer; the lifted volume is sampled there
    and the samples join the 2D memory of the next layer (§1.7-1.8)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, impl = cfg.d_model, cfg.attention
        self.num_joints = cfg.num_query_joints
        self.layers = nn.ModuleList(
            DecoderLayer(d, cfg.nhead, cfg.ffn_dim_dec, cfg.dropout, impl) for _ in range(cfg.dec_layers)
        )
        self.norm = nn.LayerNorm(d)  # shared, applied after every layer and fed to the next
        self.joint_heads = nn.ModuleList(
            [nn.Linear(d, 3)] + [nn.Linear(d + 3, 3) for _ in range(cfg.dec_layers - 1)]
        )
        self.sample_pos = nn.Sequential(
            nn.Linear(3, d), nn.LayerNorm(d), nn.ReLU(inplace=True), nn.Linear(d, d)
        )
        # Queries: content vectors (zero-init, one per token kind) and positional queries.
        self.body_content = nn.Parameter(torch.zeros(d))
        self.joint_content = nn.Parameter(torch.zeros(d))
        self.body_query_pos = nn.Parameter(torch.randn(NUM_BODY_TOKENS, d))
        self.joint_query_pos = nn.Embedding(self.num_joints, d)

    def forward(
        self,
        memory: Tensor,
        memory_pos: Tensor,
        volume: Tensor | None,
        exponent: Tensor | None,
        body_content: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(B, M, C) 2D memory, (M, C) its pos, (B, C, D, H, W) volume, () depth exponent, optional
        (B, 3, C) content added to the body queries -> (L, B, 3, C) normalised body tokens per layer,
        (L, B, 15, 3) joints per layer in the unit cube.

        ``volume=None`` (ablation without the 3D branch): the memory stays the 2D tokens in every layer."""
        B, _, d = memory.shape
        body = self.body_content.expand(B, NUM_BODY_TOKENS, d)
        if body_content is not None:
            body = body + body_content.to(body.dtype)
        tgt = torch.cat([body, self.joint_content.expand(B, self.num_joints, d)], 1).to(memory.dtype)
        query_pos = torch.cat([self.body_query_pos, self.joint_query_pos.weight], dim=0)  # (18, C)
        pos_2d = memory_pos.expand(B, -1, -1)
        mem, mem_pos = memory, pos_2d
        body_tokens, joints = [], []
        joints_unit: Tensor | None = None
        last = len(self.layers) - 1
        for idx, layer in enumerate(self.layers):
            tgt = self.norm(layer(tgt, query_pos, mem, mem_pos))
            body_tokens.append(tgt[:, :NUM_BODY_TOKENS])
            with torch.autocast(device_type=tgt.device.type, enabled=False):
                h = tgt[:, NUM_BODY_TOKENS:].float()  # (B, 15, C)
                if joints_unit is None:
                    joints_unit = torch.sigmoid(self.joint_heads[0](h))
                else:
                    logit = inverse_sigmoid(joints_unit)
                    joints_unit = torch.sigmoid(logit + self.joint_heads[idx](torch.cat([h, logit], dim=-1)))
                joints.append(joints_unit)
                if idx == last or volume is None:  # the sample after the last layer would be unused
                    continue
                grid = unit_to_grid(joints_unit, exponent=exponent)  # (B, 15, 3) x, y, z
                sampled = F.grid_sample(
                    volume.float(), grid[:, None, None], mode="bilinear", align_corners=True
                )  # (B, C, 1, 1, 15), trilinear on a 5D input
                sampled = rearrange(sampled, "b c 1 1 n -> b n c")
                sampled_pos = self.sample_pos(inverse_sigmoid(joints_unit))  # (B, 15, C)
            mem = torch.cat([memory, sampled.to(memory.dtype)], dim=1)
            mem_pos = torch.cat([pos_2d, sampled_pos.to(pos_2d.dtype)], dim=1)
        return torch.stack(body_tokens), torch.stack(joints)


@dataclass
class ParameterPrediction:
    """Output of :meth:`JOTRNetwork.predict` (everything before the body model)."""

    joints_unit: Tensor  # (L, B, 15, 3) per decoder layer, unit cube of the crop
    pose_rotmat: Tensor  # (B, J, 3, 3) local rotations, root first
    shape: Tensor  # (B, S)
    cam: Tensor  # (B, 3) raw (t_x, t_y, gamma)
    cam_t: Tensor  # (B, 3) metres
    feat_volume: Tensor  # (B, C, D, h, w)
    depth_exponent: Tensor  # ()
    pose_latent: Tensor | None  # (B, 32) VPoser latent or None


class JOTRNetwork(nn.Module):
    """All learnable parts of JOTR for a body model with ``num_pose_joints`` rotations (root first) and
    ``num_shape`` shape values (bounded to ``shape_bounds`` through a sigmoid when given).

    ``pretrained`` loads ``cfg.backbone_weights`` (if set) and, for the vposer head, ``cfg.vposer_weights``
    (required). Pass ``pretrained=False`` when a checkpoint will provide every weight.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        num_pose_joints: int,
        num_shape: int,
        shape_bounds: tuple[float, float] | None = None,
        *,
        pretrained: bool = True,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_pose_joints = num_pose_joints
        self.num_shape = num_shape
        self.shape_bounds = shape_bounds
        d, D = cfg.d_model, cfg.volume_depth
        if cfg.pose_head == "vposer" and num_pose_joints < 1 + VPOSER_JOINTS:
            raise InputError(
                f"model.pose_head='vposer' needs an SMPL body (24 pose joints), the body model has "
                f"{num_pose_joints}"
            )

        self.backbone: ResNet | EfficientNetLite | MoveNetBackbone
        if cfg.backbone == "efficientnet_lite0":
            self.backbone = EfficientNetLite(cfg.feature_stride, cfg.channels_last)
        elif cfg.backbone == "movenet":
            self.backbone = MoveNetBackbone(cfg.feature_stride, cfg.channels_last)
        else:
            self.backbone = ResNet(cfg.backbone, cfg.channels_last)
        self.feat_size = cfg.input_size // self.backbone.stride  # h = w of the backbone output
        c_feat = self.backbone.out_channels
        c_stem = self.backbone.stem_channels  # stride 4: 64 (ResNet), 24 (EfficientNet-Lite0), 40 (MoveNet)
        self.pose2feat = Pose2Feat(c_stem, cfg.num_input_joints, c_stem, cfg.channels_last)
        self.keypoint_encoder = (
            KeypointEncoder(cfg.num_input_joints, d, cfg.keypoint_mlp_dim) if cfg.keypoint_tokens else None
        )
        # 2D tokens and encoder
        self.input_proj = nn.Conv2d(c_feat, d, 1)
        self.encoder_2d = Encoder(
            cfg.enc_layers_2d, d, cfg.nhead, cfg.ffn_dim_2d, cfg.dropout, cfg.attention, False
        )
        # Lifting 2D -> 3D and the 3D encoder
        self.lift = nn.Conv2d(c_feat, d * D, 1)
        self.lift_coord = nn.Conv3d(d + 3, d, 1)  # applied as a per-voxel linear map
        self.depth_exponent = nn.Parameter(torch.tensor(float(cfg.depth_exponent_init)))
        self.encoder_3d = Encoder(
            cfg.enc_layers_3d, d, cfg.nhead, cfg.ffn_dim_3d, cfg.dropout, cfg.attention, True
        )
        # Decoder and heads
        self.decoder = CoarseToFineDecoder(cfg)
        L = cfg.dec_layers
        self.root_pose_head = CascadeHead(d, 6, L)
        pose_dim = VPOSER_LATENT if cfg.pose_head == "vposer" else 6 * (num_pose_joints - 1)
        self.pose_head = CascadeHead(d, pose_dim, L)
        self.shape_head = CascadeHead(d, num_shape, L)
        self.cam_head = CascadeHead(d, 3, L)
        self.vposer = VPoserV1() if cfg.pose_head == "vposer" else None
        self.camera = VirtualCamera.for_crop(cfg.input_size, cfg.focal_256, cfg.camera_3d_size)

        h = w = self.feat_size
        self.register_buffer("pos_2d", sine_position_encoding_2d(h, w, d), persistent=False)  # (h*w, C)
        self.register_buffer("pos_3d", sinusoid_table_1d(D * h * w, d), persistent=False)  # (D*h*w, C)
        self._reset_transformer_parameters()
        if cfg.head_init == "rest_pose":
            self._init_heads_at_rest_pose()
        if pretrained:
            if cfg.backbone_weights and isinstance(self.backbone, EfficientNetLite):
                load_efficientnet_weights(self.backbone, cfg.backbone_weights)
            elif cfg.backbone_weights and isinstance(self.backbone, MoveNetBackbone):
                load_pose_backbone_weights(self.backbone, cfg.backbone_weights)
            elif cfg.backbone_weights:
                load_backbone_weights(self.backbone, cfg.backbone_weights)
            if self.vposer is not None:
                load_vposer_weights(self.vposer, cfg.vposer_weights)

    def _reset_transformer_parameters(self) -> None:
        """Xavier-uniform for every matrix of the transformers (DETR's ``_reset_parameters``)."""
        for module in (
            self.encoder_2d,
            self.encoder_3d,
            self.decoder.layers,
            self.decoder.joint_heads,
            self.decoder.sample_pos,
        ):
            for p in module.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)

    def _init_heads_at_rest_pose(self) -> None:
        """``model.head_init == "rest_pose"``: the untrained network predicts an upright rest pose facing the
        camera, zero shape and zero camera output; training starts from there (as HMR's mean parameters)."""
        rest6d = rotmat_to_rot6d(rest_pose_rotmat(self.num_pose_joints))  # (J, 6)
        self.root_pose_head.init_small(rest6d[0])
        body = torch.zeros(VPOSER_LATENT) if self.cfg.pose_head == "vposer" else rest6d[1:].reshape(-1)
        self.pose_head.init_small(body)
        self.shape_head.init_small(torch.zeros(self.num_shape))
        self.cam_head.init_small(torch.zeros(3))

    # ------------------------------------------------------------------------------------------ helpers

    def clamped_exponent(self) -> Tensor:
        """() depth exponent k = clamp(exponent, min, max)."""
        return self.depth_exponent.clamp(self.cfg.depth_exponent_min, self.cfg.depth_exponent_max)

    def depth_anchor_tokens(self, exponent: Tensor) -> Tensor:
        """(D*h*w, 3) anchors per voxel token, channels (Z, Y, X): Z = (d/D)^k, Y = h/H, X = w/W."""
        D, n = self.cfg.volume_depth, self.feat_size
        dev, dt = exponent.device, exponent.dtype
        z = (torch.arange(D, device=dev, dtype=dt) / D) ** exponent
        yx = torch.arange(n, device=dev, dtype=dt) / n
        zz, yy, xx = torch.meshgrid(z, yx, yx, indexing="ij")
        return torch.stack([zz, yy, xx], dim=-1).reshape(D * n * n, 3)

    def check_inputs(self, inputs: Inputs) -> None:
        img, kp, valid = inputs.image, inputs.keypoints_hm, inputs.keypoints_valid
        s, j = self.cfg.input_size, self.cfg.num_input_joints
        if img.dim() != 4 or img.shape[1] != 3 or img.shape[2] != s or img.shape[3] != s:
            raise InputError(
                f"inputs.image must be (B, 3, {s}, {s}) (model.input_size), got {tuple(img.shape)}"
            )
        B = img.shape[0]
        if tuple(kp.shape) != (B, j, 2):
            raise InputError(f"inputs.keypoints_hm must be ({B}, {j}, 2), got {tuple(kp.shape)}")
        if tuple(valid.shape) != (B, j):
            raise InputError(f"inputs.keypoints_valid must be ({B}, {j}), got {tuple(valid.shape)}")
        if not img.is_floating_point():
            raise InputError(f"inputs.image must be a float tensor in [0, 1], got {img.dtype}")

    # ------------------------------------------------------------------------------------------ forward

    def _features(self, inputs: Inputs, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """(B, C_backbone, h, w) backbone features after Pose2Feat early fusion of the 2D-pose heatmaps, and
        the (B, J) keypoint validity they were made with (inputs checked; training-only joint dropping drawn
        from ``generator``)."""
        self.check_inputs(inputs)
        cfg = self.cfg
        image = inputs.image
        valid = inputs.keypoints_valid.to(image.dtype)
        if self.training:
            valid = drop_joints(valid, cfg.joint_mask_prob, generator)
        heatmaps = render_heatmaps(
            inputs.keypoints_hm.to(image.dtype), valid, cfg.heatmap_size, cfg.heatmap_sigma
        )
        feat = self.backbone.stem(image)  # (B, C_stem, hm, hm)
        feat = self.pose2feat(feat, heatmaps)
        return self.backbone.stages(feat), valid  # (B, C_backbone, h, w), (B, J)

    def predict(self, inputs: Inputs, generator: torch.Generator | None = None) -> ParameterPrediction:
        """Image + 2D pose -> body parameters, camera and per-layer 3D joints (no body model)."""
        cfg = self.cfg
        image = inputs.image
        B, D, n = image.shape[0], cfg.volume_depth, self.feat_size
        feat, valid = self._features(inputs, generator)  # (B, C_backbone, h, w), (B, 30) after dropping

        # 3D branch: lift, add depth anchors, 3D encoder -> V
        exponent = self.clamped_exponent()
        w_lift = autocast_param(self, "lift.w", self.lift.weight)
        lifted = F.conv2d(feat, w_lift, autocast_param(self, "lift.b", self.lift.bias))
        vol = rearrange(lifted, "b (c d) h w -> b (d h w) c", d=D)  # (B, D*h*w, C)
        w_coord = self.lift_coord.weight.flatten(1)  # (C, C + 3): features, then the (Z, Y, X) anchors
        anchors = F.linear(self.depth_anchor_tokens(exponent), w_coord[:, -3:])  # (D*h*w, C)
        w_feat = autocast_param(self, "lift_coord.w", w_coord[:, :-3])
        tokens_3d = F.linear(vol, w_feat) + (anchors + self.lift_coord.bias).to(vol.dtype)  # (B, D*h*w, C)
        tokens_3d = self.encoder_3d(tokens_3d, self.pos_3d.to(tokens_3d.dtype))
        volume = rearrange(tokens_3d, "b (d h w) c -> b c d h w", d=D, h=n, w=n)  # (B, C, D, h, w)

        # 2D branch: tokens + encoder
        proj = F.conv2d(
            feat,
            autocast_param(self, "input_proj.w", self.input_proj.weight),
            autocast_param(self, "input_proj.b", self.input_proj.bias),
        )
        tokens_2d = rearrange(proj, "b c h w -> b (h w) c")  # (B, h*w, C)
        pos_2d = self.pos_2d.to(tokens_2d.dtype)
        body_content = None
        if self.keypoint_encoder is not None:  # direct keypoint pathway (model.keypoint_tokens)
            kp = normalised_keypoints(inputs.keypoints_hm.float(), valid, cfg.heatmap_size)  # (B, 30, 3)
            if self.training and cfg.keypoint_pathway_drop_prob > 0:  # per sample: all keypoints "missing"
                draw = torch.rand(B, generator=generator, device=kp.device)
                kp = kp * (draw >= cfg.keypoint_pathway_drop_prob).to(kp.dtype)[:, None, None]
            kp_tokens, body_content = self.keypoint_encoder(kp)  # (B, 30, C), (B, 3, C)
            tokens_2d = torch.cat([tokens_2d, kp_tokens.to(tokens_2d.dtype)], dim=1)  # (B, h*w + 30, C)
            pos_2d = torch.cat([pos_2d, self.keypoint_encoder.joint_embed.weight.to(pos_2d.dtype)], dim=0)
        memory = self.encoder_2d(tokens_2d, pos_2d)

        body_tokens, joints_unit = self.decoder(
            memory, pos_2d, volume, exponent, body_content
        )  # (L, B, 3, C), (L, B, 15, 3)

        with torch.autocast(device_type=image.device.type, enabled=False):
            body_tokens = body_tokens.float()
            root6d = self.root_pose_head(body_tokens[:, :, 0])  # (B, 6)
            pose_out = self.pose_head(body_tokens[:, :, 0])
            shape = self.shape_head(body_tokens[:, :, 1])  # (B, S)
            cam = self.cam_head(body_tokens[:, :, 2])  # (B, 3)
            root = rot6d_to_rotmat(root6d)[:, None]  # (B, 1, 3, 3)
            if self.vposer is not None:
                body = self.vposer.decode(pose_out)  # (B, 21, 3, 3)
                rest = 1 + body.shape[1]
                extra = torch.eye(3, device=body.device, dtype=body.dtype).expand(
                    B, self.num_pose_joints - rest, 3, 3
                )
                pose_rotmat = torch.cat([root, body, extra], dim=1)
                latent = pose_out
            else:
                body = rot6d_to_rotmat(pose_out.reshape(B, self.num_pose_joints - 1, 6))
                pose_rotmat = torch.cat([root, body], dim=1)
                latent = None
            if self.shape_bounds is not None:
                lo, hi = self.shape_bounds
                shape = lo + (hi - lo) * torch.sigmoid(shape)
            cam_t = self.camera.translation(cam)
        return ParameterPrediction(
            joints_unit=joints_unit,
            pose_rotmat=pose_rotmat,
            shape=shape,
            cam=cam,
            cam_t=cam_t,
            feat_volume=volume,
            depth_exponent=exponent,
            pose_latent=latent,
        )


class JOTR(JOTRNetwork):
    """JOTR with its body model. ``forward(Inputs, generator) -> JOTROutput`` (same type in train and
    eval mode)."""

    def __init__(self, cfg: ModelConfig, body: BodyModel, *, pretrained: bool = True) -> None:
        if cfg.pose_head == "vposer" and tuple(getattr(body, "pose_joint_names", ())) != SMPL24.names:
            raise InputError(
                f"model.pose_head='vposer' works only with the SMPL body model (body.kind=smpl: VPoser "
                f"decodes SMPL joints); got the {body.name!r} body with {body.num_pose_joints} pose joints "
                f"-- use model.pose_head='rot6d'"
            )
        super().__init__(cfg, body.num_pose_joints, body.num_shape, body.shape_bounds, pretrained=pretrained)
        self.body = body

    def forward(self, inputs: Inputs, generator: torch.Generator | None = None) -> JOTROutput:
        """Crops + 2D poses -> meshes, joints, camera. ``generator`` drives the training-time joint
        dropping."""
        pred = self.predict(inputs, generator)
        cfg = self.cfg
        with torch.autocast(device_type=inputs.image.device.type, enabled=False):
            out = self.body(pred.pose_rotmat.float(), pred.shape.float())
            joints = self.body.joints(out, "jotr30")  # (B, 30, 3) body frame, metres
            proj_px = self.camera.project(joints + pred.cam_t[:, None])  # (B, 30, 2) crop pixels
            root = joints[:, PELVIS : PELVIS + 1]
            return JOTROutput(
                joints_unit=pred.joints_unit,
                pose_rotmat=pred.pose_rotmat,
                shape=pred.shape,
                cam=pred.cam,
                cam_t=pred.cam_t,
                vertices=out.vertices - root,
                joints_cam=joints - root,
                joints_proj_hm=px_to_hm(proj_px, cfg.input_size, cfg.heatmap_size),
                feat_volume=pred.feat_volume,
                depth_exponent=pred.depth_exponent,
                pose_latent=pred.pose_latent,
            )
