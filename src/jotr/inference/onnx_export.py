"""ONNX export of the JOTR inference network (image + 2D keypoints -> body parameters, camera, 3D joints).

What is exported: ``JOTRNetwork.predict`` -- backbone, Pose2Feat, 2D/3D encoders, coarse-to-fine decoder and
the regression heads -- for a dynamic batch axis. The body model is NOT inside the graph: Anny's skinning runs
in NVIDIA Warp kernels that ONNX cannot express, and an SMPL model file is licensed, so baking its arrays into
a redistributable .onnx file is not allowed. Apply the body model to the exported ``pose_rotmat`` / ``shape``
(``jotr.body.build_body_model(cfg.body)``) to get meshes.

Inputs (float32):  ``image`` (B, 3, S, S) crop RGB [0, 1]; ``keypoints_hm`` (B, 30, 2) heatmap cells;
``keypoints_valid`` (B, 30) 0/1.
Outputs (float32): ``pose_rotmat`` (B, J, 3, 3) local rotations, root first; ``shape`` (B, S_body);
``cam`` (B, 3) raw head output; ``cam_t`` (B, 3) virtual crop camera translation, metres; ``joints_unit`` (B,
15, 3) final decoder layer's query joints in the crop's unit cube.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)``. The torch.export-based exporter
(``dynamo=True``, the default since torch 2.9) needs the ``onnxscript`` package, which jotr does not depend
on; the TorchScript exporter works offline with torch 2.13. The 5-D ``grid_sample`` of the decoder needs ONNX
opset >= 20 (GridSample on N-D inputs), so the default opset is 20."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jotr.errors import InputError
from jotr.structures import Inputs
from jotr.utils.io import atomic_path

logger = logging.getLogger(__name__)

INPUT_NAMES = ("image", "keypoints_hm", "keypoints_valid")
OUTPUT_NAMES = ("pose_rotmat", "shape", "cam", "cam_t", "joints_unit")
DEFAULT_OPSET = 20
MIN_OPSET = 20  # 5-D GridSample; opsets 17-19 fail with "GridSample with 5D volumetric input" (measured)


def max_opset() -> int:
    """The highest ONNX opset this PyTorch can export (torch 2.13: 23)."""
    from torch.onnx import _constants

    return int(getattr(_constants, "ONNX_MAX_OPSET", DEFAULT_OPSET))


def check_opset(opset: object) -> int:
    """``opset`` if it is an integer in [MIN_OPSET, max_opset()], else InputError saying the range."""
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise InputError(f"ONNX opset must be an integer, got {opset!r}")
    if opset < MIN_OPSET:
        raise InputError(
            f"ONNX opset must be >= {MIN_OPSET}: the decoder's 5-D grid_sample exports only as N-D "
            f"GridSample (opset 20); got {opset}"
        )
    if opset > max_opset():
        raise InputError(f"ONNX opset {opset} is newer than this PyTorch exports (at most {max_opset()})")
    return opset


class InferenceNetwork(nn.Module):
    """Tensor-in / tensor-out wrapper of ``model.predict`` (eval mode), the graph that is exported."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.net = model

    def forward(self, image: torch.Tensor, keypoints_hm: torch.Tensor, keypoints_valid: torch.Tensor):
        pred = self.net.predict(
            Inputs(image=image, keypoints_hm=keypoints_hm, keypoints_valid=keypoints_valid)
        )
        return pred.pose_rotmat, pred.shape, pred.cam, pred.cam_t, pred.joints_unit[-1]


def example_inputs(
    model_cfg, batch: int = 2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random inputs of the right shapes (for tracing and parity checks)."""
    g = torch.Generator().manual_seed(seed)
    S, hm, J = model_cfg.input_size, model_cfg.heatmap_size, model_cfg.num_input_joints
    image = torch.rand(batch, 3, S, S, generator=g)
    kps = torch.rand(batch, J, 2, generator=g) * hm
    valid = (torch.rand(batch, J, generator=g) > 0.2).float()
    return image, kps, valid


@dataclass
class ExportReport:
    path: Path
    opset: int
    max_abs_diff: dict[
        str, float
    ]  # per output, onnxruntime vs PyTorch on a batch size different from tracing


def export_onnx(
    model: nn.Module,
    model_cfg,
    out_path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    tolerance: float = 1e-4,
) -> ExportReport:
    """Export ``model`` (a JOTR network) to ``out_path`` atomically; with ``check``, run it in onnxruntime
       on a
    batch of a different size than the traced one and compare with PyTorch (raises if any output differs by
    more than ``tolerance``)."""
    check_opset(opset)
    out_path = Path(out_path)
    device = next(model.parameters()).device
    wrapper = InferenceNetwork(model).eval().to(device)
    args = tuple(t.to(device) for t in example_inputs(model_cfg, batch=2))
    dynamic_axes = {name: {0: "batch"} for name in INPUT_NAMES + OUTPUT_NAMES}
    with atomic_path(out_path) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        with torch.no_grad():
            torch.onnx.export(
                wrapper,
                args,
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
        diffs = check_onnx(wrapper, model_cfg, tmp, tolerance=tolerance) if check else {}
    logger.info("exported %s (opset %d)", out_path, opset)
    return ExportReport(out_path, opset, diffs)


def check_onnx(
    wrapper: nn.Module, model_cfg, onnx_path: str | Path, *, batch: int = 3, tolerance: float = 1e-4
) -> dict[str, float]:
    """Max |onnxruntime - PyTorch| per output on fresh random inputs of batch ``batch``."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise InputError("checking the export needs onnxruntime: pip install 'jotr[onnx]'") from exc
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inputs = example_inputs(model_cfg, batch=batch, seed=1)
    got = sess.run(list(OUTPUT_NAMES), {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs)})
    device = next(wrapper.parameters()).device
    with torch.no_grad():
        ref = wrapper(*(t.to(device) for t in inputs))
    diffs = {n: float(np.abs(g - r.float().cpu().numpy()).max()) for n, g, r in zip(OUTPUT_NAMES, got, ref)}
    bad = {n: d for n, d in diffs.items() if not d <= tolerance}
    if bad:
        raise RuntimeError(f"ONNX export does not match PyTorch within {tolerance}: {bad}")
    return diffs
