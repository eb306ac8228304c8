"""The built-in people detector's network, MoveNet MultiPose Lightning, and the decoding of its outputs into
people.

The network itself (a MobileNetV2 backbone of width 1.5, a three-level feature pyramid to stride 4, six heads)
and its shipped weight file live in :mod:`jotr.models.movenet`, shared with the pose-pretrained JOTR backbone
(:mod:`jotr.models.pose_backbone`); the names used here are re-exported from there. This module adds the
decoding, the ONNX graph and its onnxruntime session.

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

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jotr.models.movenet import (
    BLOCKS,
    DEFAULT_WEIGHTS,
    HEADS,
    INT8_GROUP,
    INT8_GROUP_LARGE,
    INT8_LARGE,
    INT8_MIN_ELEMENTS,
    INT8_SCALE_SUFFIX,
    LATERALS,
    NUM_KEYPOINTS,
    WEIGHTS_FORMAT,
    MoveNetMultiPose,
    SeparableConv,
    dequantize_int8,
    load_movenet,
    quantize_int8,
    save_weights,
)

__all__ = [  # the network's names re-exported from jotr.models.movenet, then this module's own
    "BLOCKS",
    "DEFAULT_WEIGHTS",
    "HEADS",
    "INT8_GROUP",
    "INT8_GROUP_LARGE",
    "INT8_LARGE",
    "INT8_MIN_ELEMENTS",
    "INT8_SCALE_SUFFIX",
    "NUM_KEYPOINTS",
    "WEIGHTS_FORMAT",
    "MoveNetMultiPose",
    "dequantize_int8",
    "load_movenet",
    "quantize_int8",
    "save_weights",
    "INPUT_MULTIPLE",
    "KEYPOINT_SCORE_FLOOR",
    "STRIDE",
    "OnnxMoveNet",
    "RawPerson",
    "decode_people",
    "to_onnx",
]

STRIDE = 4  # input px per output grid cell
INPUT_MULTIPLE = 32  # input height and width must be multiples of this
KEYPOINT_SCORE_FLOOR = 0.127  # keypoints scoring below this do not count towards the person score
NMS_KERNEL = 5  # centre-heatmap peak window (cells)
NMS_TOLERANCE = 1e-6  # a cell is a peak when |centre - max-pooled centre| < this
DISTANCE_SIGMA_FACTOR = 0.3  # keypoint snapping: exp(-d^2 / (factor * min(h, w))), d in cells


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
