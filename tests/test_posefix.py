"""PoseFix-style keypoint corruption: output contract and error statistics with a fixed generator."""

from __future__ import annotations

import numpy as np
import pytest

from jotr.body.joint_sets import JOTR30
from jotr.data.posefix import (
    GOOD,
    INVERSION,
    JITTER,
    MISS,
    OKS_K,
    SWAP,
    UNANNOTATED,
    corrupt_keypoints,
    corrupt_keypoints_with_types,
    person_scale,
)
from jotr.errors import InputError


def _person(offset=(0.0, 0.0)) -> np.ndarray:
    """(30, 2) a plausible upright person, ~200 px tall, image px."""
    rng = np.random.default_rng(123)
    base = np.stack([rng.uniform(100, 170, 30), rng.uniform(50, 250, 30)], axis=1)
    # Put each right joint 40 px to the left of its left counterpart so inversions are measurable.
    for i, j in JOTR30.flip_pairs:
        base[j] = base[i] + np.array([-40.0, 0.0])
    return base + np.asarray(offset)


def _run(n, occluded, others=()):
    rng = np.random.default_rng(0)
    joints = _person()
    valid = np.ones(30, bool)
    occ = np.full(30, occluded)
    kinds = np.stack(
        [corrupt_keypoints_with_types(joints, valid, rng, occluded=occ, others=others)[1] for _ in range(n)]
    )
    return kinds


def test_output_contract_and_determinism():
    joints, valid = _person(), np.ones(30)
    a = corrupt_keypoints(joints, valid, np.random.default_rng(5))
    b = corrupt_keypoints(joints, valid, np.random.default_rng(5))
    assert a.shape == (30, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.all((a[:, 2] >= 0) & (a[:, 2] <= 1))
    c = corrupt_keypoints(joints, valid, np.random.default_rng(6))
    assert not np.array_equal(a, c)


def test_unannotated_joints_are_missing():
    valid = np.ones(30, bool)
    valid[[3, 7, 20]] = False
    out, kind = corrupt_keypoints_with_types(_person(), valid, np.random.default_rng(1))
    assert np.all(kind[[3, 7, 20]] == UNANNOTATED)
    np.testing.assert_array_equal(out[[3, 7, 20]], 0.0)


def test_visible_error_rates():
    kinds = _run(400, occluded=False)
    rates = {k: float(np.mean(kinds == k)) for k in (GOOD, JITTER, MISS, INVERSION, SWAP)}
    assert rates[SWAP] == 0.0  # no other person -> no swap
    assert 0.75 < rates[GOOD] < 0.9
    assert 0.09 < rates[JITTER] < 0.17
    assert 0.01 < rates[MISS] < 0.045
    assert 0.005 < rates[INVERSION] < 0.03


def test_occluded_joints_are_missed_more_and_swapped_with_neighbours():
    neighbour = _person(offset=(15.0, 5.0))
    kinds_occ = _run(400, occluded=True, others=[neighbour])
    kinds_vis = _run(400, occluded=False, others=[neighbour])
    miss_occ, miss_vis = np.mean(kinds_occ == MISS), np.mean(kinds_vis == MISS)
    assert 0.3 < miss_occ < 0.55 and miss_vis < 0.05
    assert 0.1 < np.mean(kinds_occ == SWAP) < 0.22
    assert 0.01 < np.mean(kinds_vis == SWAP) < 0.05
    # A far-away person is never a donor.
    far = _person(offset=(2000.0, 0.0))
    assert not np.any(_run(100, occluded=True, others=[far]) == SWAP)


def test_error_geometry_and_confidences():
    joints = _person()
    neighbour = _person(offset=(20.0, -10.0))
    rng = np.random.default_rng(3)
    scale = person_scale(joints, np.ones(30))
    dists = {k: [] for k in (GOOD, JITTER, INVERSION, SWAP)}
    confs = {k: [] for k in (GOOD, JITTER, MISS, INVERSION, SWAP)}
    flip = np.array(JOTR30.flip_permutation)
    for _ in range(300):
        out, kind = corrupt_keypoints_with_types(
            joints, np.ones(30), rng, occluded=np.ones(30, bool), others=[neighbour]
        )
        for j in range(30):
            k = int(kind[j])
            confs[k].append(out[j, 2])
            if k in (GOOD, JITTER):
                dists[k].append(np.linalg.norm(out[j, :2] - joints[j]) / (OKS_K[j] * scale))
            elif k == INVERSION:
                dists[k].append(np.linalg.norm(out[j, :2] - joints[flip[j]]) / (OKS_K[j] * scale))
            elif k == SWAP:
                dists[k].append(np.linalg.norm(out[j, :2] - neighbour[j]) / (OKS_K[j] * scale))
    r85, r50 = np.sqrt(-2 * np.log(0.85)), np.sqrt(-2 * np.log(0.5))
    assert max(dists[GOOD]) <= r85 + 1e-4
    assert min(dists[JITTER]) >= r85 - 1e-4 and max(dists[JITTER]) <= r50 + 1e-4
    assert max(dists[INVERSION]) <= r85 + 1e-4 and max(dists[SWAP]) <= r85 + 1e-4
    assert np.all(np.array(confs[MISS]) == 0.0)
    assert np.mean(confs[GOOD]) > np.mean(confs[JITTER]) > np.mean(confs[SWAP])
    assert min(confs[GOOD]) > 0.5


def test_bad_input_raises_and_nan_tolerance():
    with pytest.raises(InputError, match="joints"):
        corrupt_keypoints(np.zeros((17, 2)), np.ones(17), np.random.default_rng(0))
    joints = _person()
    joints[3] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        corrupt_keypoints(joints, np.ones(30), np.random.default_rng(0))
    valid = np.ones(30, bool)
    valid[3] = False  # NaN allowed where unannotated; NaN joints of others are never donors
    other = _person(offset=(3.0, 3.0))
    other[:] = np.nan
    out, kind = corrupt_keypoints_with_types(
        joints, valid, np.random.default_rng(0), others=[other], occluded=np.ones(30, bool)
    )
    assert np.all(np.isfinite(out)) and kind[3] == UNANNOTATED and not np.any(kind == SWAP)
    with pytest.raises(InputError, match="box_size"):
        corrupt_keypoints(_person(), np.ones(30), np.random.default_rng(0), box_size=-1.0)
