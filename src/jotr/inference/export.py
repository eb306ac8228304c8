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


EXPORT_FRAMES = ("world", "camera")  # --frame choices; the first is the default


def write_mesh(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """One mesh as .obj or .ply (by suffix), vertices in metres as given, no re-processing."""
    import trimesh

    path = Path(path)
    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces, np.int64), process=False)
    file_type = path.suffix.lstrip(".").lower()
    if file_type not in ("obj", "ply"):
        raise InputError(f"mesh files must be .obj or .ply, got {path}")
    data = mesh.export(file_type=file_type)
    Path(path).write_bytes(data.encode() if isinstance(data, str) else data)


def rig_body_of(predictor: Any) -> Any | None:
    """The body to rig exports with: the predictor's output-mesh body when it is Anny (SMPL / toy: None)."""
    body = predictor.mesh_body
    return body if getattr(body, "name", "") == "anny" else None


def write_video_rigs(
    folder: str | Path,
    rows: dict[str, np.ndarray],
    body: Any,
    export_from_camera: np.ndarray,
    *,
    fps: float,
    num_frames: int,
    image_size: tuple[int, int],
    focal: tuple[float, float] | None = None,
) -> list[Path]:
    """A video's Anny tracks as ``rigged.glb`` (one skinned body per track, the clip as one animation,
    frame t at t / fps s) and ``track_XX.bvh`` per track. ``rows``: the per-person-frame arrays of
    ``params.npz`` (``frame``, ``track_id``, ``pose_rotmat``, ``shape``, ``translation``); ``focal`` (px)
    adds the camera. A track keeps its mean shape; in frames without it the pose is held (the glTF hides it,
    scale 0)."""
    from jotr.inference.rigging import anny_rig_track, write_bvh, write_rigged_gltf
    from jotr.viz.overlay import person_color

    folder = Path(folder)
    all_frames = np.arange(num_frames)
    tracks, written = [], []
    for tid in np.unique(rows["track_id"]):
        sel = np.flatnonzero(rows["track_id"] == tid)
        sel = sel[np.argsort(rows["frame"][sel], kind="stable")]
        fr = rows["frame"][sel]
        held = sel[np.clip(np.searchsorted(fr, all_frames, side="right") - 1, 0, len(sel) - 1)]
        track = anny_rig_track(
            body,
            rows["pose_rotmat"][held],
            rows["shape"][sel].mean(axis=0),
            rows["translation"][held],
            export_from_camera,
            present=np.isin(all_frames, fr),
            name=f"track_{int(tid):02d}",
            color=person_color(int(tid)),
        )
        tracks.append(track)
        written.append(write_bvh(folder / f"track_{int(tid):02d}.bvh", track, fps))
    camera = None
    if focal is not None:
        camera = {"export_from_camera": export_from_camera, "focal": focal, "image_size": image_size}
    written.append(write_rigged_gltf(folder / "rigged.glb", tracks, fps=fps, camera=camera))
    return written


def result_export_transform(results: Sequence[PersonResult], frame: str) -> np.ndarray:
    """(4, 4) camera frame -> export ``frame`` for one image's reconstructed people: identity for
    ``"camera"``; for ``"world"`` Y up, feet of the lowest person on y = 0, x = z = 0 under the mean pelvis
    (:func:`jotr.geometry.coords.world_from_camera`)."""
    from jotr.geometry.coords import export_from_camera

    if frame not in EXPORT_FRAMES:
        raise InputError(f"unknown export frame {frame!r} (choose {' or '.join(EXPORT_FRAMES)})")
    ok = [r for r in results if r.ok]
    if not ok:
        return np.eye(4)
    return export_from_camera(
        frame, np.concatenate([r.vertices for r in ok]), np.stack([r.translation for r in ok])
    )


def write_scene_glb(
    path: str | Path,
    results: Sequence[PersonResult],
    faces: np.ndarray,
    export_from_camera: np.ndarray,
    colors: Sequence[Sequence[float]] | None = None,
) -> Path:
    """Every reconstructed mesh, posed and coloured (the person's colour), in one binary glTF through
    trimesh; vertices mapped by ``export_from_camera`` (the same frame as the result's .obj / .ply).
    ``colors``: RGB in [0, 1] per reconstructed person (default :func:`jotr.viz.overlay.person_color`)."""
    import trimesh
    from trimesh.visual.material import PBRMaterial

    from jotr.geometry.coords import apply_rigid
    from jotr.viz.overlay import person_color

    ok = [r for r in results if r.ok]
    if not ok:
        raise InputError("no mesh to write into the 3D scene")
    scene = trimesh.Scene()
    for k, r in enumerate(ok):
        color = colors[k] if colors is not None else person_color(r.index)
        rgba = [*(int(round(255 * c)) for c in color), 255]
        material = PBRMaterial(baseColorFactor=rgba, metallicFactor=0.0, roughnessFactor=0.7)
        mesh = trimesh.Trimesh(
            apply_rigid(export_from_camera, r.vertices),
            np.asarray(faces, np.int64),
            visual=trimesh.visual.TextureVisuals(material=material),
            process=False,
        )
        scene.add_geometry(mesh, node_name=f"person_{r.index:02d}", geom_name=f"person_{r.index:02d}")
    path = Path(path)
    path.write_bytes(scene.export(file_type="glb"))
    return path


def write_rigged_results(
    path: str | Path,
    results: Sequence[PersonResult],
    body: Any,
    export_from_camera: np.ndarray,
    image_size: tuple[int, int],
) -> Path:
    """``rigged.glb``: every reconstructed person as a skinned Anny body in its estimated pose, plus the
    camera (see :mod:`jotr.inference.rigging`)."""
    from jotr.inference.rigging import anny_rig_track, write_rigged_gltf
    from jotr.viz.overlay import person_color

    ok = [r for r in results if r.ok]
    tracks = [
        anny_rig_track(
            body,
            r.pose_rotmat[None],
            r.shape,
            r.translation[None],
            export_from_camera,
            name=f"person_{r.index:02d}",
            color=person_color(r.index),
        )
        for r in ok
    ]
    camera = {"export_from_camera": export_from_camera, "focal": ok[0].focal, "image_size": image_size}
    return write_rigged_gltf(path, tracks, camera=camera)


def _list(a: np.ndarray | None) -> Any:
    return None if a is None else np.asarray(a, dtype=np.float64).round(6).tolist()


def results_to_json(results: Sequence[PersonResult], meta: dict[str, Any]) -> dict[str, Any]:
    """``params.json`` of one image: the metadata (:func:`jotr.inference.result_format.result_metadata`)
    and a ``people`` entry per input person -- the arrays of :data:`PERSON_KEYS` as nested lists, or its
    ``error`` (docs/results_format.md)."""
    from jotr.inference.result_format import PERSON_KEYS

    people = []
    for r in results:
        entry: dict[str, Any] = {"person_index": r.index, "error": r.error}
        if r.ok:
            entry.update({k: _list(getattr(r, k)) for k in PERSON_KEYS if k != "person_index"})
        people.append(entry)
    return {**meta, "people": people}


def results_to_arrays(
    results: Sequence[PersonResult], faces: np.ndarray | None = None, meta: dict[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """``params.npz`` arrays: the metadata (strings as 0-d arrays) and the :data:`PERSON_KEYS` arrays plus
    ``vertices`` of the reconstructed people stacked (leading axis P), and ``faces``."""
    from jotr.inference.result_format import PERSON_KEYS, meta_to_npz

    ok = [r for r in results if r.ok]
    arrays: dict[str, np.ndarray] = meta_to_npz(meta or {})
    arrays["person_index"] = np.array([r.index for r in ok], dtype=np.int64)
    for name in (*PERSON_KEYS[1:], "vertices"):
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
    frame: str = "world",
    rig_body: Any | None = None,
    predictor: Any | None = None,
) -> Path:
    """Write one image's outputs into ``folder`` atomically (staged folder, then rename).

    Files: ``overlay.png`` and ``side.png`` (when ``visualizer`` is given); with ``meshes``: per
    reconstructed person (XX = its input index) ``person_XX.obj`` / ``person_XX.ply``, all of them in
    ``scene.glb``, and -- with ``rig_body`` (the Anny body that made the meshes) -- ``rigged.glb`` (skinned,
    posed, with the camera); every mesh file in the export ``frame`` (``world`` or ``camera``, one transform
    for the whole result, stored in the params as ``export_from_camera``); ``params.json`` (every person,
    errors included) and ``params.npz`` (stacked arrays of the reconstructed people, plus ``faces``), with
    the metadata of docs/results_format.md (``predictor`` adds the body's names and the checkpoint)."""
    from jotr.geometry.coords import apply_rigid
    from jotr.inference.result_format import result_metadata

    ok = [r for r in results if r.ok]
    H, W = image.shape[:2]
    export = result_export_transform(results, frame)
    meta = result_metadata(
        predictor,
        kind="image",
        source=image_name,
        image_size=(W, H),
        focal=ok[0].focal if ok else None,
        princpt=ok[0].princpt if ok else None,
        export_frame=frame,
        export_from_camera=export,
        body_model=body_model,
    )
    meta.update(extra or {})
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
                labels=[str(r.index) for r in ok],
            )
            write_png(tmp / "overlay.png", ov.image)
            write_png(tmp / "side.png", ov.side)
        if meshes and ok:
            for r in ok:
                write_mesh(tmp / f"person_{r.index:02d}.obj", apply_rigid(export, r.vertices), faces)
                write_mesh(tmp / f"person_{r.index:02d}.ply", apply_rigid(export, r.vertices), faces)
            write_scene_glb(tmp / "scene.glb", ok, faces, export)
            if rig_body is not None:
                write_rigged_results(tmp / "rigged.glb", ok, rig_body, export, (W, H))
        write_json(tmp / "params.json", results_to_json(results, meta))
        write_npz(tmp / "params.npz", results_to_arrays(results, faces, meta))
    return Path(folder)
