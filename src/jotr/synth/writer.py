"""Write a synthetic split to disk: ``DIR/images/<split>/<index>.jpg`` and ``DIR/<split>.json``
(docs/synthetic_format.md).

Output policy and atomicity: an existing split (``DIR/<split>.json`` or a non-empty ``DIR/images/<split>/``)
is refused unless ``force`` (and even then an image folder that jotr did not create, one without
:data:`jotr.utils.io.MARKER`, is never replaced). Images and the JSON are written into a hidden staging
folder ``DIR/.<split>.jotr-<host>-<pid>.<random>.partial/`` and published at the end: the old JSON and images
are moved aside, the new image folder is renamed into place, then the new JSON (renames, no copies). A killed
run leaves only the staging folder (removed by the next ``synth`` into ``DIR``), never images without their
JSON or a JSON that points at missing or foreign images; existing data stays untouched until the run ends.
Determinism: scene ``i`` draws only from ``(seed, family, i)`` and torch runs single-threaded while
generating, so the JSON is byte-identical for a given seed whatever the number of workers.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jotr.body.joint_sets import get_joint_set
from jotr.errors import InputError
from jotr.synth.photos import describe_photos, find_photos
from jotr.synth.scene import FAMILIES, GT_JOINT_SETS, VISIBILITY_NAMES, SceneGenerator, SynthOptions
from jotr.utils.io import atomic_save, check_new_output, clean_stale_temporaries, mark_output, temp_prefix

log = logging.getLogger(__name__)

FORMAT_VERSION = 4  # 4: contact shadows only on photographs (3 drew whole-body shadows onto them)
FLOAT_DECIMALS = 6


@dataclass(frozen=True)
class SplitSummary:
    json_path: str
    num_images: int
    num_annotations: int
    seconds: float
    images_per_second: float
    target_visible_fraction: float  # mean over targets


def to_jsonable(obj: Any, decimals: int = FLOAT_DECIMALS) -> Any:
    """numpy arrays/scalars -> nested lists of Python numbers, floats rounded to ``decimals``."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, decimals) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, decimals) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), decimals)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = round(float(obj), decimals)
        return 0.0 if value == 0.0 else value  # no "-0.0"
    return obj


def _encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", image[..., ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def write_file(path: str | Path, data: bytes) -> None:
    """Atomic write, readable by everyone (``0o644``; the temporary file of the atomic write is private)."""

    def writer(tmp: Path) -> None:
        tmp.write_bytes(data)
        os.chmod(tmp, 0o644)

    atomic_save(path, writer)


# Per-process generator of the pool workers (set by _init_worker in each worker process only).
_WORKER: dict[str, Any] = {}


def _init_worker(options: SynthOptions) -> None:
    _WORKER["generator"] = SceneGenerator(options)


def _make_one(generator: SceneGenerator, task: tuple[str, int, int, str, str]) -> dict[str, Any]:
    family, seed, index, image_path, file_name = task
    scene = generator.generate(family, seed, index)
    write_file(image_path, _encode_jpeg(scene.image, generator.options.jpeg_quality))
    return to_jsonable({"image": scene.image_info, "persons": scene.persons, "file_name": file_name})


def _work(task: tuple[str, int, int, str, str]) -> dict[str, Any]:
    return _make_one(_WORKER["generator"], task)


def _worker_labels() -> tuple[str, ...]:
    return tuple(_WORKER["generator"].labels)


def dataset_info(family: str, num: int, seed: int, options: SynthOptions, pose_joint_names: tuple[str, ...]):
    return {
        "description": "jotr synthetic occluded people",
        "format_version": FORMAT_VERSION,
        "family": family,
        "num_images": num,
        "seed": seed,
        "options": asdict(options),
        "body_model": {
            "kind": "anny",
            "rig": options.rig,
            "rendered_topology": options.topology,
            "pose_joint_names": list(pose_joint_names),
            "shape_names": ["gender", "age", "muscle", "weight", "height", "proportions"],
        },
        "backgrounds": describe_photos(find_photos(options.backgrounds), options.backgrounds),
        "joint_sets": {name: list(get_joint_set(name).names) for name in GT_JOINT_SETS},
        "visibility_codes": {name: code for code, name in enumerate(VISIBILITY_NAMES)},
        "coordinate_frames": {
            "camera": "x right, y down, z forward, metres; X_cam = R X_world + t",
            "world": "gravity-aligned: x right, y down, z forward; ground plane y = 0",
            "image": "pixels, (x, y), pixel centres at integer coordinates",
        },
    }


def write_split(
    out_dir: str | Path,
    family: str,
    num: int,
    seed: int = 0,
    *,
    workers: int = 1,
    options: SynthOptions | None = None,
    split: str | None = None,
    progress: bool = True,
    generator: SceneGenerator | None = None,
    force: bool = False,
) -> SplitSummary:
    """Generate ``num`` scenes of ``family`` into ``out_dir``; returns a summary with the throughput.

    ``split`` names the JSON/image folder (default: the family). ``generator`` reuses an existing in-process
    generator (``workers <= 1`` only; tests use it to avoid re-loading the body model). ``force`` replaces an
    existing split of that name (see the module docstring); without it an existing split is an InputError.
    """
    options = options if options is not None else SynthOptions()
    if family not in FAMILIES:
        raise InputError(f"synth: unknown split family {family!r}; choose one of {', '.join(FAMILIES)}")
    if isinstance(num, bool) or not isinstance(num, int) or num <= 0:
        raise InputError(f"synth: --num must be a positive integer, got {num!r}")
    if not isinstance(family, str) or not isinstance(workers, int) or not isinstance(seed, int):
        raise InputError(
            f"synth: family must be a name, seed and workers integers; got {family!r}, {seed!r}, {workers!r}"
        )
    split = split or family
    out = Path(out_dir)
    json_path = out / f"{split}.json"
    image_dir = out / "images" / split
    hint = "pass --force to replace it (or choose another --name / --out)"
    check_new_output(json_path, "synth: split file", force=force, hint=hint)
    if image_dir.is_symlink() or image_dir.exists() and (not image_dir.is_dir() or any(image_dir.iterdir())):
        check_new_output(image_dir, "synth: image folder", force=force, hint=hint)
    try:
        out.mkdir(parents=True, exist_ok=True)
        clean_stale_temporaries(out)  # staging folders of killed runs (jotr's marker only)
        staging = Path(tempfile.mkdtemp(prefix=temp_prefix(split), suffix=".partial", dir=out))
    except OSError as exc:
        raise InputError(f"synth: cannot create output folder {out}: {exc}") from exc
    try:
        mark_output(staging, "staging")
        summary = _generate(staging, out, family, num, seed, workers, options, split, progress, generator)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return summary


def _generate(
    staging: Path,
    out: Path,
    family: str,
    num: int,
    seed: int,
    workers: int,
    options: SynthOptions,
    split: str,
    progress: bool,
    generator: SceneGenerator | None,
) -> SplitSummary:
    """:func:`write_split` inside the staging folder, then publish (module docstring)."""
    json_path = out / f"{split}.json"
    image_dir = out / "images" / split
    staged_images = staging / "images"
    staged_images.mkdir()
    mark_output(staged_images, "synthetic images")
    tasks = [
        (family, int(seed), i, str(staged_images / f"{i:06d}.jpg"), f"{split}/{i:06d}.jpg")
        for i in range(num)
    ]
    from tqdm import tqdm

    start = time.perf_counter()
    bar = tqdm(total=num, desc=f"synth {split}", unit="img", disable=not progress)
    results: list[dict[str, Any]] = []
    own_generator = None
    try:
        if workers <= 1:
            gen = generator
            if gen is None:
                gen = own_generator = SceneGenerator(options)
            elif gen.options != options:
                raise InputError("synth: the given generator was built with different options")
            pose_names = tuple(gen.labels)
            for task in tasks:
                results.append(_make_one(gen, task))
                bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")  # fresh processes: no inherited OpenGL/torch state
            with ctx.Pool(workers, initializer=_init_worker, initargs=(options,)) as pool:
                pose_names = pool.apply(_worker_labels)
                for result in pool.imap(_work, tasks, chunksize=1):
                    results.append(result)
                    bar.update(1)
    finally:
        bar.close()
        if own_generator is not None:
            own_generator.close()
    seconds = time.perf_counter() - start

    images, annotations = [], []
    for i, res in enumerate(results):
        image_id = i + 1
        images.append({"id": image_id, "file_name": res["file_name"], **res["image"]})
        for p in res["persons"]:
            annotations.append({"id": image_id * 100 + p["person_index"] + 1, "image_id": image_id, **p})
    document = {
        "info": to_jsonable(dataset_info(family, num, int(seed), options, pose_names)),
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": 1, "name": "person", "keypoints": list(get_joint_set("coco17").names), "skeleton": []}
        ],
    }
    staged_json = staging / json_path.name
    write_file(staged_json, json.dumps(document, separators=(",", ":")).encode("utf-8"))
    # Publish: old JSON aside first (it must never describe the new images), old images aside, new ones in,
    # new JSON last.
    if json_path.exists():
        os.replace(json_path, staging / "old.json")
    if image_dir.exists():
        os.replace(image_dir, staging / "old_images")
    image_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged_images, image_dir)
    os.replace(staged_json, json_path)
    targets = [a["visible_fraction"] for a in annotations if a["is_target"]]
    summary = SplitSummary(
        json_path=str(json_path),
        num_images=num,
        num_annotations=len(annotations),
        seconds=seconds,
        images_per_second=num / max(seconds, 1e-9),
        target_visible_fraction=float(np.mean(targets)) if targets else float("nan"),
    )
    log.info(
        "wrote %s: %d images, %d persons, %.2f images/s",
        json_path,
        num,
        len(annotations),
        summary.images_per_second,
    )
    return summary
