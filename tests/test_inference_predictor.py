"""JOTRPredictor on a generated scene (procedural toy body, small config, random weights), camera conversion,
bad inputs, and the overlay renderer."""

from __future__ import annotations

import contextlib
import math
import os

import cv2
import numpy as np
import pytest
import torch

from jotr.config import JOTRConfig, merge_config
from jotr.errors import InputError
from jotr.geometry.boxes import apply_affine
from jotr.geometry.camera import project_points
from jotr.geometry.rotations import rotation_about_axis
from jotr.inference.predictor import JOTRPredictor, PersonInput, load_image
from jotr.models.config import ModelConfig

W, H, FOCAL = 200, 160, 260.0


def _cfg() -> JOTRConfig:
    cfg = JOTRConfig(model=ModelConfig.small())
    return merge_config(cfg, {"body": {"kind": "toy"}})


@pytest.fixture(scope="module")
def model_cfg():
    from jotr.models import build_model

    torch.manual_seed(0)
    cfg = _cfg()
    return build_model(cfg, pretrained=False).eval(), cfg


@pytest.fixture(scope="module")
def scene(model_cfg):
    """A toy person standing upright facing the camera, with GT jotr30 keypoints, rendered when possible."""
    model, _ = model_cfg
    body = model.body
    pose = body.rest_pose(2)
    pose[:, 0] = rotation_about_axis(torch.tensor([math.pi, math.pi]), "x")
    pose[1, 0] = pose[1, 0] @ rotation_about_axis(torch.tensor(0.6), "y")
    with torch.no_grad():
        out = body(pose, body.default_shape(2))
        joints = body.joints(out, "jotr30")
    trans = torch.tensor([[-0.45, 0.1, 5.0], [0.5, 0.0, 6.0]])
    joints_cam = joints + trans[:, None]
    verts = out.vertices + trans[:, None]
    kps2d = project_points(joints_cam, (FOCAL, FOCAL), (W / 2, H / 2)).numpy()
    kps = np.concatenate([kps2d, np.full((2, 30, 1), 0.9)], axis=2)
    image = np.full((H, W, 3), 90, np.uint8)
    try:
        from jotr.viz.renderer import Renderer

        with Renderer(W, H) as r:
            image = r.render(
                [(v.numpy(), body.faces.numpy(), (0.8, 0.6, 0.5)) for v in verts],
                FOCAL,
                (W / 2, H / 2),
                bg=image,
            ).color
    except RuntimeError:
        pass
    return image, kps


@contextlib.contextmanager
def _fixed_camera(model, gamma: float = 1.9):
    """Make the camera head output (0, 0, gamma): pelvis near the crop centre, body ~80 % of the crop."""
    state = {k: v.clone() for k, v in model.cam_head.state_dict().items()}
    try:
        with torch.no_grad():
            for p in model.cam_head.parameters():
                p.zero_()
            model.cam_head.layers[0].bias[2] = gamma
        yield
    finally:
        model.cam_head.load_state_dict(state)


def test_predict_shapes_one_batch_and_batch_independence(model_cfg, scene):
    model, cfg = model_cfg
    image, kps = scene
    pred = JOTRPredictor(model, cfg)
    calls = []
    orig = model.predict

    def counting(inputs, *a, **k):
        calls.append(inputs.image.shape[0])
        return orig(inputs, *a, **k)

    model.predict = counting
    try:
        res = pred.predict(
            image, [PersonInput(keypoints=kps[0], keypoint_format="jotr30"), kps[1]], focal=FOCAL
        )
    finally:
        del model.predict
    assert calls == [2]  # all people in one batch
    assert [r.index for r in res] == [0, 1] and all(r.ok for r in res)
    J, S, V = model.body.num_pose_joints, model.body.num_shape, model.body.num_vertices
    r = res[0]
    assert r.pose_rotmat.shape == (J, 3, 3) and r.pose_aa.shape == (J, 3) and r.shape.shape == (S,)
    assert r.vertices.shape == (V, 3) and r.joints.shape == (30, 3) and r.joints_img.shape == (30, 2)
    assert r.translation.shape == (3,) and r.box_xywh.shape == (4,) and r.crop_to_img.shape == (2, 3)
    assert all(np.isfinite(getattr(r, f)).all() for f in ("vertices", "joints", "joints_img", "translation"))
    assert r.focal == (FOCAL, FOCAL) and r.princpt == (W / 2, H / 2)
    # Protocol box: square, contains the keypoints, x1.2 x1.1 of their extent.
    x, y, w, h = r.box_xywh
    assert w == pytest.approx(h)
    assert (kps[0, :, 0] >= x).all() and (kps[0, :, 0] <= x + w).all()
    extent = max(np.ptp(kps[0, :, 0]), np.ptp(kps[0, :, 1]))
    assert w == pytest.approx(extent * 1.2 * 1.1, rel=1e-6)
    # Same person alone -> same result (eval mode, batch independence).
    alone = pred.predict(image, [kps[1]], focal=FOCAL)[0]
    np.testing.assert_allclose(alone.vertices, res[1].vertices, atol=1e-4)


def test_camera_conversion_projects_into_the_box(model_cfg, scene):
    model, cfg = model_cfg
    image, kps = scene
    pred = JOTRPredictor(model, cfg)
    with _fixed_camera(model):
        res = pred.predict(image, [kps[0], kps[1]], focal=(FOCAL, FOCAL + 10), princpt=(W / 2 + 3, H / 2 - 2))
    for r in res:
        x, y, w, h = r.box_xywh
        inside = (
            (r.joints_img[:, 0] > x)
            & (r.joints_img[:, 0] < x + w)
            & (r.joints_img[:, 1] > y)
            & (r.joints_img[:, 1] < y + h)
        )
        assert inside.all(), r.joints_img[~inside]
        # The pelvis projects exactly where the crop camera put it, mapped back to the image.
        with torch.no_grad():
            bo = model.body(torch.from_numpy(r.pose_rotmat)[None], torch.from_numpy(r.shape)[None])
            pelvis = model.body.joints(bo, "jotr30")[0, 0]
        root_crop = pelvis + torch.from_numpy(r.cam_t_crop)
        uv_crop = pred.crop_camera.project(root_crop[None])[0].numpy()
        np.testing.assert_allclose(r.joints_img[0], apply_affine(uv_crop, r.crop_to_img), atol=1e-2)
        # Depth: same apparent size, Z' = Z_crop * sqrt(fx fy) / f_crop.
        f_crop = pred.crop_camera.focal * w / cfg.model.input_size
        expected_z = float(root_crop[2]) * math.sqrt(FOCAL * (FOCAL + 10)) / f_crop
        assert r.translation[2] == pytest.approx(expected_z, rel=1e-4)
        np.testing.assert_allclose(r.joints[0], r.translation, atol=1e-5)


def test_from_checkpoint_matches(model_cfg, scene, tmp_path):
    from jotr.engine.checkpoint import save_checkpoint

    model, cfg = model_cfg
    image, kps = scene
    path = save_checkpoint(tmp_path / "tiny.pt", model=model, cfg=cfg, step=0, rng=False, commit="test")
    loaded = JOTRPredictor.from_checkpoint(path, device="cpu")
    a = loaded.predict(image, [kps[0]], focal=FOCAL)[0]
    b = JOTRPredictor(model, cfg).predict(image, [kps[0]], focal=FOCAL)[0]
    np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-5)
    assert loaded.faces.shape == tuple(model.body.faces.shape)


def test_bad_people_give_per_person_errors(model_cfg, scene):
    model, cfg = model_cfg
    image, kps = scene
    nan_kps = kps[0].copy()
    nan_kps[4, 1] = np.nan
    people = [
        PersonInput(keypoints=kps[0][:, :2].reshape(-1)),  # wrong shape
        PersonInput(keypoints=nan_kps, keypoint_format="jotr30"),  # NaN
        PersonInput(box_xywh=np.array([10.0, 10.0, 0.0, 30.0])),  # zero size
        PersonInput(box_xywh=np.array([W + 50.0, 10.0, 40.0, 80.0])),  # outside the image
        PersonInput(keypoints=kps[0] + [1000.0, 0.0, 0.0], keypoint_format="jotr30"),  # entirely outside
        PersonInput(),  # nothing
        PersonInput(keypoints=kps[0], keypoint_format="jotr30"),  # fine
        PersonInput(box_xywh=np.array([60.0, 20.0, 50.0, 120.0])),  # fine: box only
    ]
    res = JOTRPredictor(model, cfg).predict(image, people, name="scene.png")
    errors = [r.error for r in res]
    assert all(e is not None and e.startswith(f"scene.png: person {i}") for i, e in enumerate(errors[:6])), (
        errors
    )
    assert "(K, 3)" in errors[0] and "NaN" in errors[1] and "zero" in errors[2]
    assert "outside" in errors[3] and "outside" in errors[4] and "needs a box" in errors[5]
    assert res[6].ok and res[7].ok and res[6].index == 6
    assert all(r.vertices is None for r in res[:6])


def test_bad_images(model_cfg, tmp_path):
    model, cfg = model_cfg
    pred = JOTRPredictor(model, cfg)
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    with pytest.raises(InputError, match="corrupt.png"):
        load_image(bad)
    with pytest.raises(InputError, match="corrupt.png"):
        pred.predict(bad, [np.zeros((17, 3))])
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(InputError, match="RGB"):
        pred.predict(np.zeros((10, 10, 5), np.uint8), [])
    with pytest.raises(InputError, match="focal"):
        pred.predict(np.zeros((10, 10, 3), np.uint8), [], focal=-1.0)


def test_overlay_covers_projected_mesh(model_cfg, scene):
    from jotr.viz.renderer import rendering_available

    ok, why = rendering_available()
    if not ok:
        pytest.skip(f"offscreen rendering unavailable: {why}")
    from jotr.viz.overlay import MeshVisualizer

    model, cfg = model_cfg
    image, kps = scene
    pred = JOTRPredictor(model, cfg)
    with _fixed_camera(model):
        res = pred.predict(image, [kps[0], kps[1]], focal=FOCAL)
    with MeshVisualizer() as vis:
        ov = vis.render(image, [(r.vertices, pred.faces) for r in res], res[0].focal, res[0].princpt)
    if os.environ.get("JOTR_TEST_SAVE"):
        cv2.imwrite(
            os.environ["JOTR_TEST_SAVE"],
            cv2.cvtColor(np.concatenate([ov.image, ov.side], 1), cv2.COLOR_RGB2BGR),
        )
    assert ov.image.shape == image.shape and ov.side.shape == image.shape
    mask = ov.mask
    near = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # 1 px slack at silhouette edges
    for r in res:
        uv = project_points(torch.from_numpy(r.vertices), res[0].focal, res[0].princpt).numpy()
        px = np.round(uv).astype(int)
        keep = (px[:, 0] >= 0) & (px[:, 0] < W) & (px[:, 1] >= 0) & (px[:, 1] < H)
        assert keep.sum() > 0.9 * len(px)
        hit = near[px[keep, 1], px[keep, 0]]
        assert hit.mean() > 0.97, hit.mean()  # rendered where the mesh projects
    assert mask.any() and not mask.all()
    assert (ov.image[~mask] == image[~mask]).all()  # untouched outside the meshes
    assert (ov.image[mask] != image[mask]).any()
    assert (ov.side != 255).any(axis=2).sum() > 50  # something drawn in the side view


def test_bf16_autocast_path(model_cfg, scene):
    model, cfg = model_cfg
    image, kps = scene
    ref = JOTRPredictor(model, cfg).predict(image, [kps[0]], focal=FOCAL)[0]
    low = JOTRPredictor(model, cfg, bf16=True).predict(image, [kps[0]], focal=FOCAL)[0]
    assert low.ok and low.vertices.dtype == np.float32 and np.isfinite(low.vertices).all()
    np.testing.assert_allclose(np.linalg.det(low.pose_rotmat), 1.0, atol=1e-4)
    # bf16 keeps ~3 significant digits: the crop-camera translation agrees to a few percent.
    np.testing.assert_allclose(low.cam_t_crop, ref.cam_t_crop, rtol=0.05, atol=0.05)
