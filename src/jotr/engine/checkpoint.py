"""Checkpoints: one ``torch.save`` file per snapshot, written atomically, loadable with ``weights_only=True``.

Layout of a jotr checkpoint (a plain dict; only tensors, numbers, strings and containers of them)::

    format      "jotr-checkpoint"
    version     1
    model       the network's state dict (body-model arrays are non-persistent buffers, never inside)
    config      the resolved config tree as a plain dict (jotr.config.config_to_dict)
    step        optimiser steps taken so far
    epoch       epochs completed (or the epoch in progress, see ``extra``)
    optimizer / scheduler / scaler / criterion   their state dicts (absent when not given)
    rng         {"torch": uint8 tensor, "numpy": {...}, "python": {...}, "cuda": [uint8 tensors]}
    git_commit  ``git describe --always --dirty`` of the source tree, or None
    torch_version
    extra       anything else the caller passes (plain data)

:func:`load_checkpoint` validates the file and raises :class:`jotr.errors.CheckpointError` with a clear
message: the zip container's CRC-32 of every entry is verified (a damaged block is found, not loaded), and
``.safetensors`` files (weights + ``jotr_config`` metadata, as ``jotr convert-official`` writes them) load as
weights-only checkpoints after a header check. :func:`load_state_strict` also refuses non-floating tensors for
floating parameters and NaN/inf weights;
:func:`load_model` rebuilds the network from the stored config and loads it strictly.
"""

from __future__ import annotations

import logging
import pickle
import random
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from jotr.errors import CheckpointError, RunError
from jotr.utils.io import atomic_save

if TYPE_CHECKING:
    from jotr.config import JOTRConfig

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "jotr-checkpoint"
CHECKPOINT_VERSION = 1


# ------------------------------------------------------------------------------------------------ helpers


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def git_commit(path: str | Path | None = None) -> str | None:
    """``git describe --always --dirty`` of the repository holding ``path`` (default: this package).

    None when git or the repository is unavailable (e.g. an installed wheel)."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        res = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=40"],
            cwd=where if where.is_dir() else where.parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    out = res.stdout.strip()
    return out if res.returncode == 0 and out else None


def capture_rng_state() -> dict[str, Any]:
    """RNG states of torch (CPU and every CUDA device), numpy's global generator and Python's ``random``."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_state[0]),
            "state": torch.tensor(py_state[1], dtype=torch.int64),
            "gauss_next": py_state[2],
        },
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states are restored when the device count matches)."""
    torch.set_rng_state(state["torch"].cpu())
    nps = state["numpy"]
    keys = nps["keys"].numpy().astype(np.uint32)
    np.random.set_state((nps["kind"], keys, nps["pos"], nps["has_gauss"], nps["cached_gaussian"]))
    pys = state["python"]
    random.setstate((pys["version"], tuple(int(v) for v in pys["state"].tolist()), pys["gauss_next"]))
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        else:
            logger.warning(
                "checkpoint holds %d CUDA RNG states but %d devices are visible; CUDA RNG not restored",
                len(cuda),
                torch.cuda.device_count(),
            )


# --------------------------------------------------------------------------------------------------- save


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    cfg: JOTRConfig | Mapping[str, Any],
    step: int,
    epoch: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    scaler: Any | None = None,
    criterion: nn.Module | None = None,
    extra: Mapping[str, Any] | None = None,
    rng: bool = True,
    commit: str | None = None,
) -> Path:
    """Write a checkpoint atomically (temp file + rename) and return its path.

    ``cfg`` is the resolved config (dataclass or already a plain dict). ``commit`` defaults to
    :func:`git_commit`. The file loads with ``torch.load(path, weights_only=True)``.
    """
    from jotr.config import config_to_dict

    path = Path(path)
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": {k: v.detach().cpu() for k, v in unwrap_model(model).state_dict().items()},
        "config": config_to_dict(cfg),
        "step": int(step),
        "epoch": int(epoch),
        "git_commit": commit if commit is not None else git_commit(),
        "torch_version": str(torch.__version__),
        "extra": dict(extra) if extra is not None else {},
    }
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        payload["scheduler"] = scheduler.state_dict()
    if scaler is not None:
        payload["scaler"] = scaler.state_dict()
    if criterion is not None:
        payload["criterion"] = {k: v.detach().cpu() for k, v in unwrap_model(criterion).state_dict().items()}
    if rng:
        payload["rng"] = capture_rng_state()
    try:
        atomic_save(path, lambda tmp: torch.save(payload, tmp))
    except (RuntimeError, OSError) as exc:  # torch reports a full disk as "[enforce fail at ...]"
        raise RunError(f"could not write checkpoint {path}: {_write_failure(path, exc)}") from exc
    logger.debug("saved checkpoint %s (step %d)", path, step)
    return path


def _write_failure(path: Path, exc: BaseException) -> str:
    """A short reason for a failed write, naming a full disk when that is what happened."""
    import errno
    import shutil

    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "no space left on device"
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    if free is not None and free < 64 * 2**20:
        return f"the disk is (nearly) full ({free / 2**20:.1f} MB free)"
    text = " ".join(str(exc).split())
    return text[-200:] if isinstance(exc, OSError) else f"the write failed ({text[-160:]}); disk full?"


# --------------------------------------------------------------------------------------------------- load

MAX_SAFETENSORS_HEADER = 100 * 2**20  # bytes of JSON header; larger is not a weights file


def verify_zip_crc(path: Path) -> None:
    """CheckpointError when ``path`` is a zip container (torch's format) whose entries fail their CRC-32
    (torch.load does not check it: a zeroed block would load as different weights)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is corrupt (its zip container cannot be read: {exc})"
        ) from None
    if bad is not None:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: entry {bad} fails its CRC check (damaged on disk or in a copy)"
        )


def _load_safetensors(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    """A ``.safetensors`` file with jotr's ``jotr_config`` metadata as a weights-only checkpoint dict."""
    import json

    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
    header_len = int.from_bytes(head, "little") if len(head) == 8 else -1
    if header_len < 2 or header_len > min(size - 8, MAX_SAFETENSORS_HEADER):
        raise CheckpointError(
            f"{path} is not a valid safetensors file (header length {header_len}, {size} bytes)"
        )
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device=str(map_location)) as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no items()
    except Exception as exc:  # noqa: BLE001 - the library's errors for damaged headers / offsets
        raise CheckpointError(
            f"{path} is not a valid safetensors file: {' '.join(str(exc).split())}"
        ) from None
    if "jotr_config" not in meta:
        raise CheckpointError(f"{path} has no 'jotr_config' metadata: not written by jotr convert-official")
    try:
        config = json.loads(meta["jotr_config"])
    except ValueError as exc:
        raise CheckpointError(f"{path}: its 'jotr_config' metadata is not JSON ({exc})") from None
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": tensors,
        "config": config,
        "step": 0,
        "epoch": 0,
        "extra": {k: v for k, v in meta.items() if k != "jotr_config"},
    }


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and validate a jotr checkpoint (``weights_only=True``); CheckpointError on any problem."""
    if not isinstance(path, (str, Path)) or not str(path):
        raise CheckpointError(f"checkpoint must be a file path, got {path!r}"[:200])
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from exc
    if size == 0:
        raise CheckpointError(
            f"checkpoint {path} is empty (0 bytes): truncated by an interrupted copy or a full disk? "
            "(jotr itself writes checkpoints atomically)"
        )
    if path.suffix == ".safetensors":
        return _load_safetensors(path, map_location)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == b"PK\x03\x04":
        verify_zip_crc(path)
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc) or "Unsupported class" in str(exc):
            raise CheckpointError(
                f"checkpoint {path} holds objects that are not allowed in a weights-only load (not a jotr "
                f"checkpoint? official checkpoints go through 'jotr convert-official'): {str(exc)[-300:]}"
            ) from exc
        raise CheckpointError(f"checkpoint {path} is corrupt or not a PyTorch file: {exc}") from exc
    except EOFError as exc:
        raise CheckpointError(
            f"checkpoint {path} is truncated ({size} bytes, the file ends early): "
            "an interrupted copy or a full disk?"
        ) from exc
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any failure to parse the file means it is unusable
        reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        raise CheckpointError(f"checkpoint {path} is corrupt or not a PyTorch file: {reason}") from exc
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        hint = ""
        if isinstance(data, dict) and ("network" in data or "state_dict" in data):
            hint = " (it looks like an official JOTR checkpoint: convert it with 'jotr convert-official')"
        raise CheckpointError(f"{path} is not a jotr checkpoint{hint}")
    version = data.get("version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}; this jotr reads <= {CHECKPOINT_VERSION}"
        )
    for key in ("model", "config", "step"):
        if key not in data:
            raise CheckpointError(f"checkpoint {path} is incomplete: no '{key}' entry")
    if not isinstance(data["model"], Mapping) or not isinstance(data["config"], Mapping):
        raise CheckpointError(f"checkpoint {path} is malformed: 'model' and 'config' must be mappings")
    return data


def checkpoint_config(
    ckpt: Mapping[str, Any], overrides: Sequence[str] = (), source: str = "checkpoint"
) -> JOTRConfig:
    """The config stored in a loaded checkpoint, with ``key=value`` overrides applied."""
    from jotr.config import ConfigError, config_from_dict, merge_config, parse_override

    try:
        cfg = config_from_dict(ckpt["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{source}: its stored config does not match this jotr version: {exc}") from exc
    for text in overrides:
        cfg = merge_config(cfg, parse_override(text))
    return cfg


def load_state_strict(
    module: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> None:
    """``load_state_dict(strict=True)``; a CheckpointError lists missing, unexpected and mis-shaped keys."""
    module = unwrap_model(module)
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if isinstance(state[k], torch.Tensor) and tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or mis_shaped:
        parts = []
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mis_shaped),
        ):
            if keys:
                shown = ", ".join(keys[:20]) + (f", ... ({len(keys)} in all)" if len(keys) > 20 else "")
                parts.append(f"{label}: {shown}")
        name = type(module).__name__
        raise CheckpointError(f"{source} does not match the model ({name}): " + "; ".join(parts))
    wrong_kind = sorted(
        f"{k}: checkpoint {state[k].dtype} vs model {expected[k].dtype}"
        for k in expected
        if isinstance(state[k], torch.Tensor)
        and state[k].dtype.is_floating_point != expected[k].dtype.is_floating_point
    )
    if wrong_kind:
        shown = ", ".join(wrong_kind[:10]) + (
            f", ... ({len(wrong_kind)} in all)" if len(wrong_kind) > 10 else ""
        )
        raise CheckpointError(f"{source}: tensors of the wrong kind (integer vs floating): {shown}")
    non_finite = sorted(
        k
        for k, v in state.items()
        if isinstance(v, torch.Tensor) and v.dtype.is_floating_point and not bool(torch.isfinite(v).all())
    )
    if non_finite:
        shown = ", ".join(non_finite[:10]) + (
            f", ... ({len(non_finite)} in all)" if len(non_finite) > 10 else ""
        )
        raise CheckpointError(f"{source} holds NaN/inf weights (a diverged or damaged run?): {shown}")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # dtype or other mismatches not caught above
        raise CheckpointError(f"{source} does not match the model: {exc}") from exc


def load_model(
    path: str | Path, device: str | torch.device | None = None, overrides: Sequence[str] = ()
) -> tuple[nn.Module, JOTRConfig]:
    """Build the network described by a checkpoint's config (plus overrides), load its weights strictly.

    Returns ``(model, cfg)`` with the model in eval mode on ``device`` (default CPU). Overrides adapt
    machine-specific settings (e.g. ``body.smpl_model_path=...``); changing the architecture makes the strict
    load fail with a CheckpointError listing the keys.
    """
    from jotr.models import build_model

    ckpt = load_checkpoint(path, map_location="cpu")
    cfg = checkpoint_config(ckpt, overrides, source=str(path))
    model = build_model(cfg, pretrained=False)  # every weight comes from the checkpoint
    load_state_strict(model, ckpt["model"], source=f"checkpoint {path}")
    model.eval()
    if device is not None:
        model.to(torch.device(device))
    return model, cfg
