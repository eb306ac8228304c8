"""The trained model that ships with jotr, as one safetensors file, and its stored reference prediction.

File layout (``jotr_anny_small.safetensors`` next to this module, package data):

* tensors: the network's state dict (the same keys as a training checkpoint's ``model`` entry); floating-point
  tensors in float16, integer buffers (BatchNorm step counters) as they are. No body-model arrays inside.
  Optionally (``int8_to_fit``, only when float16 does not fit the size limit) the largest weight matrices /
  conv kernels are stored as int8 with one float32 scale per output channel (key ``<name>.__int8_scale__``),
  symmetric, ``w = q * scale``; they are listed in the ``int8_keys`` metadata and dequantised at load.
* metadata (safetensors' string -> string header):

  ``format``       ``"jotr-shipped-model"``
  ``version``      ``"1"``
  ``config``       JSON ``{"body": {...}, "model": {...}}``: the resolved body and network config the
                   weights belong to (everything :func:`jotr.models.build_model` reads)
  ``provenance``   JSON: source checkpoint file name and sha256, its step / epoch, git commit, torch version,
                   export time, and the full resolved training config (seeds, data, schedule), for the
                   model card
  ``int8_keys``    JSON list of the int8-stored tensors (only present when there are any)

:func:`load_shipped_model` rebuilds the network from ``config`` and loads the tensors strictly (missing,
unexpected and mis-shaped keys are a :class:`~jotr.errors.CheckpointError` listing them), float16 -> float32.
:func:`export_shipped_model` writes the file atomically from a training checkpoint and refuses a file above
:data:`MAX_SHIPPED_BYTES`. :func:`reference_inputs` builds the fixed input of the stored reference prediction
(``tests/data/shipped_model_reference.npz``) in code, with no randomness: :func:`reference_prediction` runs
it, :func:`compare_to_reference` checks a predictor against the stored file."""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from jotr.errors import CheckpointError

if TYPE_CHECKING:
    from jotr.config import JOTRConfig
    from jotr.inference.predictor import JOTRPredictor, PersonInput

logger = logging.getLogger(__name__)

SHIPPED_FORMAT = "jotr-shipped-model"
SHIPPED_VERSION = 1
SHIPPED_MODEL_NAME = "jotr_anny_small.safetensors"
MAX_SHIPPED_BYTES = 25 * 1000 * 1000  # issue 15: the file in the repository stays <= 25 MB
INT8_SCALE_SUFFIX = ".__int8_scale__"
REFERENCE_FIELDS = ("pose_rotmat", "shape", "cam_t_crop", "translation", "joints", "joints_img", "vertices")
REFERENCE_VERTEX_STRIDE = 16  # the reference stores every 16th output vertex (enough to catch any change)
# Tolerances of compare_to_reference: metres / rotation entries / body-shape units, and image pixels.
REFERENCE_ATOL = 1e-3
REFERENCE_ATOL_PX = 0.05
NO_SHIPPED_MODEL_HINT = (
    "pass a trained checkpoint with --checkpoint CKPT (e.g. runs/synthetic_small/best.pt), or for "
    "`jotr demo-synthetic` train a small demo model on the spot with --train-demo-model; the shipped file is "
    "made by `python scripts/export_shipped_model.py CKPT` (docs/model_card.md)"
)


def default_shipped_path() -> Path:
    """Where the shipped model lives: ``jotr/weights/jotr_anny_small.safetensors`` inside the package."""
    return Path(__file__).resolve().parent / SHIPPED_MODEL_NAME


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------- writing


def quantize_int8(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8: (O, ...) float -> (O, ...) int8 and (O,) float32 scales."""
    w = t.detach().float().cpu()
    amax = w.reshape(w.shape[0], -1).abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    q = torch.round(w / scale.view(-1, *([1] * (w.dim() - 1)))).clamp(-127, 127).to(torch.int8)
    return q.contiguous(), scale.contiguous()


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale.float().view(-1, *([1] * (q.dim() - 1)))


def shipped_tensors(
    state: Mapping[str, torch.Tensor], int8_keys: Sequence[str] = ()
) -> dict[str, torch.Tensor]:
    """A state dict as stored in the shipped file: floating tensors in float16 (those in ``int8_keys`` as int8
    plus per-channel scales), contiguous, on the CPU.

    Raises CheckpointError naming the tensors that are not finite, or that overflow float16 (|x| > 65504)."""
    out: dict[str, torch.Tensor] = {}
    bad: list[str] = []
    int8 = set(int8_keys)
    for key, value in state.items():
        t = value.detach().cpu()
        if key in int8:
            if not torch.isfinite(t).all():
                bad.append(f"{key} (not finite)")
                continue
            out[key], out[key + INT8_SCALE_SUFFIX] = quantize_int8(t)
            continue
        if t.is_floating_point():
            if not torch.isfinite(t).all():
                bad.append(f"{key} (not finite)")
                continue
            t = t.to(torch.float16)
            if not torch.isfinite(t).all():
                bad.append(f"{key} (|x| up to {value.abs().max().item():.3g} overflows float16)")
                continue
        out[key] = t.contiguous()
    if bad:
        raise CheckpointError("cannot store the weights in float16: " + ", ".join(bad[:20]))
    return out


def _model_config_dict(cfg: JOTRConfig) -> dict[str, Any]:
    from jotr.config import config_to_dict

    return {"body": config_to_dict(cfg.body), "model": config_to_dict(cfg.model)}


def save_shipped_model(
    path: str | Path,
    state: Mapping[str, torch.Tensor],
    cfg: JOTRConfig,
    provenance: Mapping[str, Any] | None = None,
    max_bytes: int | None = MAX_SHIPPED_BYTES,
    int8_to_fit: bool = False,
) -> Path:
    """Write ``state`` (a network state dict) and ``cfg``'s body/model config as a shipped-model file.

    ``int8_to_fit``: when the float16 file would exceed ``max_bytes``, store the largest weight tensors
    (2-D and up) as per-channel int8, largest first, until it fits (the rest stays float16).
    Atomic (temp file + rename): any failure, also a file above ``max_bytes``, leaves ``path`` untouched."""
    from safetensors.torch import save_file

    from jotr.config import config_to_dict
    from jotr.utils.io import atomic_path

    path = Path(path)
    int8_keys = _int8_keys_to_fit(state, max_bytes) if int8_to_fit and max_bytes is not None else []
    tensors = shipped_tensors(state, int8_keys)
    prov = dict(provenance or {})
    prov.setdefault("training_config", config_to_dict(cfg))
    metadata = {
        "format": SHIPPED_FORMAT,
        "version": str(SHIPPED_VERSION),
        "config": json.dumps(_model_config_dict(cfg), sort_keys=True),
        "provenance": json.dumps(prov, sort_keys=True, default=str),
    }
    if int8_keys:
        metadata["int8_keys"] = json.dumps(sorted(int8_keys))
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        size = tmp.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise CheckpointError(
                f"the shipped model would be {size / 1e6:.2f} MB, above the {max_bytes / 1e6:.2f} MB limit "
                f"(largest parts: {_largest_parts(tensors)}); ship a smaller network config"
                + ("" if int8_to_fit else ", or store the largest weights as int8 (--int8-to-fit)")
            )
    logger.info(
        "wrote %s (%.2f MB, %d tensors, %d of them int8)",
        path,
        path.stat().st_size / 1e6,
        len(state),
        len(int8_keys),
    )
    return path


def _int8_keys_to_fit(state: Mapping[str, torch.Tensor], max_bytes: int, margin: int = 200_000) -> list[str]:
    """The fewest largest weight tensors (2-D and up) to store as int8 so that the file fits ``max_bytes``
    (estimated: tensor bytes + ``margin`` for the header); [] when float16 already fits."""
    size = sum(v.numel() * (2 if v.is_floating_point() else v.element_size()) for v in state.values())
    chosen: list[str] = []
    candidates = sorted(
        (k for k, v in state.items() if v.is_floating_point() and v.dim() >= 2),
        key=lambda k: -state[k].numel(),
    )
    for key in candidates:
        if size + margin <= max_bytes:
            break
        t = state[key]
        size -= t.numel() - 4 * t.shape[0]  # 2 -> 1 byte per weight, plus a float32 scale per channel
        chosen.append(key)
    return chosen


def _largest_parts(tensors: Mapping[str, torch.Tensor], depth: int = 2, top: int = 4) -> str:
    sizes: dict[str, int] = {}
    for key, t in tensors.items():
        part = ".".join(key.split(".")[:depth])
        sizes[part] = sizes.get(part, 0) + t.numel() * t.element_size()
    ranked = sorted(sizes.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in ranked)


def export_shipped_model(
    checkpoint: str | Path,
    out: str | Path | None = None,
    *,
    max_bytes: int | None = MAX_SHIPPED_BYTES,
    require_anny: bool = True,
    int8_to_fit: bool = False,
) -> Path:
    """A training checkpoint (``jotr.engine.checkpoint`` format) -> the shipped safetensors file.

    The checkpoint is validated and loaded strictly into the network its config describes first, so only a
    state dict that really matches the network is written."""
    from jotr.engine.checkpoint import load_checkpoint, load_model

    checkpoint = Path(checkpoint)
    out = Path(out) if out is not None else default_shipped_path()
    ckpt = load_checkpoint(checkpoint)
    model, cfg = load_model(checkpoint)  # strict: every key of the network, nothing else
    if require_anny and cfg.body.kind != "anny":
        raise CheckpointError(
            f"{checkpoint} is a '{cfg.body.kind}' model; the shipped model is the embedded default (Anny)"
        )
    provenance = {
        "source_checkpoint": checkpoint.name,
        "source_sha256": file_sha256(checkpoint),
        "step": int(ckpt.get("step", -1)),
        "epoch": int(ckpt.get("epoch", -1)),
        "git_commit": ckpt.get("git_commit"),
        "torch_version": ckpt.get("torch_version"),
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "training_config": ckpt["config"],
    }
    return save_shipped_model(
        out, model.state_dict(), cfg, provenance, max_bytes=max_bytes, int8_to_fit=int8_to_fit
    )


# ------------------------------------------------------------------------------------------------- reading


def read_shipped_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a shipped-model file; CheckpointError if missing, corrupt or foreign."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no shipped model at {path}: {NO_SHIPPED_MODEL_HINT}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from exc
    if metadata.get("format") != SHIPPED_FORMAT:
        raise CheckpointError(
            f"{path} is not a jotr shipped-model file (metadata format {metadata.get('format')!r}, "
            f"expected {SHIPPED_FORMAT!r})"
        )
    try:
        version = int(metadata.get("version", ""))
    except ValueError:
        version = -1
    if not 1 <= version <= SHIPPED_VERSION:
        raise CheckpointError(
            f"{path} has shipped-model version {metadata.get('version')!r}; "
            f"this jotr reads <= {SHIPPED_VERSION}"
        )
    if "config" not in metadata:
        raise CheckpointError(f"{path} has no 'config' metadata")
    return tensors, metadata


def shipped_config(
    metadata: Mapping[str, str], overrides: Sequence[str] = (), source: str = ""
) -> JOTRConfig:
    """The body/model config stored in the metadata (on top of the defaults), plus ``key=value`` overrides."""
    from jotr.config import ConfigError, config_from_dict, merge_config, parse_override

    try:
        data = json.loads(metadata["config"])
        cfg = config_from_dict(data)
    except (json.JSONDecodeError, ConfigError, TypeError) as exc:
        raise CheckpointError(f"{source}: its stored config does not match this jotr version: {exc}") from exc
    for text in overrides:
        cfg = merge_config(cfg, parse_override(text))
    return cfg


def shipped_provenance(path: str | Path | None = None) -> dict[str, Any]:
    """The provenance metadata of a shipped file (for the model card and ``--verbose`` logs)."""
    _, metadata = read_shipped_file(path or default_shipped_path())
    return json.loads(metadata.get("provenance", "{}"))


def load_shipped_model(
    path: str | Path | None = None,
    device: str | torch.device | None = None,
    overrides: Sequence[str] = (),
) -> tuple[torch.nn.Module, JOTRConfig]:
    """Build the network of a shipped file's config (with its body model) and load the weights strictly.

    float16 tensors are loaded as float32 (the dtype of the network's own parameters). Returns
    ``(model, cfg)``, the model in eval mode on ``device`` (default CPU)."""
    from jotr.engine.checkpoint import load_state_strict
    from jotr.models import build_model

    path = Path(path) if path is not None else default_shipped_path()
    tensors, metadata = read_shipped_file(path)
    cfg = shipped_config(metadata, overrides, source=str(path))
    try:
        int8_keys = json.loads(metadata.get("int8_keys", "[]"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"shipped model {path}: unreadable 'int8_keys' metadata: {exc}") from exc
    for key in int8_keys:
        scale = tensors.pop(key + INT8_SCALE_SUFFIX, None)
        if key not in tensors or scale is None or tensors[key].dtype != torch.int8:
            raise CheckpointError(f"shipped model {path}: int8 tensor {key} or its scales are missing")
        tensors[key] = dequantize_int8(tensors[key], scale)
    model = build_model(cfg, pretrained=False)  # every weight comes from the file
    expected = model.state_dict()
    state = {
        k: v.to(expected[k].dtype) if k in expected and v.is_floating_point() else v
        for k, v in tensors.items()
    }
    load_state_strict(model, state, source=f"shipped model {path}")
    model.eval()
    if device is not None:
        model.to(torch.device(device))
    return model, cfg


# ---------------------------------------------------------------------------------------- reference input


def _segment_mask(h: int, w: int, a: np.ndarray, b: np.ndarray, radius: float) -> np.ndarray:
    """(h, w) bool: pixels within ``radius`` of the segment a-b (pixel centres)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    ab = b - a
    t = ((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1]) / max(float(ab @ ab), 1e-9)
    t = np.clip(t, 0.0, 1.0)
    dx, dy = xx - (a[0] + t * ab[0]), yy - (a[1] + t * ab[1])
    return dx * dx + dy * dy <= radius * radius


# COCO-17 order: nose, eyes (L, R), ears (L, R), shoulders, elbows, wrists, hips, knees, ankles (L before R).
# A person facing the camera: their left is at larger x.
_STANDING_COCO17 = np.array(
    [
        [100, 42], [105, 37], [95, 37], [111, 40], [89, 40],
        [119, 66], [81, 66], [127, 100], [71, 100], [131, 131], [66, 131],
        [112, 134], [88, 134], [115, 181], [86, 181], [116, 226], [84, 226],
    ],
    dtype=np.float64,
)  # fmt: skip
# An upper-body person cut by the bottom of the image: hips at the border, knees and ankles outside.
_UPPER_BODY_COCO17 = np.array(
    [
        [232, 70], [241, 61], [224, 61], [252, 66], [213, 66],
        [272, 122], [193, 122], [285, 180], [180, 178], [262, 226], [206, 230],
        [256, 246], [208, 246], [258, 330], [206, 330], [258, 410], [206, 410],
    ],
    dtype=np.float64,
)  # fmt: skip
_LIMBS = (
    (5, 7),
    (7, 9),
    (6, 8),
    (8, 10),
    (11, 13),
    (13, 15),
    (12, 14),
    (14, 16),
    (5, 6),
    (11, 12),
    (5, 11),
    (6, 12),
)
REFERENCE_IMAGE_SIZE = (320, 256)  # W, H


def reference_inputs() -> tuple[np.ndarray, list[PersonInput]]:
    """The fixed input of the stored reference prediction: a (256, 320, 3) uint8 RGB image and two people.

    Built in code, no randomness: a smooth colour gradient with a checker pattern, two stick figures painted
    at their COCO-17 keypoints, and the keypoints themselves -- a full standing person (left ear missing) and
    an upper-body person cut by the bottom border (knees and ankles outside the image, confidence 0)."""
    from jotr.inference.predictor import PersonInput

    W, H = REFERENCE_IMAGE_SIZE
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    img = np.stack([60 + 120 * xx / W, 80 + 100 * yy / H, 150 - 60 * xx / W], axis=-1)
    img += 25.0 * (((xx // 16) + (yy // 16)) % 2)[..., None]
    people = []
    for kps, colour in ((_STANDING_COCO17, (200, 60, 50)), (_UPPER_BODY_COCO17, (40, 70, 190))):
        conf = np.where((kps[:, 0] >= 0) & (kps[:, 0] < W) & (kps[:, 1] >= 0) & (kps[:, 1] < H), 0.9, 0.0)
        for a, b in _LIMBS:
            img[_segment_mask(H, W, kps[a], kps[b], 7.0)] = colour
        head = kps[0]
        img[_segment_mask(H, W, head, head, 13.0)] = (230, 190, 160)
        people.append(np.concatenate([kps, conf[:, None]], axis=1))
    people[0][3, 2] = 0.0  # the standing person's left ear is not detected
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return image, [PersonInput(keypoints=p, keypoint_format="coco17") for p in people]


def reference_prediction(predictor: JOTRPredictor) -> dict[str, np.ndarray]:
    """The predictor's outputs on :func:`reference_inputs`, stacked per person (REFERENCE_FIELDS)."""
    image, people = reference_inputs()
    results = predictor.predict(image, people, name="reference input")
    bad = [r.error for r in results if not r.ok]
    if bad:
        raise CheckpointError(f"the reference input failed: {bad}")
    out = {}
    for name in REFERENCE_FIELDS:
        arr = np.stack([np.asarray(getattr(r, name), dtype=np.float32) for r in results])
        if name == "vertices":
            arr = arr[:, ::REFERENCE_VERTEX_STRIDE]
        out[name] = arr
    return out


def write_reference(predictor: JOTRPredictor, path: str | Path, weights: str | Path) -> dict[str, np.ndarray]:
    """Run :func:`reference_prediction` and store it (atomically) with the sha256 of the weights file."""
    from jotr.utils.io import atomic_path

    ref = reference_prediction(predictor)
    payload = dict(ref)
    payload["weights_sha256"] = np.array(file_sha256(weights))
    payload["vertex_stride"] = np.array(REFERENCE_VERTEX_STRIDE)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **payload)
    return ref


def compare_to_reference(predictor: JOTRPredictor, path: str | Path) -> dict[str, float]:
    """Max absolute difference per field between the predictor's reference prediction and the stored one.

    Raises AssertionError naming the fields beyond the tolerances (REFERENCE_ATOL, REFERENCE_ATOL_PX)."""
    stored = np.load(path)
    got = reference_prediction(predictor)
    diffs: dict[str, float] = {}
    failed = []
    for name in REFERENCE_FIELDS:
        ref = stored[name]
        if ref.shape != got[name].shape:
            failed.append(f"{name}: shape {got[name].shape} vs stored {ref.shape}")
            continue
        diffs[name] = float(np.abs(got[name] - ref).max())
        tol = REFERENCE_ATOL_PX if name == "joints_img" else REFERENCE_ATOL
        if not diffs[name] <= tol:
            failed.append(f"{name}: max |diff| {diffs[name]:.3g} > {tol:g}")
    if failed:
        raise AssertionError(f"prediction differs from the stored reference {path}: " + "; ".join(failed))
    return diffs
