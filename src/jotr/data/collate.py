"""Sample dicts (from :class:`jotr.data.pipeline.SamplePipeline`) -> :class:`jotr.structures.Batch`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import torch

from jotr.errors import InputError
from jotr.structures import Batch, Inputs, Meta, Targets

_LIST_FIELDS = {"dataset", "sample_id", "gender"}


def collate(samples: Sequence[dict[str, Any]]) -> Batch:
    """Stack per-sample tensors into a :class:`Batch`.

    Pose/shape targets belong to one body model, so a batch must not mix body models (InputError otherwise).
    ``meta.extra`` keeps the keys every sample has: tensors are stacked, other values listed;
    ``meta.extra['body_model']`` names the batch's body model.
    """
    if not samples:
        raise InputError("collate: empty list of samples")
    models = sorted({s["body_model"] for s in samples})
    if len(models) > 1:
        raise InputError(f"collate: a batch mixes body models {models}; mix only datasets of one body model")

    def stack(name: str) -> torch.Tensor:
        try:
            return torch.stack([s[name] for s in samples])
        except RuntimeError as exc:
            raise InputError(f"collate: samples disagree on the shape of {name!r}: {exc}") from exc

    inputs = Inputs(**{f.name: stack(f.name) for f in fields(Inputs)})
    targets = Targets(**{f.name: stack(f.name) for f in fields(Targets)})
    meta_kwargs: dict[str, Any] = {}
    for f in fields(Meta):
        if f.name == "extra":
            continue
        meta_kwargs[f.name] = [s[f.name] for s in samples] if f.name in _LIST_FIELDS else stack(f.name)
    extra: dict[str, Any] = {"body_model": models[0]}
    keys = set.intersection(*(set(s.get("extra", {})) for s in samples))
    for key in sorted(keys):
        values = [s["extra"][key] for s in samples]
        if all(isinstance(v, torch.Tensor) for v in values):
            try:
                extra[key] = torch.stack(values)
                continue
            except RuntimeError:
                pass
        extra[key] = values
    return Batch(inputs=inputs, targets=targets, meta=Meta(**meta_kwargs, extra=extra))
