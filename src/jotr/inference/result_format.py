"""The result files ``params.json`` / ``params.npz``: one set of key names for both, and
:func:`load_result`, which reads either and rebuilds the meshes from the parameters.

Every key is listed, with its shape, units and frame, in ``docs/results_format.md`` (a test checks that every
key written is documented there). ``FORMAT`` names the layout version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jotr.errors import InputError

FORMAT = "jotr-result/1"

# Per reconstructed person (a person-frame row for videos): JSON "people" entries, stacked (P, ...) in .npz.
PERSON_KEYS = (
    "person_index",
    "box_xywh",
    "pose_rotmat",
    "pose_aa",
    "shape",
    "cam_t_crop",
    "translation",
    "joints",
    "joints_img",
    "keypoints_jotr30",
)
VIDEO_PERSON_KEYS = ("frame", "track_id")
NPZ_ONLY_KEYS = ("vertices", "faces")  # meshes: (P, V, 3) vertices, camera frame, and (F, 3) faces


def describe_body(body: Any) -> dict[str, Any]:
    """Metadata of the body model that made the meshes: kind, rig, topology, vertex count, bone and shape
    names (``None`` where the model has no such notion)."""
    shape_names = getattr(body, "shape_names", None) or tuple(f"beta_{i}" for i in range(body.num_shape))
    return {
        "body_model": getattr(body, "name", None),
        "rig": getattr(body, "rig", None),
        "topology": getattr(body, "topology", None),
        "num_vertices": int(body.num_vertices),
        "bone_names": list(body.pose_joint_names),
        "shape_names": list(shape_names),
    }


def result_metadata(
    predictor: Any | None,
    *,
    kind: str,
    source: str,
    image_size: tuple[int, int],
    focal: Sequence[float] | None,
    princpt: Sequence[float] | None,
    export_frame: str,
    export_from_camera: np.ndarray,
    body_model: str | None = None,
) -> dict[str, Any]:
    """The top-level keys of one result (see docs/results_format.md). ``predictor`` None: only what the
    arguments give (``body_model`` then names the body)."""
    from jotr._version import __version__
    from jotr.body.joint_sets import JOTR30

    meta: dict[str, Any] = {
        "format": FORMAT,
        "jotr_version": __version__,
        "kind": kind,
        "source": source,
        "image_size": [int(v) for v in image_size],
        "focal": None if focal is None else [float(v) for v in focal],
        "princpt": None if princpt is None else [float(v) for v in princpt],
        "joint_names": list(JOTR30.names),
        "export_frame": export_frame,
        "export_from_camera": np.asarray(export_from_camera, np.float64).round(9).tolist(),
        "body_model": body_model,
    }
    if predictor is not None:
        meta.update(describe_body(predictor.mesh_body))
        meta.update(getattr(predictor, "checkpoint_info", None) or {})
    return meta


def _is_missing(value: Any) -> bool:
    return value is None


def meta_to_npz(meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """Metadata as arrays for ``np.savez`` (strings as 0-d unicode arrays; ``None`` values left out)."""
    out = {}
    for key, value in meta.items():
        if _is_missing(value):
            continue
        if isinstance(value, dict):
            out[key] = np.array(json.dumps(value))  # nested records (demo-synthetic metrics) as JSON text
        else:
            out[key] = np.asarray(value)
    return out


@dataclass
class Result:
    """One result file read back: metadata, the reconstructed people's stacked arrays, failures."""

    meta: dict[str, Any]  # every top-level key (format, source, image_size, focal, bone_names, ...)
    people: dict[str, np.ndarray]  # PERSON_KEYS (+ frame, track_id, vertices) stacked, leading axis P
    errors: list[dict[str, Any]] = field(default_factory=list)  # JSON: {"person_index", "error"} of failures
    faces: np.ndarray | None = None  # (F, 3) from .npz, else None (rebuilt with the body model)

    @property
    def export_from_camera(self) -> np.ndarray:
        return np.asarray(self.meta["export_from_camera"], np.float64)

    def body_model(self):
        """The body model named by the result (Anny with its rig and topology, or the toy body)."""
        kind = self.meta.get("body_model")
        if kind == "anny":
            from jotr.body.anny import AnnyBody

            return AnnyBody(rig=self.meta["rig"], topology=self.meta["topology"])
        if kind == "toy":
            from jotr.body.toy import ToyBody

            return ToyBody()
        raise InputError(
            f"cannot rebuild {kind!r} meshes on its own (SMPL needs your model files): pass body=..."
        )

    def vertices(self, body: Any | None = None, *, frame: str = "camera") -> np.ndarray:
        """(P, V, 3) meshes rebuilt from ``pose_rotmat``, ``shape`` and ``translation`` (the predictor's
        recipe: the body's jotr30 pelvis placed at ``translation``); ``frame="export"`` applies the result's
        ``export_from_camera`` (the frame of its mesh files)."""
        import torch

        from jotr.geometry.coords import apply_rigid

        body = body if body is not None else self.body_model()
        pose = torch.as_tensor(self.people["pose_rotmat"], dtype=torch.float32)
        shape = torch.as_tensor(self.people["shape"], dtype=torch.float32)
        with torch.no_grad():
            out = body(pose, shape)
            pelvis = body.joints(out, "jotr30")[:, :1]
            verts = (out.vertices - pelvis).double().numpy() + self.people["translation"][:, None]
        if frame == "export":
            return apply_rigid(self.export_from_camera, verts)
        if frame != "camera":
            raise InputError(f"frame must be 'camera' or 'export', got {frame!r}")
        return verts


def load_result(path: str | Path) -> Result:
    """Read a ``params.json`` or ``params.npz`` written by jotr (docs/results_format.md)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"result file not found: {path}")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        faces = arrays.pop("faces", None)
        row_keys = set(PERSON_KEYS) | set(VIDEO_PERSON_KEYS) | {"vertices"}
        people = {k: v for k, v in arrays.items() if k in row_keys}
        meta: dict[str, Any] = {}
        for key, value in arrays.items():
            if key in row_keys:
                continue
            if value.dtype.kind == "U":
                text = value.tolist()
                meta[key] = json.loads(text) if isinstance(text, str) and text[:1] == "{" else text
            else:
                meta[key] = value.tolist()
        return Result(meta=meta, people=people, faces=faces)
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read result file {path}: {exc}") from None
        entries = data.pop("people", [])
        ok = [e for e in entries if e.get("error") is None]
        errors = [{"person_index": e["person_index"], "error": e["error"]} for e in entries if e.get("error")]
        people = {}
        for key in (*PERSON_KEYS, *VIDEO_PERSON_KEYS):
            if ok and key in ok[0]:
                people[key] = np.asarray([e[key] for e in ok])
        return Result(meta=data, people=people, errors=errors)
    raise InputError(f"result files are params.json or params.npz, got {path}")
