"""The JOTR network (small config, CPU): shapes, gradients, determinism, batch independence, pieces."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from jotr.config import ConfigError, JOTRConfig, merge_config
from jotr.errors import CheckpointError, InputError
from jotr.geometry.coords import hm_to_px
from jotr.models import build_model
from jotr.models.config import ModelConfig
from jotr.models.jotr import JOTR, drop_joints, render_heatmaps
from jotr.models.resnet import ResNet, load_backbone_weights
from jotr.models.transformer import sine_position_encoding_2d, sinusoid_table_1d
from jotr.models.vposer import VPoserV1, load_vposer_weights
from jotr.structures import Inputs, JOTROutput

SMALL = ModelConfig.small()


def make_inputs(cfg: ModelConfig, batch: int, seed: int = 0) -> Inputs:
    g = torch.Generator().manual_seed(seed)
    s, hm = cfg.input_size, cfg.heatmap_size
    valid = (torch.rand(batch, cfg.num_input_joints, generator=g) > 0.2).float()
    return Inputs(
        image=torch.rand(batch, 3, s, s, generator=g),
        keypoints_hm=torch.rand(batch, cfg.num_input_joints, 2, generator=g) * hm,
        keypoints_valid=valid,
    )


def check_output(out: JOTROutput, cfg: ModelConfig, body, batch: int) -> None:
    n = cfg.input_size // 32
    assert out.joints_unit.shape == (cfg.dec_layers, batch, cfg.num_query_joints, 3)
    assert out.pose_rotmat.shape == (batch, body.num_pose_joints, 3, 3)
    assert out.shape.shape == (batch, body.num_shape)
    assert out.cam.shape == (batch, 3) and out.cam_t.shape == (batch, 3)
    assert out.vertices.shape == (batch, body.num_vertices, 3)
    assert out.joints_cam.shape == (batch, 30, 3)
    assert out.joints_proj_hm.shape == (batch, 30, 2)
    assert out.feat_volume.shape == (batch, cfg.d_model, cfg.volume_depth, n, n)
    assert out.depth_exponent.shape == ()
    for name in ("joints_unit", "pose_rotmat", "shape", "cam_t", "vertices", "joints_cam", "joints_proj_hm"):
        assert torch.isfinite(getattr(out, name)).all(), name
    assert ((out.joints_unit >= 0) & (out.joints_unit <= 1)).all()
    # rotations are proper
    R = out.pose_rotmat.double()
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    assert torch.allclose(R @ R.transpose(-1, -2), eye, atol=1e-4)
    assert torch.allclose(torch.linalg.det(R), torch.ones(R.shape[:2], dtype=R.dtype), atol=1e-4)
    # root-relative at the jotr30 pelvis
    assert torch.allclose(out.joints_cam[:, 0], torch.zeros(batch, 3), atol=1e-6)
    # camera depth is k * sigmoid(gamma) > 0
    assert (out.cam_t[:, 2] > 0).all()


@pytest.fixture(scope="module")
def small_model(toy_body) -> JOTR:
    torch.manual_seed(0)
    return JOTR(SMALL, toy_body)


def test_small_output_shapes_train_and_eval(small_model, toy_body):
    x = make_inputs(SMALL, 2)
    small_model.eval()
    with torch.no_grad():
        out = small_model(x)
    check_output(out, SMALL, toy_body, 2)
    assert out.pose_latent is None
    small_model.train()
    with torch.no_grad():
        out_train = small_model(x, generator=torch.Generator().manual_seed(0))
    small_model.eval()
    assert type(out_train) is JOTROutput
    check_output(out_train, SMALL, toy_body, 2)


def test_projection_matches_camera_model(small_model, toy_body):
    """joints_proj_hm = pinhole projection of (absolute joints + cam_t) with the virtual crop camera."""
    small_model.eval()
    x = make_inputs(SMALL, 2, seed=3)
    with torch.no_grad():
        out = small_model(x)
        body_out = toy_body(out.pose_rotmat, out.shape)
        joints_abs = toy_body.joints(body_out, "jotr30") + out.cam_t[:, None]
    f = 5000.0 * SMALL.input_size / 256
    c = SMALL.input_size / 2
    px = joints_abs[..., :2] / (joints_abs[..., 2:] + 1e-4) * f + c
    assert torch.allclose(
        hm_to_px(out.joints_proj_hm, SMALL.input_size, SMALL.heatmap_size), px, rtol=1e-4, atol=1e-3
    )
    # the depth scale k = sqrt(f^2 * 2.5^2 / s^2) = 48.83 (independent of the crop size)
    k = math.sqrt(f * f * 2.5**2 / SMALL.input_size**2)
    assert abs(k - 48.828125) < 1e-6
    assert torch.allclose(out.cam_t[:, 2], k * torch.sigmoid(out.cam[:, 2]))


def angle_to(R: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3), (..., 3, 3) -> (...) rotation angle of R ref^T in radians."""
    cos = ((R @ ref.transpose(-1, -2)).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.arccos(cos.clamp(-1, 1))


def test_untrained_heads_start_at_the_rest_pose_facing_the_camera(toy_body):
    """model.head_init="rest_pose" (default): an untrained network predicts the upright rest pose facing the
    camera (root R_x(180 deg), identity elsewhere) and zero shape for any image; "default" (PyTorch's init,
    the official code) predicts random rotations."""
    from jotr.body.base import rest_pose_rotmat

    x = make_inputs(SMALL, 3, seed=4)
    rest = rest_pose_rotmat(toy_body.num_pose_joints)
    torch.manual_seed(2)
    model = JOTR(SMALL, toy_body).eval()
    with torch.no_grad():
        out = model(x)
    angle = angle_to(out.pose_rotmat, rest)
    assert angle.max() < math.radians(5), angle.max()
    assert out.shape.abs().max() < 0.05
    torch.manual_seed(2)
    official = JOTR(dataclasses.replace(SMALL, head_init="default"), toy_body).eval()
    with torch.no_grad():
        out = official(x)
    angle = angle_to(out.pose_rotmat, rest)
    assert angle.mean() > math.radians(20), angle.mean()


def test_gradients_reach_every_trainable_parameter(toy_body):
    torch.manual_seed(1)
    model = JOTR(SMALL, toy_body).train()
    # The content queries are zero at init (as in the paper's code), which makes decoder layer 0's
    # self-attention see identical zero values (zero gradient for its weights, exactly at init only). Move
    # them off zero.
    with torch.no_grad():
        model.decoder.body_content.normal_()
        model.decoder.joint_content.normal_()
    out = model(make_inputs(SMALL, 2, seed=1), generator=torch.Generator().manual_seed(0))
    loss = (
        out.vertices.square().mean()
        + out.joints_unit.mean()
        + out.joints_proj_hm.abs().mean() * 1e-2
        + out.feat_volume.square().mean()
        + out.shape.square().mean()
    )
    loss.backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert len(params) > 100
    no_grad = [n for n, p in params if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad}"
    bad = [n for n, p in params if not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients: {bad}"
    zero = [n for n, p in params if p.grad.abs().sum() == 0]
    assert not zero, f"all-zero gradients: {zero}"
    assert model.depth_exponent.grad is not None and model.depth_exponent.grad.abs() > 0


def test_eval_determinism_and_batch_independence(small_model):
    small_model.eval()
    x = make_inputs(SMALL, 3, seed=5)
    with torch.no_grad():
        a = small_model(x)
        b = small_model(x)
        single = small_model(Inputs(x.image[1:2], x.keypoints_hm[1:2], x.keypoints_valid[1:2]))
    for name in ("joints_unit", "pose_rotmat", "shape", "cam_t", "vertices", "feat_volume"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert torch.allclose(single.vertices[0], a.vertices[1], atol=1e-4)
    assert torch.allclose(single.joints_unit[:, 0], a.joints_unit[:, 1], atol=1e-5)
    assert torch.allclose(single.feat_volume[0], a.feat_volume[1], atol=1e-4)


def test_training_randomness_uses_the_generator(toy_body):
    """With dropout off, the only training randomness is the joint dropping, driven by ``generator``."""
    torch.manual_seed(0)
    model = JOTR(merge_config(SMALL, {"dropout": 0.0, "joint_mask_prob": 0.3}), toy_body).train()
    x = make_inputs(SMALL, 2, seed=7)
    x.keypoints_valid.fill_(1.0)
    with torch.no_grad():
        a = model(x, generator=torch.Generator().manual_seed(11))
        b = model(x, generator=torch.Generator().manual_seed(11))
        c = model(x, generator=torch.Generator().manual_seed(12))
    assert torch.equal(a.joints_unit, b.joints_unit)
    assert not torch.equal(a.joints_unit, c.joints_unit)
    valid = torch.ones(4, 30)
    m1 = drop_joints(valid, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(m1, drop_joints(valid, 0.5, torch.Generator().manual_seed(3)))
    big = drop_joints(torch.ones(200, 30), 0.1, torch.Generator().manual_seed(0))
    assert abs((1 - big.mean().item()) - 0.1) < 0.02
    assert torch.equal(drop_joints(valid, 0.0, None), valid)


def test_eval_fast_path_matches_autograd_path(small_model):
    """Without autograd the BatchNorms are folded into the convolutions: same result."""
    small_model.eval()
    x = make_inputs(SMALL, 2, seed=9)
    with torch.no_grad():
        fast = small_model(x)
    slow = small_model(x)  # grad enabled: plain conv + BN modules
    assert torch.allclose(fast.feat_volume, slow.feat_volume.detach(), atol=1e-4)
    assert torch.allclose(fast.vertices, slow.vertices.detach(), atol=1e-4)


def test_attention_kernels_agree(toy_body):
    torch.manual_seed(2)
    sdpa = JOTR(SMALL, toy_body).eval()
    naive = JOTR(merge_config(SMALL, {"attention": "naive"}), toy_body).eval()
    naive.load_state_dict(sdpa.state_dict())
    x = make_inputs(SMALL, 2, seed=2)
    with torch.no_grad():
        a, b = sdpa(x), naive(x)
    assert torch.allclose(a.feat_volume, b.feat_volume, atol=1e-5)
    assert torch.allclose(a.joints_unit, b.joints_unit, atol=1e-5)
    assert torch.allclose(a.vertices, b.vertices, atol=1e-5)


def test_bf16_autocast_close_to_fp32(small_model):
    small_model.eval()
    x = make_inputs(SMALL, 2, seed=4)
    with torch.no_grad():
        ref = small_model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = small_model(x)
    assert low.vertices.dtype == torch.float32 and low.joints_unit.dtype == torch.float32
    assert torch.isfinite(low.vertices).all()
    assert (low.joints_unit - ref.joints_unit).abs().max() < 0.05


def test_input_validation(small_model):
    x = make_inputs(SMALL, 2)
    with pytest.raises(InputError, match="inputs.image"):
        small_model(Inputs(torch.rand(2, 3, 64, 64), x.keypoints_hm, x.keypoints_valid))
    with pytest.raises(InputError, match="keypoints_hm"):
        small_model(Inputs(x.image, x.keypoints_hm[:, :15], x.keypoints_valid))
    with pytest.raises(InputError, match="keypoints_valid"):
        small_model(Inputs(x.image, x.keypoints_hm, x.keypoints_valid[:, :1]))


def test_config_validation():
    with pytest.raises(ConfigError, match="heatmap_size"):
        merge_config(JOTRConfig(), {"model": {"input_size": 128}})
    with pytest.raises(ConfigError, match="multiple of 32"):
        merge_config(JOTRConfig(), {"model": {"input_size": 100, "heatmap_size": 25}})
    cfg = merge_config(JOTRConfig(), {"model": {"input_size": 128, "heatmap_size": 32}})
    assert cfg.model.input_size == 128


# ------------------------------------------------------------------------------------------- pieces


def test_heatmaps_gaussian_and_validity():
    kp = torch.tensor([[[10.0, 20.0], [5.5, 3.0], [float("nan"), 1.0]]])
    valid = torch.tensor([[1.0, 0.0, 1.0]])
    hm = render_heatmaps(kp, valid, size=32, sigma=2.5)
    assert hm.shape == (1, 3, 32, 32)
    assert hm[0, 0, 20, 10] == 1.0 and hm[0, 0].argmax() == 20 * 32 + 10
    assert torch.isclose(hm[0, 0, 20, 12], torch.tensor(math.exp(-4 / (2 * 2.5**2))))
    assert torch.isclose(hm[0, 0, 23, 11], torch.tensor(math.exp(-(1 + 9) / (2 * 2.5**2))))
    assert hm[0, 1].abs().max() == 0  # invalid joints are blank
    assert hm[0, 2].abs().max() == 0 and torch.isfinite(hm).all()  # so are non-finite keypoints


def test_depth_anchors_and_position_encodings(small_model):
    k = torch.tensor(3.0)
    anchors = small_model.depth_anchor_tokens(k)  # (D*h*w, 3) (Z, Y, X)
    n = SMALL.input_size // 32
    z = anchors.reshape(SMALL.volume_depth, n, n, 3)[:, 0, 0, 0]
    ref = torch.tensor([0, 0.002, 0.016, 0.053, 0.125, 0.244, 0.422, 0.670])
    assert torch.allclose(z, ref, atol=1e-3)
    grid = anchors.reshape(SMALL.volume_depth, n, n, 3)
    assert torch.allclose(grid[0, :, 1, 1], torch.arange(n) / n)  # Y varies along h
    assert torch.allclose(grid[0, 1, :, 2], torch.arange(n) / n)  # X varies along w
    # DETR sine encoding, normalize=True, written out for one position
    pos = sine_position_encoding_2d(4, 4, 16)
    y, x = 2, 1  # row 2, column 1
    ey, ex = (y + 1) / (4 + 1e-6) * 2 * math.pi, (x + 1) / (4 + 1e-6) * 2 * math.pi
    expect = []
    for v in (ey, ex):
        for i in range(8):
            a = v / 10000 ** (2 * (i // 2) / 8)
            expect.append(math.sin(a) if i % 2 == 0 else math.cos(a))
    assert torch.allclose(pos[y * 4 + x], torch.tensor(expect), atol=1e-5)
    table = sinusoid_table_1d(10, 8)
    assert torch.isclose(table[3, 2], torch.tensor(math.sin(3 / 10000 ** (2 / 8))))
    assert torch.isclose(table[3, 3], torch.tensor(math.cos(3 / 10000 ** (2 / 8))))


def test_resnet_depths_and_backbone_weights(tmp_path):
    for depth, channels in (("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)):
        assert ResNet(depth).out_channels == channels
    torch.manual_seed(0)
    src = ResNet("resnet18")
    state = {
        f"module.{k}": v.clone() for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")
    }
    state["module.fc.weight"] = torch.randn(1000, 512)  # ImageNet classifier: ignored
    state["module.fc.bias"] = torch.randn(1000)
    state["module.deconv_layers.0.weight"] = torch.randn(512, 256, 4, 4)  # SimpleBaseline head: ignored
    torch.save({"state_dict": state}, tmp_path / "r18.pth")
    dst = ResNet("resnet18")
    load_backbone_weights(dst, tmp_path / "r18.pth")
    for k, v in src.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(dst.state_dict()[k], v), k
    bad = dict(state)
    del bad["module.layer2.0.downsample.0.weight"]
    bad["module.layer9.weight"] = torch.zeros(1)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(
        CheckpointError, match=r"missing.*layer2\.0\.downsample\.0\.weight.*unexpected.*layer9"
    ):
        load_backbone_weights(ResNet("resnet18"), tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="resnet50"):
        load_backbone_weights(ResNet("resnet50"), tmp_path / "r18.pth")
    # through the config: build_model(pretrained=True) loads cfg.model.backbone_weights
    cfg = merge_config(
        JOTRConfig(),
        {
            "body": {"kind": "toy"},
            "model": {
                **{
                    k: getattr(SMALL, k)
                    for k in ("backbone", "input_size", "heatmap_size", "d_model", "nhead")
                },
                "backbone_weights": str(tmp_path / "r18.pth"),
            },
        },
    )
    model = build_model(cfg)
    assert torch.equal(model.backbone.conv1.weight, src.conv1.weight)


def write_random_vposer(path, seed=0) -> VPoserV1:
    torch.manual_seed(seed)
    vp = VPoserV1()
    with torch.no_grad():
        for p in vp.parameters():
            p.normal_(0, 0.05)
    torch.save(vp.state_dict(), path)
    return vp


def test_vposer_head(tmp_path, toy_body):
    ref = write_random_vposer(tmp_path / "vposer.pt")
    cfg = merge_config(SMALL, {"pose_head": "vposer", "vposer_weights": str(tmp_path / "vposer.pt")})
    model = JOTR(cfg, toy_body).train()
    assert not model.vposer.training  # frozen prior stays in eval mode
    assert all(not p.requires_grad for p in model.vposer.parameters())
    for k, v in ref.state_dict().items():
        assert torch.equal(model.vposer.state_dict()[k], v)
    out = model(make_inputs(cfg, 2), generator=torch.Generator().manual_seed(0))
    check_output(out, cfg, toy_body, 2)
    assert out.pose_latent.shape == (2, 32)
    assert torch.equal(out.pose_rotmat[:, 22:], torch.eye(3).expand(2, 2, 3, 3))  # hands are identity
    assert torch.allclose(out.pose_rotmat[:, 1:22], model.vposer.decode(out.pose_latent))
    out.vertices.sum().backward()
    assert model.pose_head.layers[0].weight.grad is not None  # gradients flow through the frozen decoder
    # errors: no weights, wrong file, non-SMPL body
    with pytest.raises(InputError, match="vposer_weights"):
        JOTR(merge_config(SMALL, {"pose_head": "vposer"}), toy_body)
    torch.save({"bodyprior_dec_fc1.weight": torch.zeros(512, 32)}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="missing"):
        load_vposer_weights(VPoserV1(), tmp_path / "bad.pt")


def test_inference_weight_caches_follow_the_weights(toy_body):
    """Folded conv+BN and bf16 weight copies are cached for inference; new weights invalidate them."""
    from jotr.models.transformer import autocast_param

    lin = torch.nn.Linear(4, 4)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        first = autocast_param(lin, "w", lin.weight)
        assert first.dtype == torch.bfloat16 and autocast_param(lin, "w", lin.weight) is first
        lin.weight.add_(1.0)
        assert torch.allclose(autocast_param(lin, "w", lin.weight).float(), lin.weight, atol=0.02)
    assert autocast_param(lin, "w", lin.weight) is lin.weight  # autograd enabled: the parameter itself

    torch.manual_seed(3)
    model, other = JOTR(SMALL, toy_body).eval(), JOTR(SMALL, toy_body).eval()
    x = make_inputs(SMALL, 1, seed=8)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for ctx in (torch.autocast("cpu", enabled=False), torch.autocast("cpu", dtype=torch.bfloat16)):
            with ctx:
                model.load_state_dict(original)
                model(x)  # fill the caches
                expect = other(x).feat_volume
                assert not torch.allclose(model(x).feat_volume, expect, atol=1e-3)
                model.load_state_dict(other.state_dict())
                assert torch.allclose(model(x).feat_volume, expect, atol=1e-5)
