"""ResNet-18/34/50/101 with torchvision-compatible parameter names, split at the stem.

JOTR fuses the 2D-pose heatmaps after the stem (conv7x7/2, BN, ReLU, maxpool), so the backbone exposes
:meth:`ResNet.stem` and :meth:`ResNet.stages` separately. Parameter names follow torchvision
(``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0`` ...), so ImageNet or SimpleBaseline
(Xiao et al.) ``.pth`` files load with :func:`load_backbone_weights`. There is no classifier.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jotr.errors import CheckpointError, describe_key_groups

logger = logging.getLogger(__name__)


def _folded(conv: nn.Conv2d, bn: nn.BatchNorm2d, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Conv weights with the eval-mode BatchNorm folded in, (weight channels_last, bias), cached on ``conv``.

    The cache is keyed on the tensors' version counters, storage and the requested dtype, so optimiser steps,
    ``load_state_dict`` and ``.to()`` all invalidate it; BatchNorm's running statistics are updated inside the
    kernel, so ``num_batches_tracked`` is part of the key too and :func:`clear_folded_cache` runs on every
    ``train()``/``eval()`` switch. Never part of the state dict.
    """
    tensors = (conv.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.num_batches_tracked)
    key = tuple((t._version, t.data_ptr()) for t in tensors) + (
        conv.bias is None or conv.bias._version,
        dtype,
    )
    cached = conv.__dict__.get("_jotr_folded")
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        weight = (
            (conv.weight * scale[:, None, None, None]).to(dtype).contiguous(memory_format=torch.channels_last)
        )
        bias = bn.bias - bn.running_mean * scale
        if conv.bias is not None:
            bias = bias + conv.bias * scale
        bias = bias.to(dtype)
    conv.__dict__["_jotr_folded"] = (key, weight, bias)
    return weight, bias


def clear_folded_cache(module: nn.Module) -> None:
    """Drop the folded conv+BN weights cached under ``module``."""
    for m in module.modules():
        m.__dict__.pop("_jotr_folded", None)


def init_conv_bn(module: nn.Module) -> None:
    """He-normal (fan-out) convolutions, unit-scale zero-shift BatchNorms: the from-scratch initialisation of
    the backbones."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def conv_bn(x: Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> Tensor:
    """``bn(conv(x))``. Without autograd in eval mode (inference) the BatchNorm is folded into the convolution
    (one kernel instead of two memory-bound passes); with autograd or in training, the plain modules run."""
    if bn.training or torch.is_grad_enabled():
        return bn(conv(x))
    dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
    weight, bias = _folded(conv, bn, dtype)
    return F.conv2d(x.to(dtype), weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _add_relu(out: Tensor, identity: Tensor) -> Tensor:
    if torch.is_grad_enabled():
        return F.relu(out + identity)
    return F.relu_(out.add_(identity.to(out.dtype)))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else conv_bn(x, self.downsample[0], self.downsample[1])
        out = self.relu(conv_bn(x, self.conv1, self.bn1))
        out = conv_bn(out, self.conv2, self.bn2)
        return _add_relu(out, identity)


class Bottleneck(nn.Module):
    """torchvision's v1.5 bottleneck: the stride sits on the 3x3 convolution."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else conv_bn(x, self.downsample[0], self.downsample[1])
        out = self.relu(conv_bn(x, self.conv1, self.bn1))
        out = self.relu(conv_bn(out, self.conv2, self.bn2))
        out = conv_bn(out, self.conv3, self.bn3)
        return _add_relu(out, identity)


RESNET_SPECS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
}

STEM_CHANNELS = 64  # output channels of the stem (all depths)
STRIDE = 32  # input pixels per cell of the final feature map


class ResNet(nn.Module):
    """Stem + four stages. ``stem``: (B, 3, H, W) -> (B, 64, H/4, W/4); ``stages``: (B, 64, H/4, W/4) ->
    (B, out_channels, H/32, W/32)."""

    stem_channels = STEM_CHANNELS  # channels at the Pose2Feat fusion point (stride 4)
    stride = STRIDE  # input pixels per cell of the output

    def __init__(self, depth: str = "resnet50", channels_last: bool = True) -> None:
        super().__init__()
        if depth not in RESNET_SPECS:
            raise ValueError(f"unknown backbone {depth!r}; known: {sorted(RESNET_SPECS)}")
        block, layers = RESNET_SPECS[depth]
        self.depth = depth
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = STEM_CHANNELS
        stages = []
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
                    nn.BatchNorm2d(planes * block.expansion),
                )
            blocks = [block(inplanes, planes, stride, downsample)]
            inplanes = planes * block.expansion
            blocks += [block(inplanes, planes) for _ in range(1, n)]
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = inplanes
        self._init_weights()

    def _init_weights(self) -> None:
        init_conv_bn(self)

    def train(self, mode: bool = True) -> ResNet:
        clear_folded_cache(self)
        return super().train(mode)

    def stem(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, 64, H/4, W/4), channels-last memory format (faster oneDNN convolutions) unless
        built with ``channels_last=False``."""
        x = x.contiguous(memory_format=self.memory_format)
        return self.maxpool(self.relu(conv_bn(x, self.conv1, self.bn1)))

    def stages(self, x: Tensor) -> Tensor:
        """(B, 64, H/4, W/4) -> (B, out_channels, H/32, W/32)."""
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))


# ---------------------------------------------------------------------------------------------- weights

_CONTAINER_KEYS = ("state_dict", "model", "network", "model_state_dict")
_STRIP_PREFIXES = ("module.", "backbone.")
# Keys of heads that are not part of the backbone: the ImageNet classifier and SimpleBaseline's deconv head.
_IGNORED_PREFIXES = ("fc.", "deconv_layers.", "final_layer.")


def _unwrap_state(obj: object, source: str) -> Mapping[str, Tensor]:
    """A state dict, possibly inside a container dict (``{'state_dict': ...}``, ``{'network': ...}``)."""
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            return obj
        for key in _CONTAINER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                return _unwrap_state(obj[key], source)
    raise CheckpointError(f"{source} does not hold a state dict of tensors")


def backbone_state_from_file(path: str | Path) -> dict[str, Tensor]:
    """Read a torchvision / SimpleBaseline weight file and return backbone keys with torchvision names.

    ``module.`` and ``backbone.`` prefixes are stripped (repeatedly), the classifier (``fc.*``) and
    SimpleBaseline deconv head (``deconv_layers.*``, ``final_layer.*``) are dropped; every other key is kept.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"backbone weight file not found: {path}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure means the file is unusable
        raise CheckpointError(
            f"backbone weight file {path} cannot be read: {type(exc).__name__}: {exc}"
        ) from exc
    state = _unwrap_state(raw, f"backbone weight file {path}")
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        name = key
        changed = True
        while changed:
            changed = False
            for prefix in _STRIP_PREFIXES:
                if name.startswith(prefix):
                    name, changed = name[len(prefix) :], True
        if name.startswith(_IGNORED_PREFIXES):
            continue
        out[name] = value
    return out


def load_backbone_weights(backbone: ResNet, path: str | Path) -> None:
    """Load a torchvision / SimpleBaseline ``.pth`` into ``backbone`` strictly.

    Only BatchNorm ``num_batches_tracked`` counters may be absent (old torchvision files lack them); any other
    missing, unexpected or mis-shaped key raises :class:`CheckpointError` listing them.
    """
    state = backbone_state_from_file(path)
    expected = backbone.state_dict()
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or mis_shaped:
        parts = describe_key_groups(
            [("missing", missing), ("unexpected", unexpected), ("shape mismatch", mis_shaped)], limit=12
        )
        raise CheckpointError(f"backbone weights {path} do not fit a {backbone.depth}: " + parts)
    full = dict(expected)
    full.update({k: v.to(expected[k].dtype) for k, v in state.items()})
    backbone.load_state_dict(full, strict=True)
    logger.info("loaded %s backbone weights from %s (%d tensors)", backbone.depth, path, len(state))
