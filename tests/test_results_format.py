"""Result files (docs/results_format.md): params.json and params.npz of `jotr demo` (an image and a video,
tiny toy-body checkpoint) read back by jotr.load_result -- same keys and values in both, meshes rebuilt from
the parameters -- and every key written is documented."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, TINY_MODEL

import jotr
from jotr.cli import main

W, H = 120, 100


def _person(rng, cx, cy):
    k = np.zeros((17, 3))
    k[:, 0] = cx + rng.uniform(-12, 12, 17)
    k[:, 1] = cy + np.linspace(-35, 35, 17)
    k[:, 2] = 0.9
    return k.reshape(-1).tolist()


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """`jotr demo` on one image (2 people, one of them bad) and a 3-frame video, with --video-meshes."""
    from jotr.config import JOTRConfig, merge_config
    from jotr.engine.checkpoint import save_checkpoint
    from jotr.models import build_model

    tmp = tmp_path_factory.mktemp("results")
    torch.manual_seed(0)
    cfg = merge_config(JOTRConfig(), {"body": {"kind": "toy"}, "model": TINY_MODEL})
    model = build_model(cfg, pretrained=False).eval()
    ckpt = save_checkpoint(tmp / "tiny.pt", model=model, cfg=cfg, step=0, rng=False, commit="test")
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp / "photo.png"), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    kp = [
        {"image_id": "photo", "category_id": 1, "score": 0.9, "keypoints": _person(rng, 40, 50)},
        {"image_id": "photo", "category_id": 1, "score": 0.9, "keypoints": [float("nan")] * 51},
    ]
    (tmp / "photo.json").write_text(json.dumps(kp))
    writer = cv2.VideoWriter(str(tmp / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    for _ in range(3):
        writer.write(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    writer.release()
    base = np.array(_person(rng, 60, 50)).reshape(17, 3)
    vkp = [
        {"image_id": t, "category_id": 1, "score": 0.9, "keypoints": (base + [t, 0, 0]).reshape(-1).tolist()}
        for t in range(3)
    ]
    (tmp / "clip.json").write_text(json.dumps(vkp))
    common = ["--checkpoint", str(ckpt), "--no-render", "--device", "cpu"]
    main(
        [
            "demo",
            str(tmp / "photo.png"),
            "--out",
            str(tmp / "out"),
            "--keypoints",
            str(tmp / "photo.json"),
            *common,
        ]
    )
    rc = main(
        [
            "demo",
            str(tmp / "clip.avi"),
            "--out",
            str(tmp / "out"),
            "--keypoints",
            str(tmp / "clip.json"),
            "--video-meshes",
            *common,
        ]
    )
    assert rc == 0
    return tmp / "out", ckpt


def _same(a, b):
    if isinstance(a, (list, tuple, np.ndarray)) and np.asarray(a).dtype.kind in "fi":
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), atol=1e-5)
    else:
        assert a == b


@pytest.mark.parametrize("name", ["photo", "clip"])
def test_json_and_npz_round_trip(outputs, name):
    from jotr.weights import file_sha256

    out, ckpt = outputs
    from_json = jotr.load_result(out / name / "params.json")
    from_npz = jotr.load_result(out / name / "params.npz")
    meta = from_json.meta
    assert meta["format"] == "jotr-result/1" and meta["jotr_version"] == jotr.__version__
    assert meta["kind"] == ("image" if name == "photo" else "video")
    assert meta["image_size"] == [W, H] and len(meta["focal"]) == 2 and len(meta["princpt"]) == 2
    assert meta["checkpoint"] == "tiny.pt" and meta["checkpoint_sha256"] == file_sha256(ckpt)
    assert len(meta["bone_names"]) == 24 and len(meta["shape_names"]) == 10 and len(meta["joint_names"]) == 30
    for key, value in meta.items():  # one set of key names; null values are left out of the npz
        if key == "frames":
            continue
        if value is None:
            assert key not in from_npz.meta
        else:
            _same(value, from_npz.meta[key])
    assert set(from_json.people) | {"vertices"} == set(from_npz.people) | (
        {"vertices"} if name == "photo" else set()
    )
    for key, value in from_json.people.items():
        _same(value, from_npz.people[key])
    # meshes rebuilt from the parameters = the stored meshes
    np.testing.assert_allclose(from_npz.vertices(), from_npz.people["vertices"], atol=1e-4)
    np.testing.assert_allclose(from_json.vertices(), from_npz.people["vertices"], atol=1e-4)
    if name == "photo":
        assert from_json.errors and from_json.errors[0]["person_index"] == 1  # the NaN person
        assert from_npz.people["person_index"].tolist() == [0]
    else:
        assert from_npz.people["frame"].tolist() == [0, 1, 2] and meta["num_frames"] == 3


def _documented_keys() -> set[str]:
    text = (REPO_ROOT / "docs" / "results_format.md").read_text()
    return set(re.findall(r"^\| `([a-z0-9_]+)` \|", text, flags=re.M))


def test_every_key_written_is_documented(outputs):
    out, _ = outputs
    documented = _documented_keys()
    assert {"format", "pose_rotmat", "export_from_camera", "vertices"} <= documented
    for name in ("photo", "clip"):
        data = json.loads((out / name / "params.json").read_text())
        written = set(data) | {k for person in data["people"] for k in person}
        with np.load(out / name / "params.npz") as npz:
            written |= set(npz.files)
        assert written <= documented, sorted(written - documented)
