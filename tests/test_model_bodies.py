"""The JOTR network with every body model, and the paper config (built only twice: it has 40M parameters)."""

from __future__ import annotations

import pytest
import torch
from test_model import check_output, make_inputs, write_random_vposer

from jotr.config import JOTRConfig, merge_config
from jotr.errors import InputError
from jotr.models import build_model
from jotr.models.config import ModelConfig
from jotr.models.jotr import JOTR

OFFICIAL_TOTAL = 39_680_611  # parameters of the official checkpoint (frozen VPoser included)
OFFICIAL_TRAINABLE = 39_007_015


@pytest.fixture(scope="module")
def anny_body(anny_cache_env):
    from jotr.body.anny import AnnyBody

    return AnnyBody()


def test_paper_config_smpl_vposer_parameter_count_and_shapes(tmp_path, smpl_body, smpl_model_dir):
    write_random_vposer(tmp_path / "vposer.pt")
    cfg = merge_config(
        JOTRConfig(),
        {
            "body": {"kind": "smpl", "smpl_model_path": str(smpl_model_dir)},
            "model": {"pose_head": "vposer", "vposer_weights": str(tmp_path / "vposer.pt")},
        },
    )
    model = build_model(cfg, body=smpl_body).eval()
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert abs(total - 39.6e6) / 39.6e6 < 0.005
    assert (total, trainable) == (OFFICIAL_TOTAL, OFFICIAL_TRAINABLE)
    # the body model's (licensed) arrays never reach the state dict
    assert not any(k.startswith("body.") for k in model.state_dict())
    with torch.no_grad():
        out = model(make_inputs(cfg.model, 2))
    check_output(out, cfg.model, smpl_body, 2)
    assert out.vertices.shape == (2, 6890, 3)
    assert out.feat_volume.shape == (2, 256, 8, 8, 8)
    assert out.pose_latent.shape == (2, 32)


def test_paper_config_anny_rot6d(anny_body):
    torch.manual_seed(0)
    cfg = ModelConfig()
    model = JOTR(cfg, anny_body).eval()
    with torch.no_grad():
        out = model(make_inputs(cfg, 1))
    check_output(out, cfg, anny_body, 1)
    assert out.pose_rotmat.shape[1] == anny_body.num_pose_joints


def test_small_config_anny_bounded_shape(anny_body):
    torch.manual_seed(0)
    cfg = ModelConfig.small()
    model = JOTR(cfg, anny_body).train()
    out = model(make_inputs(cfg, 2), generator=torch.Generator().manual_seed(0))
    check_output(out, cfg, anny_body, 2)
    lo, hi = anny_body.shape_bounds
    assert ((out.shape > lo) & (out.shape < hi)).all()  # phenotypes through a sigmoid
    out.vertices.square().mean().backward()
    assert torch.isfinite(model.shape_head.layers[-1].weight.grad).all()
    assert model.shape_head.layers[-1].weight.grad.abs().sum() > 0
    with pytest.raises(InputError, match="SMPL"):
        JOTR(merge_config(cfg, {"pose_head": "vposer"}), anny_body)


def test_small_config_smpl_file_body(smpl_body):
    torch.manual_seed(0)
    cfg = ModelConfig.small()
    model = JOTR(cfg, smpl_body).eval()
    with torch.no_grad():
        out = model(make_inputs(cfg, 2))
    check_output(out, cfg, smpl_body, 2)
    assert out.vertices.shape == (2, 6890, 3)
