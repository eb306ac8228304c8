"""Rotations, coordinate spaces, the virtual crop camera and affine crop transforms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jotr.geometry import boxes, coords
from jotr.geometry.camera import PROJECTION_EPS, VirtualCamera, project_points
from jotr.geometry.rotations import (
    aa_to_rot6d,
    aa_to_rotmat,
    rot6d_to_aa,
    rot6d_to_rotmat,
    rotation_about_axis,
    rotmat_to_aa,
    rotmat_to_rot6d,
)

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _random_aa(n: int, dtype, seed: int = 0, max_angle: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    axis = F.normalize(torch.randn(n, 3, generator=g, dtype=dtype), dim=-1)
    angle = torch.rand(n, 1, generator=g, dtype=dtype) * max_angle
    return axis * angle


# ------------------------------------------------------------------------------------------------ rotations


@pytest.mark.parametrize("dtype", DTYPES)
def test_rotation_round_trips(dtype):
    aa = _random_aa(256, dtype)
    R = aa_to_rotmat(aa)
    assert R.dtype == dtype and R.shape == (256, 3, 3)
    eye = torch.eye(3, dtype=dtype).expand_as(R)
    tol = TOL[dtype] * 10
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye, atol=tol, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(256, dtype=dtype), atol=tol, rtol=0)
    # axis-angle <-> rotation matrix (angles below pi: the axis-angle is unique)
    torch.testing.assert_close(rotmat_to_aa(R), aa, atol=tol * 10, rtol=0)
    # 6D <-> rotation matrix
    six = rotmat_to_rot6d(R)
    assert six.shape == (256, 6)
    torch.testing.assert_close(rot6d_to_rotmat(six), R, atol=tol, rtol=0)
    torch.testing.assert_close(rot6d_to_aa(aa_to_rot6d(aa)), aa, atol=tol * 10, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rot6d_of_arbitrary_vectors_is_a_rotation_with_gram_schmidt_columns(dtype):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 6, generator=g, dtype=dtype)
    R = rot6d_to_rotmat(x)
    assert R.shape == (2, 5, 3, 3)
    tol = TOL[dtype] * 10
    torch.testing.assert_close(
        R @ R.transpose(-1, -2), torch.eye(3, dtype=dtype).expand_as(R), atol=tol, rtol=0
    )
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(2, 5, dtype=dtype), atol=tol, rtol=0)
    # the 6 numbers are a 3x2 matrix read row-major; column 0 normalised = first column of R
    a1 = x.reshape(2, 5, 3, 2)[..., 0]
    torch.testing.assert_close(R[..., 0], F.normalize(a1, dim=-1), atol=tol, rtol=0)
    # ... and column 1 lies in the plane of the two columns
    a2 = x.reshape(2, 5, 3, 2)[..., 1]
    normal = torch.linalg.cross(a1, a2)
    assert torch.einsum("...i,...i->...", R[..., 1], normal).abs().max() < tol * 100
    ident = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0], dtype=dtype)
    torch.testing.assert_close(rot6d_to_rotmat(ident), torch.eye(3, dtype=dtype))
    with pytest.raises(ValueError):
        rot6d_to_rotmat(torch.zeros(3, 5))


def test_rotation_about_axis_matches_axis_angle():
    angle = torch.tensor([0.3, -1.2, 2.5])
    for k, axis in enumerate("xyz"):
        aa = torch.zeros(3, 3)
        aa[:, k] = angle
        torch.testing.assert_close(rotation_about_axis(angle, axis), aa_to_rotmat(aa), atol=1e-6, rtol=0)
    # right-handed: R_z(90 deg) takes x to y
    Rz = rotation_about_axis(torch.tensor(math.pi / 2), "z")
    torch.testing.assert_close(
        Rz @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6, rtol=0
    )
    with pytest.raises(ValueError):
        rotation_about_axis(angle, "w")


# ------------------------------------------------------------------------------------------------ coordinates


@pytest.mark.parametrize("dtype", DTYPES)
def test_coordinate_round_trips(dtype):
    g = torch.Generator().manual_seed(0)
    px = torch.rand(4, 30, 2, generator=g, dtype=dtype) * 256
    hm = coords.px_to_hm(px, input_size=256, heatmap_size=64)
    torch.testing.assert_close(hm, px / 4)
    torch.testing.assert_close(coords.hm_to_px(hm, 256, 64), px)

    unit = torch.rand(4, 15, 3, generator=g, dtype=dtype)
    torch.testing.assert_close(coords.unit_to_hm(unit, 64), unit * 64)
    torch.testing.assert_close(coords.hm_to_unit(coords.unit_to_hm(unit, 64), 64), unit)

    z = (torch.rand(4, 15, generator=g, dtype=dtype) - 0.5) * 2.0  # metres within +-1
    zu = coords.depth_to_unit(z, bbox_3d_size=2.0)
    torch.testing.assert_close(zu, (z + 1.0) / 2.0)
    torch.testing.assert_close(coords.unit_to_depth(zu, 2.0), z)
    assert coords.depth_to_unit(torch.tensor(0.0), 2.0) == 0.5  # root depth in the middle

    grid = coords.unit_to_grid(unit)
    torch.testing.assert_close(grid, unit * 2 - 1)
    torch.testing.assert_close(coords.grid_to_unit(grid), unit)
    k = 3.0
    warped = coords.unit_to_grid(unit, exponent=k)
    torch.testing.assert_close(warped[..., :2], unit[..., :2] * 2 - 1)
    torch.testing.assert_close(warped[..., 2], unit[..., 2] ** k * 2 - 1)
    # the cube root amplifies float32 rounding near z = 0
    atol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(coords.grid_to_unit(warped, exponent=k), unit, atol=atol, rtol=0)
    # a tensor exponent (the learned parameter) works and carries gradients
    kt = torch.tensor(2.5, dtype=dtype, requires_grad=True)
    coords.unit_to_grid(unit, exponent=kt).sum().backward()
    assert kt.grad is not None and torch.isfinite(kt.grad)


def test_grid_sample_axis_order_picks_the_expected_voxel():
    D, H, W = 4, 5, 6  # all different, so a swapped axis cannot pass
    index = torch.arange(D * H * W, dtype=torch.float64).reshape(1, 1, D, H, W)  # value = voxel index
    voxels = torch.tensor([[0, 0, 0], [3, 4, 5], [2, 1, 4], [1, 3, 0]], dtype=torch.float64)  # (d, h, w)
    d, h, w = voxels.unbind(-1)
    expected = d * H * W + h * W + w
    unit = torch.stack([w / (W - 1), h / (H - 1), d / (D - 1)], dim=-1)  # unit (x, y, z) <-> (W, H, D)

    def sample(grid):
        out = F.grid_sample(index, grid.reshape(1, 1, 1, -1, 3), mode="bilinear", align_corners=True)
        return out.flatten()

    grid = coords.unit_to_grid(unit)
    torch.testing.assert_close(sample(grid), expected)
    torch.testing.assert_close(coords.grid_to_voxel_index(grid, (D, H, W)), voxels)
    # with the depth exponent k the same voxel is reached from z_unit = (d / (D - 1)) ** (1 / k)
    k = 3.0
    unit_k = unit.clone()
    unit_k[:, 2] = (d / (D - 1)) ** (1.0 / k)
    grid_k = coords.unit_to_grid(unit_k, exponent=k)
    torch.testing.assert_close(sample(grid_k), expected)
    torch.testing.assert_close(coords.grid_to_voxel_index(grid_k, (D, H, W)), voxels)


def test_depth_anchors_and_inverse_sigmoid():
    anchors = coords.depth_anchors(8, 3.0)
    expected = torch.tensor([0.0, 0.002, 0.016, 0.053, 0.125, 0.244, 0.422, 0.670])  # jotr-reference §1.5
    torch.testing.assert_close(anchors, expected, atol=1e-3, rtol=0)
    x = torch.linspace(-6, 6, 25, dtype=torch.float64)
    torch.testing.assert_close(coords.inverse_sigmoid(torch.sigmoid(x)), x, atol=1e-6, rtol=0)
    assert torch.isfinite(coords.inverse_sigmoid(torch.tensor([0.0, 1.0]))).all()


# ------------------------------------------------------------------------------------------------ camera


def test_virtual_camera_paper_numbers():
    cam = VirtualCamera.for_crop(256)
    assert cam.focal == 5000.0 and cam.princpt == (128.0, 128.0)
    assert cam.depth_scale == pytest.approx(48.83, abs=0.01)  # sqrt(5000^2 * 2.5^2 / 256^2)
    assert VirtualCamera.for_crop(128).depth_scale == pytest.approx(48.83, abs=0.01)  # scale-invariant
    assert VirtualCamera.for_crop(512).focal == 10000.0
    t = cam.translation(torch.tensor([[0.1, -0.2, 0.0], [0.0, 0.0, 50.0]]))
    torch.testing.assert_close(t[0], torch.tensor([0.1, -0.2, 48.83 / 2]), atol=1e-2, rtol=0)
    assert t[1, 2] == pytest.approx(cam.depth_scale, rel=1e-6)
    p = torch.tensor([[0.1, -0.2, 10.0], [0.0, 0.0, 5.0]])
    uv = cam.project(p)
    expected = torch.tensor(
        [
            [0.1 / (10 + PROJECTION_EPS) * 5000 + 128, -0.2 / (10 + PROJECTION_EPS) * 5000 + 128],
            [128.0, 128.0],
        ]
    )
    torch.testing.assert_close(uv, expected)


def test_project_points_with_per_sample_intrinsics():
    pts = torch.tensor([[[1.0, 2.0, 4.0]], [[1.0, 2.0, 4.0]]])  # (B=2, N=1, 3)
    focal = torch.tensor([[100.0, 200.0], [10.0, 10.0]])
    princpt = torch.tensor([[50.0, 60.0], [0.0, 0.0]])
    uv = project_points(pts, focal, princpt)
    z = 4.0 + PROJECTION_EPS
    torch.testing.assert_close(uv, torch.tensor([[[100 / z + 50, 400 / z + 60]], [[10 / z, 20 / z]]]))


# ------------------------------------------------------------------------------------------------ boxes


def _official_style_transform(cx, cy, size, out, rot_deg):
    """Independent construction: map centre, centre + down, centre + right of the rotated box (3 points)."""
    a = math.radians(rot_deg)

    def rot(v):
        return np.array([v[0] * math.cos(a) - v[1] * math.sin(a), v[0] * math.sin(a) + v[1] * math.cos(a)])

    c = np.array([cx, cy])
    src = np.stack([c, c + rot([0, size / 2]), c + rot([size / 2, 0])])
    dst = np.array([[out / 2, out / 2], [out / 2, out], [out, out / 2]])
    # solve dst = A src + t for the 2x3 affine matrix
    X = np.concatenate([src, np.ones((3, 1))], axis=1)
    return np.linalg.solve(X, dst).T


def test_crop_transform_corners_rotation_flip_inverse():
    center, size, out = (300.0, 200.0), 100.0, 256
    M = boxes.crop_transform(center, size, out)
    corners = np.array([[250.0, 150.0], [350.0, 150.0], [350.0, 250.0], [250.0, 250.0], center])
    np.testing.assert_allclose(
        boxes.apply_affine(corners, M), [[0, 0], [256, 0], [256, 256], [0, 256], [128, 128]], atol=1e-9
    )
    # horizontal flip: the box's left edge lands on the crop's right edge
    Mf = boxes.crop_transform(center, size, out, flip=True)
    np.testing.assert_allclose(
        boxes.apply_affine(corners, Mf), [[256, 0], [0, 0], [0, 256], [256, 256], [128, 128]], atol=1e-9
    )
    # rotation matches the three-point construction of the official code (and cv2.getAffineTransform)
    for rot in (0.0, 30.0, -45.0, 90.0):
        np.testing.assert_allclose(
            boxes.crop_transform(center, size, out, rot_deg=rot),
            _official_style_transform(*center, size, out, rot),
            atol=1e-9,
        )
    # 90 degrees: the image point right of the centre goes to the top-centre of the crop
    M90 = boxes.crop_transform(center, size, out, rot_deg=90.0)
    np.testing.assert_allclose(boxes.apply_affine(np.array([350.0, 200.0]), M90), [128, 0], atol=1e-9)
    # flip = crop of the mirrored image (x -> W - 1 - x) about the mirrored centre, as the official pipeline
    W = 640
    pts = np.random.default_rng(0).uniform(0, 400, size=(10, 2))
    M_off = boxes.crop_transform((W - 1 - center[0], center[1]), size, out, rot_deg=20.0)
    mirrored = np.stack([W - 1 - pts[:, 0], pts[:, 1]], axis=1)
    np.testing.assert_allclose(
        boxes.apply_affine(pts, boxes.crop_transform(center, size, out, 20.0, flip=True)),
        boxes.apply_affine(mirrored, M_off),
        atol=1e-9,
    )
    # inverse
    for m in (M, Mf, M90):
        back = boxes.apply_affine(boxes.apply_affine(pts, m), boxes.invert_affine(m))
        np.testing.assert_allclose(back, pts, atol=1e-9)


def test_crop_transform_matches_cv2():
    cv2 = pytest.importorskip("cv2")
    center, size, out, rot = (123.0, 77.0), 64.0, 32, 25.0
    ours = boxes.crop_transform(center, size, out, rot_deg=rot)
    src = boxes.apply_affine(np.array([[0.0, 0.0], [32.0, 0.0], [0.0, 32.0]]), boxes.invert_affine(ours))
    ref = cv2.getAffineTransform(src.astype(np.float32), np.float32([[0, 0], [32, 0], [0, 32]]))
    np.testing.assert_allclose(ours, ref, atol=1e-3)
    # warping an image with cv2 puts a marked pixel where apply_affine says
    img = np.zeros((200, 200), np.float32)
    img[80, 130] = 1.0
    crop = cv2.warpAffine(img, ours, (out, out), flags=cv2.INTER_LINEAR)
    x, y = boxes.apply_affine(np.array([130.0, 80.0]), ours)
    iy, ix = np.unravel_index(np.argmax(crop), crop.shape)
    assert abs(ix - x) <= 1 and abs(iy - y) <= 1


def test_box_helpers():
    b = np.array([10.0, 20.0, 30.0, 60.0])
    np.testing.assert_allclose(boxes.xyxy_to_xywh(boxes.xywh_to_xyxy(b)), b)
    sq = boxes.square_box(b, scale=1.2)
    np.testing.assert_allclose(sq[2:], [72.0, 72.0])
    np.testing.assert_allclose(sq[:2] + sq[2:] / 2, b[:2] + b[2:] / 2)  # same centre
    wide = boxes.square_box(b, aspect=2.0)
    assert wide[2] / wide[3] == pytest.approx(2.0)
    kps = np.array([[0.0, 0.0], [10.0, 20.0], [1000.0, 1000.0]])
    box = boxes.box_from_keypoints(kps, conf=np.array([1.0, 0.9, 0.01]), extend=1.0)
    np.testing.assert_allclose(box, [0.0, 0.0, 10.0, 20.0])
    assert boxes.box_from_keypoints(kps, conf=np.array([1.0, 0.0, 0.0])) is None
