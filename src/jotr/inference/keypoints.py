"""2D keypoint formats accepted by the predictor, their conversion to JOTR's 30-joint input set, and
   parsers for
keypoint files (COCO results JSON, COCO annotation JSON, OpenPose JSON).

Formats (``K`` joints, each row ``x, y, confidence`` in original image pixels):

``coco17``      MS-COCO keypoints (``jotr.body.joint_sets.COCO17``).
``openpose18``  OpenPose COCO-18 (COCO-17 plus a neck, in OpenPose's order).
``body25``      OpenPose BODY_25 (OpenPose-18 plus a mid-hip and six foot points).
``jotr30``      JOTR's input set itself (``jotr.body.joint_sets.JOTR30``).

Joints that a format lacks get confidence 0 (the network sees them as missing), and so does a negative
confidence; NaN/inf, confidences above ``MAX_CONFIDENCE`` and coordinates beyond ``MAX_COORDINATE`` px are
an :class:`InputError`. Two joints are derived as the
official code does when the format has no such joint: the pelvis = mean of the hips and the neck = mean of the
shoulders, each with the product of the two confidences."""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jotr.body.joint_sets import BODY25, COCO17, JOTR30, OPENPOSE18
from jotr.errors import InputError

OPENPOSE18_NAMES = OPENPOSE18.names
BODY25_NAMES = BODY25.names
# BODY_25's "MidHip" is the hip centre, i.e. the SMPL pelvis position used by the official pipeline.

FORMAT_NAMES: dict[str, tuple[str, ...]] = {
    "coco17": COCO17.names,
    "openpose18": OPENPOSE18_NAMES,
    "body25": BODY25_NAMES,
    "jotr30": JOTR30.names,
}
FORMAT_BY_COUNT = {len(v): k for k, v in FORMAT_NAMES.items()}
FORMAT_ALIASES = {
    "coco": "coco17",
    "openpose": "openpose18",
    "body_25": "body25",
    "op25": "body25",
    "op18": "openpose18",
    "jotr": "jotr30",
}

# Derived joints: target name -> the two source joints averaged (confidence = product).
DERIVED = {"Pelvis": ("L_Hip", "R_Hip"), "Neck": ("L_Shoulder", "R_Shoulder")}

CONFIDENCE_THRESHOLD = 0.05  # official test protocol: a joint is valid if its confidence exceeds this
MAX_CONFIDENCE = 1e3  # larger values are not confidences (COCO visibility flags are 0/1/2, scores ~[0, 1])
MAX_COORDINATE = 1e7  # |x|, |y| beyond this many pixels is corrupt data, not a position


def canonical_format(fmt: str | None, num_joints: int | None = None) -> str:
    """Normalise a format name, or infer it from the joint count when ``fmt`` is None / "auto"."""
    if fmt is not None and not isinstance(fmt, str):
        raise InputError(f"keypoint format must be a name such as 'coco17', got {fmt!r}")
    if fmt is None or fmt == "auto":
        if num_joints is None or num_joints not in FORMAT_BY_COUNT:
            raise InputError(
                f"cannot infer the keypoint format from {num_joints} joints; expected one of "
                f"{sorted(FORMAT_BY_COUNT)} ({', '.join(f'{n}={f}' for f, n in _counts())})"
            )
        return FORMAT_BY_COUNT[num_joints]
    key = FORMAT_ALIASES.get(fmt.lower(), fmt.lower())
    if key not in FORMAT_NAMES:
        raise InputError(f"unknown keypoint format {fmt!r}; known: {sorted(FORMAT_NAMES)}")
    return key


def _counts() -> list[tuple[str, int]]:
    return [(f, len(n)) for f, n in FORMAT_NAMES.items()]


def conversion_table(fmt: str) -> tuple[tuple[int, int], ...]:
    """Pairs (index in ``fmt``, index in jotr30) of joints with the same name."""
    names = FORMAT_NAMES[canonical_format(fmt)]
    return tuple((i, JOTR30.names.index(n)) for i, n in enumerate(names) if n in JOTR30.names)


def to_jotr30(keypoints: np.ndarray, fmt: str | None = None, *, name: str = "keypoints") -> np.ndarray:
    """(K, 3) or (K, 2) keypoints in ``fmt`` (inferred from K if None) -> (30, 3) jotr30 ``x, y, confidence``.

    Non-finite values are an :class:`InputError` naming ``name`` (missing joints must have confidence 0)."""
    kps = as_float_array(keypoints, name, "keypoints").copy()
    if kps.ndim != 2 or kps.shape[1] not in (2, 3):
        raise InputError(f"{name}: expected a (K, 3) array of x, y, confidence, got shape {kps.shape}")
    if kps.shape[1] == 2:
        kps = np.concatenate([kps, np.ones((len(kps), 1))], axis=1)
    try:
        fmt = canonical_format(fmt, len(kps))
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from None
    expected = len(FORMAT_NAMES[fmt])
    if len(kps) != expected:
        raise InputError(f"{name}: format {fmt} has {expected} joints, got {len(kps)}")
    if not np.isfinite(kps).all():
        bad = np.flatnonzero(~np.isfinite(kps).all(axis=1)).tolist()
        raise InputError(
            f"{name}: joints {bad} contain NaN/inf (mark missing joints with confidence 0 instead)"
        )
    # A negative confidence means "missing" (as 0); it must not turn valid in a derived joint's product.
    kps[:, 2] = np.maximum(kps[:, 2], 0.0)
    if (kps[:, 2] > MAX_CONFIDENCE).any():
        bad = np.flatnonzero(kps[:, 2] > MAX_CONFIDENCE).tolist()
        raise InputError(f"{name}: joints {bad} have confidences above {MAX_CONFIDENCE:g}, not a confidence")
    if (np.abs(kps[:, :2]) > MAX_COORDINATE).any():
        bad = np.flatnonzero((np.abs(kps[:, :2]) > MAX_COORDINATE).any(axis=1)).tolist()
        raise InputError(f"{name}: joints {bad} have coordinates beyond {MAX_COORDINATE:g} px")
    out = np.zeros((len(JOTR30), 3))
    for i_src, i_dst in conversion_table(fmt):
        out[i_dst] = kps[i_src]
    names = FORMAT_NAMES[fmt]
    for target, (a, b) in DERIVED.items():
        if target in names or a not in names or b not in names:
            continue
        pa, pb = kps[names.index(a)], kps[names.index(b)]
        out[JOTR30.index(target)] = [(pa[0] + pb[0]) / 2, (pa[1] + pb[1]) / 2, pa[2] * pb[2]]
    return out


# ---------------------------------------------------------------------------------------------- files


@dataclass
class PersonKeypoints:
    """Keypoints of one person read from a file."""

    keypoints: np.ndarray  # (K, 3) x, y image px, confidence
    fmt: str  # keypoint format of ``keypoints``
    box_xywh: np.ndarray | None = None  # (4,) detector box, image px, if the file has one
    score: float = math.nan  # detector score, if any


def as_float_array(values: Any, name: str, what: str) -> np.ndarray:
    """``values`` (array or nested lists of real numbers) -> float64 array; InputError naming ``name`` for
    strings, booleans, None, ragged lists or other objects (numpy would parse ``"1.5"`` or ``True``)."""
    if not isinstance(values, (list, tuple)) and hasattr(values, "__array__"):  # torch tensors, numpy scalars
        values = np.asarray(values)
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "iuf":
            raise InputError(f"{name}: {what} must be numbers, got an array of {values.dtype}")
        return values.astype(np.float64)
    if isinstance(values, (str, bytes, bool)) or values is None:
        raise InputError(f"{name}: {what} must be numbers, got {_short(values)}")
    try:
        arr = np.asarray(values, dtype=object)
    except (ValueError, TypeError) as exc:  # ragged nesting
        raise InputError(f"{name}: {what} must be a regular list of numbers ({exc})") from None
    flat = arr.reshape(-1)
    for v in flat:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise InputError(f"{name}: {what} must be numbers, got {_short(v)} in {_short(values)}")
    try:
        return arr.astype(np.float64)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputError(f"{name}: {what} must be numbers ({exc})") from None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_regular_file(path: Path, max_bytes: int, what: str) -> bytes:
    """The bytes of ``path``; InputError naming it when it is missing, not a regular file (a FIFO would block,
    ``/dev/zero`` never ends), or larger than ``max_bytes`` (checked before reading, and while reading)."""
    try:
        with open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NONBLOCK)) as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise InputError(f"{what} {path} is not a regular file")
            if st.st_size > max_bytes:
                raise InputError(f"{what} {path} is too large ({st.st_size} bytes; the limit is {max_bytes})")
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise InputError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise InputError(f"{what} {path} is too large (over {max_bytes} bytes)")
    return data


def _parse_int(text: str) -> int:
    from jotr.limits import MAX_JSON_INT_DIGITS

    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise InputError(f"an integer with {len(text)} digits (the limit is {MAX_JSON_INT_DIGITS})")
    return int(text)


def parse_json(raw: bytes, where: str) -> Any:
    """JSON bytes -> Python data; one-line InputError naming ``where`` for bad UTF-8, bad JSON, too deep
    nesting or integers longer than :data:`jotr.limits.MAX_JSON_INT_DIGITS` digits."""
    try:
        return json.loads(raw.decode("utf-8"), parse_int=_parse_int)
    except InputError as exc:
        raise InputError(f"{where} is not valid JSON: {exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        reason = "nested too deeply" if isinstance(exc, RecursionError) else " ".join(str(exc).split())
        raise InputError(f"{where} is not valid JSON: {reason}") from None


def _load_json(path: Path) -> Any:
    from jotr.limits import MAX_KEYPOINT_FILE_BYTES

    return parse_json(
        read_regular_file(path, MAX_KEYPOINT_FILE_BYTES, "keypoint file"), f"keypoint file {path}"
    )


def _flat_keypoints(values: Any, where: str) -> np.ndarray:
    if not isinstance(values, (list, tuple, np.ndarray)):
        raise InputError(f"{where}: keypoints must be a list of numbers, got {_short(values)}")
    arr = as_float_array(values, where, "keypoints").reshape(-1)
    if arr.size % 3 != 0 or arr.size == 0:
        raise InputError(
            f"{where}: keypoints must be a flat list of x, y, confidence triplets, got {arr.size} numbers"
        )
    return arr.reshape(-1, 3)


def _box(value: Any, where: str) -> np.ndarray | None:
    """A file's ``bbox`` entry: None when absent, else 4 finite numbers x, y, w, h (InputError otherwise)."""
    if value is None:
        return None
    box = as_float_array(value, where, "bbox")
    if box.shape != (4,) or not np.isfinite(box).all():
        raise InputError(f"{where}: bbox must be 4 finite numbers x, y, w, h, got {_short(value)}")
    return box


def _score(value: Any, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: score must be a number, got {_short(value)}")
    return float(value)


def _image_ref(value: Any, where: str, what: str = "image_id") -> str | int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InputError(f"{where}: {what} must be a number or a string, got {_short(value)}")
    return value


def _image_key(image_id: Any) -> str:
    return str(image_id)


def parse_coco_keypoints(
    data: Any, path: Path | str = "<coco>", fmt: str | None = None
) -> dict[str, list[PersonKeypoints]]:
    """COCO results (a list of ``{image_id, keypoints, score, [bbox]}``) or a COCO annotation file (``{images,
    annotations}``) -> ``{image key: [PersonKeypoints, ...]}``.

    Keys: for annotation files the image ``file_name`` (and its stem); for results lists ``str(image_id)``.
    Use :func:`match_image` to look up an image path."""
    names: dict[Any, str] = {}
    if isinstance(data, Mapping):
        if "annotations" not in data or not isinstance(data["annotations"], list):
            raise InputError(f"{path}: a COCO JSON object needs an 'annotations' list")
        images = data.get("images", [])
        if not isinstance(images, list):
            raise InputError(f"{path}: 'images' must be a list")
        for i, img in enumerate(images):
            if isinstance(img, Mapping) and "id" in img and "file_name" in img:
                where = f"{path} images[{i}]"
                names[_image_ref(img["id"], where, "id")] = str(
                    _image_ref(img["file_name"], where, "file_name")
                )
        entries = data["annotations"]
    elif isinstance(data, list):
        entries = data
    else:
        raise InputError(f"{path}: expected a COCO results list or a COCO annotation object")
    out: dict[str, list[PersonKeypoints]] = {}
    id_types: dict[str, str | int] = {}  # str(image_id) -> the first image_id seen with that text
    for i, entry in enumerate(entries):
        where = f"{path} entry {i}"
        if not isinstance(entry, Mapping) or "keypoints" not in entry or "image_id" not in entry:
            raise InputError(f"{where}: needs 'image_id' and 'keypoints'")
        image_id = _image_ref(entry["image_id"], where)
        kps = _flat_keypoints(entry["keypoints"], where)
        try:
            f = canonical_format(fmt, len(kps))
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        box_arr = _box(entry.get("bbox"), where)
        score = _score(entry.get("score"), where)
        first = id_types.setdefault(_image_key(image_id), image_id)
        if type(first) is not type(image_id):  # "1" and 1 must not silently become one image
            raise InputError(
                f"{where}: image_id {image_id!r} and image_id {first!r} of an earlier entry differ only in "
                "type (string vs number); use one type for image ids"
            )
        key = names.get(image_id, _image_key(image_id))
        out.setdefault(key, []).append(PersonKeypoints(kps, f, box_arr, score))
    return out


def parse_openpose(
    data: Any, path: Path | str = "<openpose>", fmt: str | None = None
) -> list[PersonKeypoints]:
    """One OpenPose JSON (``{"people": [{"pose_keypoints_2d": [...]}, ...]}``) -> persons (BODY_25 or
    COCO-18)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("people"), list):
        raise InputError(f"{path}: an OpenPose JSON needs a 'people' list")
    people = []
    for i, person in enumerate(data["people"]):
        where = f"{path} person {i}"
        if not isinstance(person, Mapping) or "pose_keypoints_2d" not in person:
            raise InputError(f"{where}: needs 'pose_keypoints_2d'")
        kps = _flat_keypoints(person["pose_keypoints_2d"], where)
        try:
            f = canonical_format(fmt, len(kps)) if fmt else {25: "body25", 18: "openpose18"}.get(len(kps))
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        if f is None:
            raise InputError(
                f"{where}: {len(kps)} keypoints; OpenPose JSON must hold BODY_25 (25) or COCO-18 (18)"
            )
        people.append(PersonKeypoints(kps, f))
    return people


OPENPOSE_SUFFIX = "_keypoints.json"


class KeypointSource:
    """Keypoints for a set of images, read from a COCO JSON file, an OpenPose JSON file, or a folder of
    OpenPose JSON files (``<stem>_keypoints.json`` as OpenPose writes them, or ``<stem>.json``)."""

    def __init__(self, path: str | Path, fmt: str | None = None) -> None:
        self.path = Path(path)
        self.fmt = fmt
        self._by_key: dict[str, list[PersonKeypoints]] = {}
        self._single: list[PersonKeypoints] | None = None
        self._folder: Path | None = None
        if self.path.is_dir():
            self._folder = self.path
        elif not self.path.exists():
            raise InputError(f"keypoint file not found: {self.path}")
        else:  # _load_json refuses FIFOs, devices and files over jotr.limits.MAX_KEYPOINT_FILE_BYTES
            data = _load_json(self.path)
            if isinstance(data, Mapping) and "people" in data:
                self._single = parse_openpose(data, self.path, fmt)
            else:
                self._by_key = parse_coco_keypoints(data, self.path, fmt)

    @property
    def single_image(self) -> bool:
        """True for one OpenPose JSON file: it holds the people of one image only."""
        return self._single is not None

    def for_image(self, image_path: str | Path) -> list[PersonKeypoints] | None:
        """The persons of one image, or None when the source has no entry for it."""
        image_path = Path(image_path)
        if self._single is not None:
            return self._single
        if self._folder is not None:
            for name in (image_path.stem + OPENPOSE_SUFFIX, image_path.stem + ".json"):
                p = self._folder / name
                if p.is_file():
                    return parse_openpose(_load_json(p), p, self.fmt)
            return None
        return match_image(self._by_key, image_path)


def match_image(
    by_key: Mapping[str, Sequence[PersonKeypoints]], image_path: Path
) -> list[PersonKeypoints] | None:
    """Find an image's entry by file name, stem, or the number ending the stem (COCO's ``000000123456.jpg``
       <->
    image id ``123456``; a video frame ``<video>_000000000012`` <-> id ``12``)."""
    for key in (image_path.name, image_path.stem, str(image_path)):
        if key in by_key:
            return list(by_key[key])
    for key, value in by_key.items():
        if Path(key).name == image_path.name:
            return list(value)
    digits = re.search(r"(\d+)$", image_path.stem)  # "000000123456" or "<video>_000000000012" -> id
    if digits is not None:
        key = str(int(digits.group(1)))
        if key in by_key:
            return list(by_key[key])
    return None
