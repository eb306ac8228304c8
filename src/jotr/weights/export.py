"""A training checkpoint -> the shipped-model file (validated by a strict load first)."""

from __future__ import annotations

import datetime
from pathlib import Path

from jotr.errors import CheckpointError
from jotr.weights import shipped_file
from jotr.weights.shipped_file import MAX_SHIPPED_BYTES, file_sha256, save_shipped_model


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
    out = Path(out) if out is not None else shipped_file.default_shipped_path()
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
