"""Regression terms, learned weighting and the Criterion (jotr.losses)."""

from __future__ import annotations

import math

import pytest
import torch

from jotr.body.base import BodyModel, BodyOutput
from jotr.body.joint_sets import JOTR15_FROM_30
from jotr.errors import InputError
from jotr.geometry.coords import unit_to_hm
from jotr.geometry.rotations import aa_to_rotmat, rotmat_to_aa
from jotr.losses import regression as R
from jotr.losses.config import LossConfig
from jotr.losses.criterion import REGRESSION_TERMS, Criterion, LossOutput, first_non_finite
from jotr.losses.weighting import GROUPS_OF_TERMS, UncertaintyWeighting
from jotr.models.config import ModelConfig
from jotr.structures import JOTROutput, Targets

HM = 64
B = 4


class _LinearBody(BodyModel):
    """Minimal body for criterion tests: 24 pose joints, 10 shape values, ankles/wrists not supervised."""

    name = "linear-test-body"
    num_skeleton_joints = 24
    num_pose_joints = 24
    num_shape = 10
    pose_joint_names = tuple(f"j{i}" for i in range(24))
    parents = (-1,) + tuple(range(23))

    def __init__(self):
        super().__init__()
        self._num_vertices = 24
        self.register_buffer("_faces", torch.zeros(0, 3, dtype=torch.int64), persistent=False)

    def forward(self, pose_rotmat, shape):
        self.check_inputs(pose_rotmat, shape)
        rest = torch.arange(24, dtype=pose_rotmat.dtype, device=pose_rotmat.device)[:, None] * 0.1
        pts = torch.einsum("bij,kj->bki", pose_rotmat[:, 0], rest.expand(24, 3)) + shape[:, :1, None]
        return BodyOutput(vertices=pts, skeleton=pts)

    def pose_supervision_mask(self):
        m = torch.ones(24)
        m[[7, 8, 10, 11, 20, 21, 22, 23]] = 0.0
        return m


def _consistent_pair(seed: int = 0, dtype=torch.float32) -> tuple[JOTROutput, Targets]:
    """A network output and targets that agree exactly (every regression term is 0)."""
    g = torch.Generator().manual_seed(seed)
    joints15 = torch.rand(2, B, 15, 3, generator=g, dtype=dtype)  # (L, B, 15, 3)
    joints30_unit = torch.rand(B, 30, 3, generator=g, dtype=dtype)
    joints30_unit[:, list(JOTR15_FROM_30)] = joints15[-1]
    pose_aa = (torch.rand(B, 24, 3, generator=g, dtype=dtype) - 0.5) * 2.0
    shape = torch.randn(B, 10, generator=g, dtype=dtype)
    joints_cam = torch.randn(B, 30, 3, generator=g, dtype=dtype) * 0.3
    out = JOTROutput(
        joints_unit=joints15.clone().requires_grad_(True),
        pose_rotmat=aa_to_rotmat(pose_aa).requires_grad_(True),
        shape=shape.clone().requires_grad_(True),
        cam=torch.zeros(B, 3, dtype=dtype),
        cam_t=torch.zeros(B, 3, dtype=dtype),
        vertices=torch.zeros(B, 24, 3, dtype=dtype),
        joints_cam=joints_cam.clone().requires_grad_(True),
        joints_proj_hm=unit_to_hm(joints30_unit[..., :2], HM).clone().requires_grad_(True),
        feat_volume=torch.randn(B, 8, 8, 8, 8, generator=g, dtype=dtype, requires_grad=True),
        depth_exponent=torch.tensor(3.0, dtype=dtype),
    )
    ones = torch.ones(B, 30, dtype=dtype)
    t = Targets(
        joints_hm=unit_to_hm(joints30_unit, HM),
        joints_trunc=ones.clone(),
        joints_cam=joints_cam.clone(),
        joints_valid=ones.clone(),
        is_3d=torch.ones(B, dtype=dtype),
        fit_joints_hm=unit_to_hm(joints30_unit, HM),
        fit_joints_trunc=ones.clone(),
        pose_aa=rotmat_to_aa(aa_to_rotmat(pose_aa)),
        shape=shape.clone(),
        has_fit=torch.ones(B, dtype=dtype),
    )
    return out, t


# ---------------------------------------------------------------------------------------------- terms


def test_masked_l1_mean_over_valid_entries_and_zero_when_none():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.zeros(2, 2)
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert R.masked_l1(pred, target, mask).item() == pytest.approx((1 + 3 + 4) / 3)
    zero = R.masked_l1(pred.requires_grad_(True), target, torch.zeros(2, 2))
    assert zero.item() == 0.0
    zero.backward()
    assert torch.equal(pred.grad, torch.zeros(2, 2))


def test_masked_entries_do_not_change_any_term():
    out, t = _consistent_pair(1)
    gen = torch.Generator().manual_seed(5)
    # perturb the predictions so that every term is non-zero
    jf = out.joints_unit.detach()[-1] + 0.05 * torch.randn(B, 15, 3, generator=gen)
    proj = out.joints_proj_hm.detach() + torch.randn(B, 30, 2, generator=gen)
    cam = out.joints_cam.detach() + 0.1 * torch.randn(B, 30, 3, generator=gen)
    trunc = (torch.rand(B, 30, generator=gen) > 0.3).float()
    is_3d = torch.tensor([1.0, 0.0, 1.0, 0.0])
    has_fit = torch.tensor([1.0, 1.0, 0.0, 0.0])
    pmask = _LinearBody().pose_supervision_mask()
    pose_pred = aa_to_rotmat(t.pose_aa + 0.1)

    def all_terms(tt: Targets) -> list[float]:
        return [
            R.joint_img_loss(jf, tt.joints_hm, trunc, is_3d, HM).item(),
            R.joint_img_loss(jf, tt.fit_joints_hm, trunc * has_fit[:, None], None, HM).item(),
            R.pose_loss(pose_pred, tt.pose_aa, has_fit, pmask).item(),
            R.shape_loss(out.shape.detach() + 0.2, tt.shape, has_fit).item(),
            R.joint_proj_loss(proj, tt.joints_hm, trunc, HM).item(),
            R.joint_cam_loss(cam, tt.joints_cam, trunc, is_3d, 5.0).item(),
        ]

    before = all_terms(t)
    assert all(v > 0 for v in before)
    # garbage (incl. NaN) in every masked entry
    bad = Targets(**{k: v.clone() for k, v in vars(t).items()})
    invalid30 = trunc == 0
    bad.joints_hm[invalid30] = float("nan")
    bad.fit_joints_hm[invalid30] = 1e6
    bad.joints_hm[is_3d == 0, :, 2] = float("nan")  # z of 2D-only samples
    bad.joints_cam[invalid30] = float("nan")
    bad.joints_cam[is_3d == 0] = float("nan")
    bad.fit_joints_hm[has_fit == 0] = float("nan")
    bad.pose_aa[has_fit == 0] = float("nan")
    bad.pose_aa[:, pmask == 0] = 7.0
    bad.shape[has_fit == 0] = float("nan")
    after = all_terms(bad)
    assert after == pytest.approx(before, rel=0, abs=0)


def test_joint_img_z_only_for_3d_samples_and_scale():
    pred = torch.zeros(1, 15, 3)
    target_hm = torch.zeros(1, 30, 3)
    target_hm[..., 2] = HM * 0.5  # z error 0.5 in the unit cube, x/y exact
    ok = torch.ones(1, 30)
    two_d = R.joint_img_loss(pred, target_hm, ok, torch.zeros(1), HM)
    three_d = R.joint_img_loss(pred, target_hm, ok, torch.ones(1), HM)
    assert two_d.item() == 0.0
    assert three_d.item() == pytest.approx(0.5 / 3)  # mean over the 45 valid entries, 15 of them 0.5
    # same value at another heatmap resolution (terms live in the unit cube)
    assert R.joint_img_loss(pred, target_hm / 2, ok, torch.ones(1), HM // 2).item() == pytest.approx(0.5 / 3)


def test_joint_proj_and_cam_scales_match_official_factors():
    proj = torch.zeros(1, 30, 2)
    tgt = torch.zeros(1, 30, 3)
    tgt[..., 0] = 4.0  # 4 cells on the 64 grid -> official (1/8) * 4 = 0.5 on x, 0 on y
    ok = torch.ones(1, 30)
    assert R.joint_proj_loss(proj, tgt, ok, HM).item() == pytest.approx(0.25)  # mean over x and y
    cam = torch.zeros(1, 30, 3)
    tcam = torch.full((1, 30, 3), 0.1)
    assert R.joint_cam_loss(cam, tcam, ok, torch.ones(1), 5.0).item() == pytest.approx(0.5)
    assert R.joint_cam_loss(cam, tcam, ok, torch.zeros(1), 5.0).item() == 0.0


def test_pose_loss_ignores_unsupervised_joints_and_has_finite_grad_at_identity():
    rot = torch.eye(3).expand(2, 24, 3, 3).clone().requires_grad_(True)
    target = torch.zeros(2, 24, 3)
    target[:, 7] = 1.0  # unsupervised ankle
    mask = _LinearBody().pose_supervision_mask()
    loss = R.pose_loss(rot, target, torch.ones(2), mask)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    target[:, 3] = 0.3
    loss = R.pose_loss(rot, target, torch.ones(2), mask)
    assert loss.item() == pytest.approx(0.3 * 3 / (16 * 3), rel=1e-4)
    loss.backward()
    assert torch.isfinite(rot.grad).all() and rot.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------- weighting


@pytest.mark.parametrize("mode,groups", [("per_term", 6), ("grouped", 3), ("none", 0)])
def test_uncertainty_weighting_modes(mode, groups):
    w = UncertaintyWeighting(mode, REGRESSION_TERMS)
    assert len(list(w.parameters())) == groups
    terms = {n: torch.tensor(float(i + 1)) for i, n in enumerate(REGRESSION_TERMS)}
    weighted, weights = w(terms)
    total = sum(weighted.values())
    raw = sum(terms.values())
    if mode == "none":
        assert total.item() == pytest.approx(raw.item())
    else:  # p = 1: 0.5 * L + log(2) per group
        assert total.item() == pytest.approx(0.5 * raw.item() + groups * math.log(2.0))
        assert all(v.item() == pytest.approx(0.5) for v in weights.values())
    assert set(GROUPS_OF_TERMS) == set(REGRESSION_TERMS)


def test_uncertainty_weighting_gradient_and_bad_mode():
    w = UncertaintyWeighting("per_term", REGRESSION_TERMS)
    terms = {n: torch.tensor(2.0) for n in REGRESSION_TERMS}
    weighted, _ = w(terms)
    sum(weighted.values()).backward()
    # d/dp (0.5 L / p^2 + log(1 + p^2)) at p = 1 = -L + 1 = -1
    for p in w.parameters():
        assert p.grad.item() == pytest.approx(-1.0)
    with pytest.raises(InputError, match="weighting"):
        UncertaintyWeighting("paper", REGRESSION_TERMS)


# ---------------------------------------------------------------------------------------------- criterion


def test_criterion_zero_terms_when_prediction_equals_target():
    out, t = _consistent_pair(2)
    crit = Criterion(LossConfig(), _LinearBody(), ModelConfig())
    res = crit(out, t)
    assert isinstance(res, LossOutput)
    assert set(res.terms) == set(REGRESSION_TERMS)
    for name, v in res.terms.items():
        assert v.item() == pytest.approx(0.0, abs=2e-4), name
    assert res.total.item() == pytest.approx(6 * math.log(2.0), abs=1e-3)
    assert res.total.item() == pytest.approx(sum(v.item() for v in res.weighted.values()), abs=1e-5)
    assert len(crit.weight_parameters()) == 6
    assert first_non_finite(res) is None


def test_criterion_contrastive_terms_gradients_and_non_finite_report():
    out, t = _consistent_pair(3)
    cfg = LossConfig(use_contrastive=True, weighting="grouped", j2j_anchors=16, j2n_anchors=16)
    crit = Criterion(cfg, _LinearBody(), ModelConfig())
    res = crit(out, t, generator=torch.Generator().manual_seed(0))
    assert {"j2j", "j2n"} <= set(res.terms)
    assert res.terms["j2j"].item() > 0 and res.terms["j2n"].item() > 0
    assert res.weighted["j2j"].item() == pytest.approx(0.1 * res.terms["j2j"].item())
    assert res.total.item() == pytest.approx(sum(v.item() for v in res.weighted.values()), abs=1e-5)
    res.total.backward()
    assert out.feat_volume.grad.abs().sum() > 0
    assert out.joints_unit.grad[-1].abs().sum() > 0
    assert all(p.grad is not None for p in crit.weight_parameters())

    bad_t = Targets(**{k: v.clone() for k, v in vars(t).items()})
    bad_t.joints_cam[0, 3, 1] = float("nan")  # a valid entry
    name = first_non_finite(crit(out, bad_t, generator=torch.Generator().manual_seed(0)))
    assert name is not None and name.startswith("terms.joint_cam")


def test_criterion_rejects_wrong_shapes():
    out, t = _consistent_pair(4)
    crit = Criterion(LossConfig(), _LinearBody(), ModelConfig())
    t.pose_aa = t.pose_aa[:, :22]
    with pytest.raises(InputError, match="targets.pose_aa"):
        crit(out, t)


def test_criterion_state_dict_holds_only_learned_weights():
    crit = Criterion(LossConfig(weighting="grouped"), _LinearBody(), ModelConfig())
    assert sorted(crit.state_dict()) == ["weighting.p.2d", "weighting.p.3d", "weighting.p.body"]


@pytest.mark.parametrize(
    "override", ["loss.temperature=0", "loss.j2n_negatives=0", "loss.j2j_weight=-1", "loss.weighting=paper"]
)
def test_loss_config_rejects_bad_values(override):
    from jotr.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="loss"):
        load_config(overrides=[override])
