"""``jotr demo`` end to end on a tiny random-weight checkpoint (toy body, small config): images with
   keypoint files,
a corrupt image, a video; atomic per-image outputs and the exit status."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from jotr.cli import main
from jotr.config import JOTRConfig
from jotr.models.config import ModelConfig

W, H = 120, 100


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from conftest import toy_demo_checkpoint

    return toy_demo_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


def _coco_person(rng, cx, cy):
    k = np.zeros((17, 3))
    k[:, 0] = cx + rng.uniform(-15, 15, 17)
    k[:, 1] = cy + np.linspace(-35, 35, 17)
    k[:, 2] = 0.9
    return k.reshape(-1).tolist()


def _rendering() -> bool:
    from jotr.viz.renderer import rendering_available

    return rendering_available()[0]


def test_demo_images_keypoints_and_bad_inputs(tiny_checkpoint, tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    images.mkdir()
    for i in (1, 2):
        cv2.imwrite(str(images / f"{i:012d}.jpg"), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    (images / "000000000003.png").write_bytes(b"corrupt, not a png")
    bad_person = np.full(17 * 3, np.nan).tolist()
    results = [
        {"image_id": 1, "category_id": 1, "keypoints": _coco_person(rng, 40, 50), "score": 0.9},
        {"image_id": 1, "category_id": 1, "keypoints": _coco_person(rng, 85, 50), "score": 0.9},
        {"image_id": 2, "category_id": 1, "keypoints": _coco_person(rng, 60, 50), "score": 0.9},
        {"image_id": 2, "category_id": 1, "keypoints": bad_person, "score": 0.1},
        {"image_id": 3, "category_id": 1, "keypoints": _coco_person(rng, 60, 50), "score": 0.9},
    ]
    kp_file = tmp_path / "results.json"
    kp_file.write_text(json.dumps(results))
    out = tmp_path / "out"
    args = [
        "demo",
        str(images),
        "--checkpoint",
        str(tiny_checkpoint),
        "--out",
        str(out),
        "--keypoints",
        str(kp_file),
    ]
    if not _rendering():
        args.append("--no-render")
    rc = main(args)
    assert rc == 1  # the corrupt image and the NaN person failed, the rest was processed
    err = capsys.readouterr().err
    assert "000000000003.png" in err and "person 1" in err
    first = out / "000000000001"
    expected = {
        ".jotr-output",  # jotr's marker: the output policy replaces (with --force) only folders jotr made
        "params.json",
        "params.npz",
        "person_00.obj",
        "person_00.ply",
        "person_01.obj",
        "person_01.ply",
        "scene.glb",  # no rigged.glb: the toy body is not Anny
    }
    if _rendering():
        expected |= {"overlay.png", "side.png"}
    assert {p.name for p in first.iterdir()} == expected
    params = json.loads((first / "params.json").read_text())
    assert len(params["people"]) == 2 and params["body_model"] == "toy"
    assert len(params["people"][0]["joints_img"]) == 30
    npz = np.load(first / "params.npz")
    assert npz["vertices"].shape[:1] == (2,) and npz["faces"].shape[1] == 3
    second = json.loads((out / "000000000002" / "params.json").read_text())
    assert second["people"][1]["error"] is not None and "NaN" in second["people"][1]["error"]
    assert not (out / "000000000002" / "person_01.obj").exists()
    # Nothing for the corrupt image and no staging leftovers.
    assert sorted(p.name for p in out.iterdir()) == ["000000000001", "000000000002"]
    if _rendering():
        overlay = cv2.imread(str(first / "overlay.png"))
        assert overlay.shape == (H, W, 3)


def test_demo_missing_keypoints_and_detector(tiny_checkpoint, tmp_path, capsys):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.zeros((H, W, 3), np.uint8))
    kp_file = tmp_path / "empty.json"
    kp_file.write_text("[]")
    out = tmp_path / "out"
    rc = main(
        [
            "demo",
            str(img),
            "--checkpoint",
            str(tiny_checkpoint),
            "--out",
            str(out),
            "--keypoints",
            str(kp_file),
            "--no-render",
        ]
    )
    assert rc == 1 and "no keypoints" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
    # No --keypoints: the built-in detector runs, finds nobody in a black image, and says so.
    rc = main(["demo", str(img), "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--no-render"])
    captured = capsys.readouterr()
    assert rc == 1 and "the built-in detector found nobody" in captured.err
    assert "0 detected -> 0 reconstructed" in captured.out
    rc = main(
        [
            "demo",
            str(img),
            "--checkpoint",
            str(tmp_path / "nope.pt"),
            "--out",
            str(out),
            "--keypoints",
            str(kp_file),
        ]
    )
    assert rc == 2 and "checkpoint not found" in capsys.readouterr().err


def test_demo_video_with_smoothing(tiny_checkpoint, tmp_path):
    rng = np.random.default_rng(1)
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    for _ in range(4):
        writer.write(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    writer.release()
    base = np.array(_coco_person(rng, 60, 50)).reshape(17, 3)
    results = [
        {
            "image_id": t,
            "category_id": 1,
            "score": 0.9,
            "keypoints": (base + [t * 1.5, 0, 0]).reshape(-1).tolist(),
        }
        for t in range(4)
    ]
    kp_file = tmp_path / "results.json"
    kp_file.write_text(json.dumps(results))
    out = tmp_path / "out"
    args = [
        "demo",
        str(video),
        "--checkpoint",
        str(tiny_checkpoint),
        "--out",
        str(out),
        "--keypoints",
        str(kp_file),
        "--smooth",
        "one-euro",
    ]
    if not _rendering():
        args.append("--no-render")
    assert main(args) == 0
    npz = np.load(out / "clip" / "params.npz")
    assert npz["frame"].tolist() == [0, 1, 2, 3]
    assert npz["track_id"].tolist() == [0, 0, 0, 0]
    R = npz["pose_rotmat"]
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-4)
    meta = json.loads((out / "clip" / "params.json").read_text())
    assert meta["smoothing"] == "one-euro" and len(meta["frames"]) == 4
    if _rendering():
        cap = cv2.VideoCapture(str(out / "clip" / "overlay.mp4"))
        assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
        cap.release()


@pytest.fixture(scope="module")
def anny_checkpoint(tmp_path_factory, anny_cache_env):
    """A random-weight checkpoint of the small config on the Anny body (the embedded default)."""
    from jotr.engine.checkpoint import save_checkpoint
    from jotr.models import build_model

    torch.manual_seed(0)
    cfg = JOTRConfig(model=ModelConfig.small())
    model = build_model(cfg, pretrained=False).eval()
    path = tmp_path_factory.mktemp("anny_ckpt") / "anny_tiny.pt"
    return save_checkpoint(path, model=model, cfg=cfg, step=0, rng=False, commit="test")


def test_demo_video_rigged_exports(anny_checkpoint, tmp_path):
    """A 4-frame video on the Anny body: rigged.glb (one animated skinned track) and track_00.bvh."""
    import pygltflib

    rng = np.random.default_rng(2)
    video = tmp_path / "walk.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    for _ in range(4):
        writer.write(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    writer.release()
    base = np.array(_coco_person(rng, 60, 50)).reshape(17, 3)
    kp = [
        {"image_id": t, "category_id": 1, "score": 0.9, "keypoints": (base + [t, 0, 0]).reshape(-1).tolist()}
        for t in range(4)
    ]
    (tmp_path / "kp.json").write_text(json.dumps(kp))
    out = tmp_path / "out"
    args = ["demo", str(video), "--checkpoint", str(anny_checkpoint), "--out", str(out)]
    args += ["--keypoints", str(tmp_path / "kp.json"), "--no-render", "--device", "cpu"]
    assert main(args) == 0
    folder = out / "walk"
    assert {"rigged.glb", "track_00.bvh", "params.json", "params.npz"} <= {p.name for p in folder.iterdir()}
    gltf = pygltflib.GLTF2().load(str(folder / "rigged.glb"))
    assert len(gltf.skins) == 1 and len(gltf.animations) == 1
    times = gltf.accessors[gltf.animations[0].samplers[0].input]
    assert times.count == 4 and times.max[0] == pytest.approx(0.3)  # 4 frames at 10 fps
    bvh = (folder / "track_00.bvh").read_text()
    assert "Frames: 4" in bvh and "Frame Time: 0.100000" in bvh
    assert json.loads((folder / "params.json").read_text())["export_frame"] == "world"


def test_demo_synthetic_with_given_checkpoint(anny_checkpoint, tmp_path, capsys, monkeypatch):
    """The embedded-default job on a tiny random-weight Anny checkpoint: outputs + printed GT metrics."""
    ckpt = anny_checkpoint
    monkeypatch.setenv("JOTR_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    args = [
        "demo-synthetic",
        "--out",
        str(out),
        "--checkpoint",
        str(ckpt),
        "--family",
        "pc",
        "--width",
        "192",
        "--height",
        "144",
        "--device",
        "cpu",
    ]
    if not _rendering():
        args.append("--no-render")
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "MPJPE" in printed and "PA-MPJPE" in printed and "PVE" in printed
    mean_line = [line for line in printed.splitlines() if line.strip().startswith("mean")][0]
    values = [float(v) for v in mean_line.split()[1:]]
    assert len(values) == 3 and all(np.isfinite(values)) and values[1] <= values[0]  # PA <= MPJPE
    folder = next(out.iterdir())
    names = {p.name for p in folder.iterdir()}
    assert {"input.png", "params.json", "params.npz", "person_00.obj", "person_00.ply"} <= names
    assert {"scene.glb", "rigged.glb"} <= names
    params = json.loads((folder / "params.json").read_text())
    gt = params["ground_truth_metrics_mm"]
    assert gt["mean"]["mpjpe"] == pytest.approx(values[0], abs=0.06)
    assert not (tmp_path / "cache").exists()  # a given checkpoint never triggers training


def test_demo_checkpoint_cache_is_reused(tmp_path, monkeypatch):
    from jotr.inference.synthetic_demo import DEMO_CHECKPOINT, cache_dir, ensure_demo_checkpoint

    monkeypatch.setenv("JOTR_CACHE", str(tmp_path / "jc"))
    assert cache_dir() == tmp_path / "jc"
    cached = tmp_path / "jc" / DEMO_CHECKPOINT
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"placeholder")
    messages = []
    assert ensure_demo_checkpoint(say=messages.append) == cached
    assert "cached" in messages[0] and not (tmp_path / "jc" / "demo_data").exists()


@pytest.mark.slow
def test_demo_checkpoint_is_trained_when_missing(tmp_path, monkeypatch):
    """The no-checkpoint path in miniature: generate scenes, train synthetic_small a few steps, cache it."""
    from jotr.engine.checkpoint import load_checkpoint
    from jotr.inference.synthetic_demo import DemoTraining, ensure_demo_checkpoint

    monkeypatch.setenv("JOTR_CACHE", str(tmp_path / "jc"))
    messages = []
    training = DemoTraining(
        images_per_family=1, width=128, height=96, steps=2, workers=1, device="cpu", batch_size=2
    )
    path = ensure_demo_checkpoint(training=training, say=messages.append)
    assert path == tmp_path / "jc" / "demo_small.pt"
    ckpt = load_checkpoint(path)
    assert ckpt["step"] == 2 and ckpt["config"]["body"]["kind"] == "anny"
    assert ckpt["config"]["model"]["input_size"] == 128  # the synthetic_small network
    assert any("training" in m for m in messages) and any("generating" in m for m in messages)
    assert ensure_demo_checkpoint(training=training, say=messages.append) == path  # cached now


def test_output_names_disambiguate_same_stem(tmp_path):
    from jotr.commands.demo import output_names

    paths = [tmp_path / "a.jpg", tmp_path / "a.PNG", tmp_path / "b.jpg"]
    assert output_names(paths) == {paths[0]: "a_jpg", paths[1]: "a_png", paths[2]: "b"}


def test_detect_writes_keypoints_that_demo_reads(tiny_checkpoint, tmp_path, capsys):
    """``jotr detect`` (built-in detector) -> COCO results JSON -> ``jotr demo --keypoints``; and
    ``jotr demo`` without keypoints reports what the detector found in its table and in params.json."""
    from pathlib import Path

    from jotr.inference.keypoints import KeypointSource

    photos = Path(__file__).resolve().parents[1] / "docs" / "real_photos"
    a = cv2.imread(str(photos / "astronaut.jpg"))[::2, ::2]
    g = cv2.imread(str(photos / "grace_hopper.jpg"))[44:556:2, ::2]
    img = tmp_path / "two.png"
    cv2.imwrite(str(img), np.concatenate([a, g], axis=1))
    kp = tmp_path / "kp.json"
    assert main(["detect", str(img), "--out", str(kp), "--draw", str(tmp_path / "drawn")]) == 0
    assert "two.png: 2 people found" in capsys.readouterr().out
    assert (tmp_path / "drawn" / "two.jpg").is_file()
    people = KeypointSource(kp).for_image(img)
    assert len(people) == 2 and all(p.fmt == "coco17" and p.box_xywh is not None for p in people)
    out = tmp_path / "out"
    args = ["demo", str(img), "--checkpoint", str(tiny_checkpoint), "--no-render", "--no-meshes"]
    assert main([*args, "--keypoints", str(kp), "--out", str(out)]) == 0
    assert len(json.loads((out / "two" / "params.json").read_text())["people"]) == 2
    assert main([*args, "--out", str(tmp_path / "out2")]) == 0
    assert "two.png: 2 detected -> 2 reconstructed" in capsys.readouterr().out
    params = json.loads((tmp_path / "out2" / "two" / "params.json").read_text())
    assert params["detection"]["people_found"] == 2 and params["detection"]["people_reconstructed"] == 2
