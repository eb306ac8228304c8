"""The shipped-model file: one safetensors file with the network's weights and its config in the metadata.

File layout (``jotr_anny_small.safetensors`` in this package folder, package data):

* tensors: the network's state dict (the same keys as a training checkpoint's ``model`` entry); floating-point
  tensors in float16, integer buffers (BatchNorm step counters) as they are. No body-model arrays inside.
  Optionally (``int8_to_fit``, only when float16 does not fit the size limit) the largest weight matrices /
  conv kernels are stored as int8 with one float32 scale per output channel (key ``<name>.__int8_scale__``),
  symmetric, ``w = q * scale`` (:mod:`jotr.weights.int8`); they are listed in the ``int8_keys`` metadata and
  dequantised at load.
* metadata (safetensors' string -> string header):

  ``format``       ``"jotr-shipped-model"``
  ``version``      ``"1"``
  ``config``       JSON ``{"body": {...}, "model": {...}}``: the resolved body and network config the
                   weights belong to (everything :func:`jotr.models.build_model` reads)
  ``provenance``   JSON: source checkpoint file name and sha256, its step / epoch, git commit, torch version,
                   export time, and the full resolved training config (seeds, data, schedule), for the
                   model card
  ``int8_keys``    JSON list of the int8-stored tensors (only present when there are any)

:func:`save_shipped_model` writes the file atomically and refuses one above :data:`MAX_SHIPPED_BYTES`;
:func:`read_shipped_file` reads and checks it. Building the network from it is
:func:`jotr.weights.loading.load_shipped_model`; making it from a training checkpoint is
:func:`jotr.weights.export.export_shipped_model`. This module imports neither the network nor inference.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from jotr.errors import CheckpointError
from jotr.weights.int8 import int8_keys_to_fit, quantize_int8

if TYPE_CHECKING:
    from jotr.config import JOTRConfig

logger = logging.getLogger(__name__)

SHIPPED_FORMAT = "jotr-shipped-model"
SHIPPED_VERSION = 1
SHIPPED_MODEL_NAME = "jotr_anny_small.safetensors"
MAX_SHIPPED_BYTES = 25 * 1000 * 1000  # issue 15: the file in the repository stays <= 25 MB
INT8_SCALE_SUFFIX = ".__int8_scale__"
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
    int8_keys = int8_keys_to_fit(state, max_bytes) if int8_to_fit and max_bytes is not None else []
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


def _largest_parts(tensors: Mapping[str, torch.Tensor], depth: int = 2, top: int = 4) -> str:
    sizes: dict[str, int] = {}
    for key, t in tensors.items():
        part = ".".join(key.split(".")[:depth])
        sizes[part] = sizes.get(part, 0) + t.numel() * t.element_size()
    ranked = sorted(sizes.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in ranked)


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
