"""Seeded fuzzing of the keypoint / box / JSON readers (issue 16): valid COCO-results, COCO-annotation
and OpenPose files are corrupted at random (bytes and structure), boxes and keypoint arrays drawn from a
palette of bad values. Every case must give a clear :class:`InputError` or a valid result -- never another
exception -- and the demo's per-image writer must leave either a complete output folder or none."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from jotr.config import JOTRConfig, merge_config
from jotr.errors import InputError

SEED = 20261202
NUM_FILE_CASES = 360
NUM_ARRAY_CASES = 240
NUM_WRITTEN = 12  # cases also run through the demo's per-image writer
W, H = 120, 100
TINY_MODEL = dict(
    backbone="resnet18",
    input_size=64,
    heatmap_size=16,
    d_model=32,
    nhead=2,
    ffn_dim_2d=64,
    ffn_dim_3d=64,
    ffn_dim_dec=64,
    dec_layers=1,
    enc_layers_2d=1,
    enc_layers_3d=1,
)
# values a corrupted file or a careless caller may put anywhere
PALETTE = [
    None,
    True,
    "abc",
    "1.5",
    "",
    -1,
    0,
    1e308,
    -1e308,
    float("nan"),
    float("inf"),
    10**400,
    [],
    {},
    [[1, 2], [3]],
    [[[[[[1]]]]]],
    {"x": 1},
    list(range(75)),
    [0.5] * 51,
    [-5.0] * 54,
]


@pytest.fixture(scope="module")
def predictor():
    from jotr.inference.predictor import JOTRPredictor
    from jotr.models import build_model

    torch.manual_seed(0)
    cfg = merge_config(JOTRConfig(), {"body": {"kind": "toy"}, "model": TINY_MODEL})
    return JOTRPredictor(build_model(cfg, pretrained=False), cfg, device="cpu")


def _person(rng: np.random.Generator, n: int, cx: float) -> list[float]:
    k = np.zeros((n, 3))
    k[:, 0] = cx + rng.uniform(-15, 15, n)
    k[:, 1] = np.linspace(20, 85, n)
    k[:, 2] = rng.uniform(0.3, 1.0, n)
    return k.round(2).reshape(-1).tolist()


def _templates(rng: np.random.Generator) -> list[object]:
    results = [
        {
            "image_id": 1,
            "category_id": 1,
            "keypoints": _person(rng, 17, 40),
            "score": 0.9,
            "bbox": [20, 15, 45, 75],
        },
        {"image_id": 1, "category_id": 1, "keypoints": _person(rng, 17, 85), "score": 0.8},
        {"image_id": 2, "category_id": 1, "keypoints": _person(rng, 17, 60), "score": 0.7},
    ]
    annotations = {
        "images": [{"id": 1, "file_name": "000000000001.jpg"}, {"id": 2, "file_name": "000000000002.jpg"}],
        "annotations": [{"image_id": 1, "keypoints": _person(rng, 17, 50), "bbox": [30, 15, 40, 75]}],
    }
    openpose = {
        "version": 1.3,
        "people": [{"pose_keypoints_2d": _person(rng, 25, 45)}, {"pose_keypoints_2d": _person(rng, 18, 80)}],
    }
    return [results, annotations, openpose]


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list) and len(node) <= 8:  # not into each keypoint number
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _set(node: object, path: tuple, value: object, delete: bool) -> object:
    if not path:
        return value
    parent = node
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    elif delete and isinstance(parent, list):
        parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    return node


def _structural(rng: np.random.Generator, data: object) -> bytes:
    data = copy.deepcopy(data)
    for _ in range(int(rng.integers(1, 3))):
        paths = _paths(data)
        path = paths[int(rng.integers(len(paths)))]
        op = rng.random()
        if op < 0.15 and path:
            data = _set(data, path, None, delete=True)
        elif op < 0.35:  # a keypoint list of the wrong length / with a bad element
            kps = [p for p in paths if p and p[-1] in ("keypoints", "pose_keypoints_2d", "bbox")]
            if kps:
                p = kps[int(rng.integers(len(kps)))]
                target = data
                for key in p:
                    target = target[key]
                if isinstance(target, list) and target:
                    target = list(target)
                    if rng.random() < 0.5:
                        target[int(rng.integers(len(target)))] = PALETTE[int(rng.integers(len(PALETTE)))]
                    else:
                        target = target[: int(rng.integers(len(target)))]
                    data = _set(data, p, target, delete=False)
        else:
            data = _set(data, path, copy.deepcopy(PALETTE[int(rng.integers(len(PALETTE)))]), delete=False)
    return json.dumps(data).encode()


def _bytewise(rng: np.random.Generator, blob: bytes) -> bytes:
    b = bytearray(blob)
    op = int(rng.integers(5))
    i = int(rng.integers(len(b)))
    if op == 0:
        return bytes(b[:i])  # truncated
    if op == 1:
        for _ in range(int(rng.integers(1, 8))):
            b[int(rng.integers(len(b)))] = int(rng.integers(256))
        return bytes(b)
    if op == 2:
        return bytes(
            b[:i] + rng.integers(0, 256, int(rng.integers(1, 20))).astype(np.uint8).tobytes() + b[i:]
        )
    if op == 3:
        j = min(len(b), i + int(rng.integers(1, 40)))
        return bytes(b[:i] + b[j:])
    return bytes(b[:i] + b"[" * 100000 + b[i:])  # deep nesting


def _check_prepared(p) -> None:
    assert np.isfinite(p.crop).all() and np.isfinite(p.keypoints_hm).all()
    assert np.isfinite(p.box).all() and p.box[2] > 0 and p.box[3] > 0
    assert set(np.unique(p.valid)) <= {0.0, 1.0}


def _read_and_prepare(path: Path, predictor, images: list[Path], image: np.ndarray) -> str:
    """'error' (InputError somewhere) or 'ok'; any other exception propagates (the test fails)."""
    from jotr.inference.keypoints import KeypointSource
    from jotr.inference.predictor import PersonInput

    try:
        source = KeypointSource(path)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
        return "error"
    outcome = "ok"
    for img in images:
        try:
            people = source.for_image(img)
        except InputError:
            outcome = "error"
            continue
        for i, person in enumerate(people or []):
            try:
                _check_prepared(
                    predictor.prepare(
                        image,
                        PersonInput(
                            keypoints=person.keypoints, keypoint_format=person.fmt, box_xywh=person.box_xywh
                        ),
                        f"{img} person {i}",
                    )
                )
            except InputError:
                outcome = "error"
    return outcome


@pytest.fixture(scope="module")
def image_files(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("fuzz_images")
    rng = np.random.default_rng(0)
    paths = []
    for i in (1, 2):
        p = d / f"{i:012d}.jpg"
        cv2.imwrite(str(p), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
        paths.append(p)
    return paths


def test_fuzz_keypoint_files(predictor, image_files, tmp_path):
    from jotr.commands.demo import default_args, make_people_source, process_image

    rng = np.random.default_rng(SEED)
    image = cv2.cvtColor(cv2.imread(str(image_files[0])), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    templates = _templates(rng)
    outcomes = {"ok": 0, "error": 0}
    written = 0
    args = default_args(no_meshes=True)
    for case in range(NUM_FILE_CASES):
        template = templates[case % len(templates)]
        blob = json.dumps(template).encode()
        blob = _structural(rng, template) if rng.random() < 0.6 else _bytewise(rng, blob)
        path = tmp_path / f"case_{case:03d}.json"
        path.write_bytes(blob)
        try:
            outcome = _read_and_prepare(path, predictor, image_files, image)
        except Exception as exc:  # noqa: BLE001 - the failure message names the case
            raise AssertionError(f"case {case}: {type(exc).__name__}: {exc}\n{blob[:300]!r}") from exc
        outcomes[outcome] += 1
        if written < NUM_WRITTEN and (outcome == "ok" or case % 7 == 0):
            written += 1
            out = tmp_path / f"out_{case:03d}"
            try:
                source = make_people_source(str(path), None)
            except InputError:
                continue
            failures = process_image(image_files[0], predictor, source, out / "img", None, args)
            assert all(isinstance(f, str) and f for f in failures)
            if (out / "img").exists():  # complete: parameters written, no staging leftovers
                assert {"params.json", "params.npz"} <= {p.name for p in (out / "img").iterdir()}
                json.loads((out / "img" / "params.json").read_text())
            leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")] if out.exists() else []
            assert leftovers == [], (case, leftovers)
    # the corruption must exercise both outcomes substantially
    assert outcomes["ok"] >= 30 and outcomes["error"] >= 100, outcomes
    assert written == NUM_WRITTEN


def test_fuzz_boxes_and_keypoint_arrays(predictor):
    from jotr.inference.predictor import PersonInput

    rng = np.random.default_rng(SEED + 1)
    image = np.full((H, W, 3), 0.5, np.float32)
    bad = 0
    for case in range(NUM_ARRAY_CASES):
        kind = case % 3
        if kind == 0:  # boxes: mostly numbers, sometimes a palette value in some position
            box: object = (
                np.array([rng.uniform(-20, W), rng.uniform(-20, H), *rng.uniform(-5, 90, 2)])
                * rng.choice([1, 1, 1, 1e-3, 1e3, 1e12])
            ).tolist()
            if rng.random() < 0.5:
                box = list(box)
                box[int(rng.integers(4))] = PALETTE[int(rng.integers(len(PALETTE)))]
            if rng.random() < 0.1:
                box = PALETTE[int(rng.integers(len(PALETTE)))]
            person = PersonInput(box_xywh=box)
        elif kind == 1:  # keypoint arrays of random shape/content
            n = int(rng.choice([17, 17, 18, 25, 30, 3, 0, 16]))
            kps = rng.normal(60, 20, (n, 3))
            kps[:, 2] = rng.choice([-1.0, 0.0, 0.5, 1.0, 2.0], n, p=[0.1, 0.1, 0.3, 0.4, 0.1])
            if rng.random() < 0.3 and n:
                kps[int(rng.integers(n)), int(rng.integers(3))] = rng.choice([np.nan, np.inf, -1e300, 1e300])
            fmt = [None, None, None, "coco17", "bogus"][int(rng.integers(5))]
            person = PersonInput(keypoints=kps, keypoint_format=fmt)
        else:  # both, as lists that may hold junk
            kps = rng.normal(60, 20, (17, 3)).tolist()
            kps[int(rng.integers(17))][int(rng.integers(3))] = PALETTE[int(rng.integers(len(PALETTE)))]
            person = PersonInput(keypoints=kps, box_xywh=[10, 10, 50, 80])
        try:
            _check_prepared(predictor.prepare(image, person, f"case {case}"))
        except InputError as exc:
            assert str(exc).startswith(f"case {case}") and "\n" not in str(exc), str(exc)
            bad += 1
        except Exception as exc:  # noqa: BLE001
            raise AssertionError(f"case {case}: {type(exc).__name__}: {exc} ({person!r})") from exc
    assert 30 <= bad <= NUM_ARRAY_CASES - 30, bad  # both outcomes exercised


# ------------------------------------------------------------------------------- configs (issue 24)

NUM_CONFIG_CASES = 120
NUM_WEB_CASES = 60


def _config_text(rng: np.random.Generator, base: str) -> bytes:
    """A shipped config, corrupted: YAML bombs and anchors, deep nesting, binary bytes, palette values at
    random keys, or byte-level damage."""
    import yaml

    op = int(rng.integers(7))
    if op == 0:  # alias bomb of random width/depth
        width, depth = int(rng.integers(2, 10)), int(rng.integers(2, 9))
        lines = ['a0: &a0 ["x"]'] + [
            f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, depth)
        ]
        return "\n".join(lines).encode()
    if op == 1:  # recursion: deep flow or block nesting
        n = int(rng.integers(200, 20000))
        return (
            (b"train: " + b"[" * n + b"]" * n)
            if rng.random() < 0.5
            else ("a:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(min(n, 3000)))).encode()
        )
    if op == 2:  # binary
        return rng.integers(0, 256, int(rng.integers(1, 4000))).astype(np.uint8).tobytes()
    if op == 3:  # an anchor/alias or merge key inside a valid config
        return (base + "\nextra: &x {lr: 1}\ntrain:\n  <<: *x\n").encode()
    data = yaml.safe_load(base)
    if op in (4, 5):  # palette values at random keys (known or not)
        for _ in range(int(rng.integers(1, 4))):
            section = ["model", "loss", "data", "train", "body", "eval", "bogus"][int(rng.integers(7))]
            keys = list((data.get(section) or {}).keys()) + ["nhead", "dropout", "seed", "num_workers"]
            value = PALETTE[int(rng.integers(len(PALETTE)))]
            if isinstance(data.setdefault(section, {}), dict):
                data[section][keys[int(rng.integers(len(keys)))]] = value
        return yaml.safe_dump(data).encode()
    return _bytewise(rng, base.encode())


def test_fuzz_config_files(tmp_path):
    import time

    from jotr.config import load_config, resolve_config_path
    from jotr.errors import ConfigError

    base = resolve_config_path("synthetic_small").read_text()
    rng = np.random.default_rng(SEED + 1)
    outcomes = {"ok": 0, "error": 0}
    path = tmp_path / "fuzz.yaml"
    for case in range(NUM_CONFIG_CASES):
        path.write_bytes(_config_text(rng, base))
        start = time.perf_counter()
        try:
            load_config([str(path)])
            outcomes["ok"] += 1
        except ConfigError as exc:  # an InputError: one line naming the problem
            assert str(exc) and "\n" not in str(exc), (case, str(exc))
            outcomes["error"] += 1
        assert time.perf_counter() - start < 10.0, case
    assert outcomes["error"] > NUM_CONFIG_CASES // 2 and outcomes["ok"] > 0, outcomes


# ------------------------------------------------------------------------- web payloads (issue 24)


def _web_payload(rng: np.random.Generator, good_path: str, folder: Path) -> object:
    if rng.random() < 0.6:  # the usual payload: the request goes on to the handler
        return {"path": good_path, "orig_name": Path(good_path).name}
    choices = [
        None,
        "",
        good_path,
        {"path": good_path, "orig_name": PALETTE[int(rng.integers(len(PALETTE)))]},
        {"path": PALETTE[int(rng.integers(len(PALETTE)))], "orig_name": "a.png"},
        {"path": "/etc/passwd", "orig_name": "passwd"},
        {"path": str(folder / ".." / ".." / "x.png")},
        {"orig_name": "a.png"},
        {"path": good_path, "orig_name": ""},
        [good_path],
        12,
        {"path": str(folder), "orig_name": "folder"},
    ]
    return choices[int(rng.integers(len(choices)))]


def test_fuzz_web_request_payloads(predictor, image_files, tmp_path):
    from jotr.web.handlers import Limits, WebDemo, uploaded_file

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    rng = np.random.default_rng(SEED + 2)
    image = uploads / "img.jpg"
    image.write_bytes(image_files[0].read_bytes())
    templates = _templates(rng)
    formats = [None, "auto", "coco17", "body25", "bogus", 5, "", "jotr30"]
    handled = 0
    with WebDemo(predictor, tmp_path / "work", Limits(timeout_s=30), render=False) as demo:
        for case in range(NUM_WEB_CASES):
            kp = uploads / f"kp{case}.json"
            blob = json.dumps(templates[case % 3]).encode()
            kp.write_bytes(_structural(rng, templates[case % 3]) if case % 2 else _bytewise(rng, blob))
            try:
                image_path, image_name = uploaded_file(_web_payload(rng, str(image), uploads), [uploads])
                kp_path, _ = uploaded_file(_web_payload(rng, str(kp), uploads), [uploads])
            except InputError as exc:
                assert "\n" not in str(exc)
                continue
            fmt = formats[int(rng.integers(len(formats)))]
            result = demo.reconstruct(image_path, kp_path, fmt, image_name=image_name)  # never raises
            handled += 1
            assert "internal error" not in result.message, (case, result.message)
            if result.ok:
                assert all(np.isfinite(r.vertices).all() for r in result.results if r.ok)
    assert handled > NUM_WEB_CASES // 4, handled
