"""Writing predictions to disk: meshes (.obj / .ply through trimesh), parameters (.json / .npz), images
   (.png).

Atomicity: everything for one image is written into a hidden staging folder next to the destination, which is
then renamed onto ``<out>/<name>/`` in one step (:func:`staged_dir`). A failure while writing (a person, the
renderer, the disk) removes the staging folder, so a destination folder is either complete or absent. Result
folders hold jotr's marker file (:data:`jotr.utils.io.MARKER`); an existing destination is replaced only if it
has one (the commands refuse an existing one without ``--force`` before that)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from jotr.body.joint_sets import JOTR30
from jotr.errors import InputError
from jotr.inference.predictor import PersonResult


@contextlib.contextmanager
def staged_dir(final: str | Path) -> Iterator[Path]:
    """Yield a temporary folder (holding only jotr's marker file); on success it replaces ``final``. An old
    ``final`` is removed only if jotr created it (marker file) or it is empty; otherwise InputError."""
    from jotr.utils.io import check_new_output, make_parents, mark_output, remove_if_empty, temp_prefix

    final = Path(final)
    check_new_output(final, "result folder", force=True)
    created = make_parents(final.parent)
    try:  # host-pid in the name: jotr.utils.io.clean_stale_temporaries removes it after a kill
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(final.name), suffix=".partial", dir=final.parent))
    except BaseException:
        remove_if_empty(created)
        raise
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)  # mkdtemp creates 0700; the final folder gets normal permissions
    try:
        mark_output(tmp, "result")
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_if_empty(created)
        raise
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=temp_prefix(final.name), suffix=".old", dir=final.parent))
        mark_output(old, "staging")
        os.replace(final, old / final.name)
    try:
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            os.replace(old / final.name, final)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_png(path: str | Path, image_rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError(f"could not encode {path} as PNG")
    Path(path).write_bytes(buf.tobytes())


def write_mesh(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """One mesh as .obj or .ply (by suffix), vertices in metres (camera frame), no re-processing."""
    import trimesh

    path = Path(path)
    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces, np.int64), process=False)
    file_type = path.suffix.lstrip(".").lower()
    if file_type not in ("obj", "ply"):
        raise InputError(f"mesh files must be .obj or .ply, got {path}")
    data = mesh.export(file_type=file_type)
    Path(path).write_bytes(data.encode() if isinstance(data, str) else data)


def _list(a: np.ndarray | None) -> Any:
    return None if a is None else np.asarray(a, dtype=np.float64).round(6).tolist()


def results_to_json(
    results: Sequence[PersonResult],
    *,
    image: str,
    image_size: tuple[int, int],
    body_model: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A JSON-serialisable description of one image's results (arrays as nested lists)."""
    people = []
    for r in results:
        entry: dict[str, Any] = {"index": r.index, "error": r.error}
        if r.ok:
            entry.update(
                {
                    "box_xywh": _list(r.box_xywh),
                    "translation": _list(r.translation),
                    "cam_t_crop": _list(r.cam_t_crop),
                    "pose_aa": _list(r.pose_aa),
                    "shape": _list(r.shape),
                    "joints_cam": _list(r.joints),
                    "joints_img": _list(r.joints_img),
                    "input_keypoints_jotr30": _list(r.keypoints_jotr30),
                }
            )
        people.append(entry)
    ok = next((r for r in results if r.ok), None)
    out = {
        "image": image,
        "image_size": list(image_size),
        "body_model": body_model,
        "focal": list(ok.focal) if ok else None,
        "princpt": list(ok.princpt) if ok else None,
        "joint_names": list(JOTR30.names),
        "units": {
            "translation": "m, camera frame x right / y down / z forward",
            "joints_img": "image px",
            "pose_aa": "axis-angle rad, local, root first (root in the camera frame)",
        },
        "people": people,
    }
    if extra:
        out.update(extra)
    return out


def results_to_arrays(
    results: Sequence[PersonResult], faces: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Stacked arrays of the successful people (leading axis P) for ``np.savez``."""
    ok = [r for r in results if r.ok]
    arrays: dict[str, np.ndarray] = {"person_index": np.array([r.index for r in ok], dtype=np.int64)}
    fields = (
        "box_xywh",
        "pose_rotmat",
        "pose_aa",
        "shape",
        "cam_t_crop",
        "translation",
        "vertices",
        "joints",
        "joints_img",
        "keypoints_jotr30",
    )
    for name in fields:
        values = [getattr(r, name) for r in ok]
        arrays[name] = np.stack(values).astype(np.float32) if values else np.zeros((0,), np.float32)
    if faces is not None:
        arrays["faces"] = np.asarray(faces, np.int64)
    return arrays


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def write_json(path: str | Path, data: Any) -> None:
    Path(path).write_text(json.dumps(data, indent=1) + "\n")


def save_image_outputs(
    folder: str | Path,
    image: np.ndarray,
    results: Sequence[PersonResult],
    faces: np.ndarray,
    *,
    image_name: str,
    body_model: str,
    visualizer: Any | None = None,
    extra: dict[str, Any] | None = None,
    meshes: bool = True,
    images: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write one image's outputs into ``folder`` atomically (staged folder, then rename).

    Files: ``overlay.png`` and ``side.png`` (when ``visualizer`` is given), ``person_XX.obj`` /
    ``person_XX.ply`` per reconstructed person (XX = the person's input index), ``params.json`` (every person,
    errors included) and ``params.npz`` (stacked arrays of the reconstructed people, plus ``faces``)."""
    ok = [r for r in results if r.ok]
    H, W = image.shape[:2]
    with staged_dir(folder) as tmp:
        for key, img in (images or {}).items():
            write_png(tmp / f"{key}.png", img)
        if visualizer is not None:
            focal = ok[0].focal if ok else (1.0, 1.0)
            princpt = ok[0].princpt if ok else (W / 2.0, H / 2.0)
            from jotr.viz.overlay import person_color

            ov = visualizer.render(
                image,
                [(r.vertices, faces) for r in ok],
                focal,
                princpt,
                boxes=[r.box_xywh for r in ok],
                colors=[person_color(r.index) for r in ok],
            )
            write_png(tmp / "overlay.png", ov.image)
            write_png(tmp / "side.png", ov.side)
        if meshes:
            for r in ok:
                write_mesh(tmp / f"person_{r.index:02d}.obj", r.vertices, faces)
                write_mesh(tmp / f"person_{r.index:02d}.ply", r.vertices, faces)
        write_json(
            tmp / "params.json",
            results_to_json(results, image=image_name, image_size=(W, H), body_model=body_model, extra=extra),
        )
        write_npz(tmp / "params.npz", results_to_arrays(results, faces))
    return Path(folder)
