"""Registry of dataset readers: name -> ``"module:Class"`` (imported lazily by :func:`get_reader_class`)."""

from __future__ import annotations

import importlib

from jotr.errors import InputError

DATASETS: dict[str, str] = {
    "synthetic": "jotr.data.datasets.synthetic:SyntheticReader",
    "pw3d": "jotr.data.datasets.pw3d:PW3DReader",
    "h36m": "jotr.data.datasets.h36m:H36MReader",
    "muco": "jotr.data.datasets.muco:MuCoReader",
    "coco": "jotr.data.datasets.coco:COCOReader",
    "crowdpose": "jotr.data.datasets.crowdpose:CrowdPoseReader",
    "oh3d": "jotr.data.datasets.oh3d:OH3DReader",
    "cmu_panoptic": "jotr.data.datasets.cmu_panoptic:CMUPanopticReader",
}


def get_reader_class(name: str) -> type:
    """The reader class registered under ``name`` (a clear error for unknown names)."""
    try:
        target = DATASETS[name]
    except KeyError:
        raise InputError(f"unknown dataset {name!r}; known datasets: {sorted(DATASETS)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def build_reader(spec):
    """Instantiate the reader of a :class:`jotr.data.config.DatasetSpec`."""
    return get_reader_class(spec.name)(spec)
