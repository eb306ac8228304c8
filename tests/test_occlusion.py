"""Training-time occluder pasting: covered joints, determinism, RGBA cut-outs from a folder, input errors."""

from __future__ import annotations

import numpy as np
import pytest

from jotr.data.occlusion import generate_occluder, paste_occluders
from jotr.errors import InputError


def _crop_and_joints(seed: int = 0):
    rng = np.random.default_rng(seed)
    image = np.full((128, 128, 3), 127, np.uint8)
    joints = rng.uniform(10, 118, (30, 2))
    return image, joints


def test_covered_joints_match_changed_pixels():
    hits = 0
    for seed in range(20):
        image, joints = _crop_and_joints(seed)
        out, covered = paste_occluders(image, joints, np.random.default_rng(seed), num=(1, 3))
        assert out.shape == image.shape and out.dtype == np.uint8
        assert covered.shape == (30,) and covered.dtype == bool
        assert np.array_equal(image, np.full((128, 128, 3), 127, np.uint8))  # input untouched
        changed = np.abs(out.astype(int) - image.astype(int)).sum(axis=2) > 0
        c, r = np.round(joints[:, 0]).astype(int), np.round(joints[:, 1]).astype(int)
        # A covered joint sits on a pasted pixel. (The converse is not required: soft edges.)
        for j in np.nonzero(covered)[0]:
            window = changed[max(r[j] - 1, 0) : r[j] + 2, max(c[j] - 1, 0) : c[j] + 2]
            assert window.any()
        hits += int(covered.sum())
    assert hits > 20  # occluders really cover joints


def test_deterministic_and_num_range():
    image, joints = _crop_and_joints(1)
    a = paste_occluders(image, joints, np.random.default_rng(7))
    b = paste_occluders(image, joints, np.random.default_rng(7))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    out, covered = paste_occluders(image, joints, np.random.default_rng(7), num=(0, 0))
    assert np.array_equal(out, image) and not covered.any()


def test_out_of_crop_joints_are_never_covered():
    image = np.full((64, 64, 3), 50, np.uint8)
    joints = np.full((30, 2), -100.0)
    joints[0] = np.nan
    _, covered = paste_occluders(image, joints, np.random.default_rng(0), num=(3, 3))
    assert not covered.any()


def test_generated_occluder_alpha():
    rgba = generate_occluder(np.random.default_rng(3), 40)
    assert rgba.shape[2] == 4 and max(rgba.shape[:2]) == 40
    assert 0.0 <= rgba[..., 3].min() and rgba[..., 3].max() <= 1.0 and rgba[..., 3].max() > 0.9


def test_rgba_folder(tmp_path):
    import cv2

    cut = np.zeros((30, 20, 4), np.uint8)
    cut[..., 2] = 255  # red in BGR order
    cut[5:25, 4:16, 3] = 255  # opaque core
    cv2.imwrite(str(tmp_path / "red.png"), cut)
    cv2.imwrite(str(tmp_path / "rgb_only.png"), np.zeros((8, 8, 3), np.uint8))  # ignored: no alpha
    image = np.zeros((100, 100, 3), np.uint8)
    joints = np.tile([[50.0, 50.0]], (30, 1))
    found = 0
    for seed in range(40):
        out, covered = paste_occluders(
            image, joints, np.random.default_rng(seed), num=(2, 2), occluder_dir=str(tmp_path)
        )
        red = (out[..., 0] > 200) & (out[..., 1] < 30)
        assert red.any()  # pasted cut-out, RGB order preserved
        assert covered.all() or not covered.any()  # all joints share one pixel
        # covered <=> pasted alpha > 0.5 there, i.e. red > 127.5 on the black crop
        if abs(int(out[50, 50, 0]) - 128) > 2:
            assert bool(covered[0]) == (out[50, 50, 0] > 128)
        found += int(covered[0])
    assert found >= 3


def test_errors(tmp_path):
    image, joints = _crop_and_joints()
    with pytest.raises(InputError, match="occluder folder not found"):
        paste_occluders(image, joints, np.random.default_rng(0), occluder_dir=str(tmp_path / "nope"))
    with pytest.raises(InputError, match="no RGBA"):
        paste_occluders(image, joints, np.random.default_rng(0), occluder_dir=str(tmp_path))
    with pytest.raises(InputError, match="uint8"):
        paste_occluders(image.astype(np.float32), joints, np.random.default_rng(0))
    with pytest.raises(InputError, match="joints"):
        paste_occluders(image, joints[:17], np.random.default_rng(0))


def test_occluders_aimed_at_points_cover_them():
    image, joints = _crop_and_joints(3)
    hits = 0
    for seed in range(20):
        target = joints[seed % 30 : seed % 30 + 1]
        _, covered = paste_occluders(image, joints, np.random.default_rng(seed), num=(1, 1), at=target)
        hits += bool(covered[seed % 30])
    assert hits >= 12, f"an occluder aimed at a joint covered it {hits} of 20 times"
