"""The pose-pretrained MoveNet backbone (issue 22): its features are the detector's own intermediate
activations on the same image (the weight mapping), its weight file and JOTR checkpoints load strictly with
one-line errors, a tiny JOTR trains with it, and a network built with ``pretrained=False`` (checkpoint
loading) never reads the shipped weight file."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_MODEL

from jotr.errors import CheckpointError
from jotr.models import movenet
from jotr.models.config import ModelConfig
from jotr.models.pose_backbone import MoveNetBackbone, file_key, load_pose_backbone_weights

MOVENET_MODEL = TINY_MODEL | {"backbone": "movenet", "backbone_weights": "movenet"}


@pytest.fixture(scope="module")
def detector() -> movenet.MoveNetMultiPose:
    return movenet.load_movenet()


@pytest.mark.parametrize("size", [128, 96])
@pytest.mark.parametrize("stride,channels", [(32, 1280), (16, 144)])
def test_features_are_the_detectors_activations(detector, size, stride, channels):
    """stem = output of block 2 (the stride-4 pyramid tap); stride 32 = ReLU6(top), the input of the
    pyramid's top lateral; stride 16 = output of block 12. The backbone takes [0, 1], the detector
    [0, 255]."""
    net = MoveNetBackbone(stride).eval()
    load_pose_backbone_weights(net, "movenet")
    acts: dict[str, torch.Tensor] = {}
    hooks = [
        detector.blocks[2].register_forward_hook(lambda m, i, o: acts.__setitem__("stem", o)),
        detector.blocks[12].register_forward_hook(lambda m, i, o: acts.__setitem__(16, o)),
        detector.top_lateral.register_forward_pre_hook(lambda m, i: acts.__setitem__(32, i[0])),
    ]
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            detector(x * 255.0)
            stem = net.stem(x)
            feat = net.stages(stem)
    finally:
        for h in hooks:
            h.remove()
    assert stem.shape == (2, net.stem_channels, size // 4, size // 4) and net.stem_channels == 40
    assert feat.shape == (2, channels, size // stride, size // stride) and net.out_channels == channels
    torch.testing.assert_close(stem, acts["stem"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(feat, acts[stride], atol=1e-4, rtol=1e-4)
    assert feat.abs().amax() > 1.0  # real activations, not a trivially matching zero map


def _write(state: dict[str, torch.Tensor], path, fmt: str = movenet.WEIGHTS_FORMAT):
    movenet.save_weights(state, {"format": fmt}, path)
    return path


def test_weight_files_load_strictly_with_one_line_errors(tmp_path):
    net = MoveNetBackbone(16)  # a stride-16 backbone: blocks 13-16, top, pyramid and heads are not needed
    good = {file_key(k): torch.randn_like(v) for k, v in net.state_dict().items()}
    good["heads.center.out.bias"] = torch.zeros(1)  # detector-only tensors are left out
    good["blocks.15.project.bias"] = torch.zeros(240)
    load_pose_backbone_weights(net, _write(good, tmp_path / "good.safetensors"))
    assert torch.equal(net.stem_conv.weight, good["stem.weight"])
    assert torch.equal(net.blocks[7].project.bias, good["blocks.7.project.bias"])

    def refused(state, match, fmt=movenet.WEIGHTS_FORMAT):
        path = _write(state, tmp_path / "bad.safetensors", fmt)
        with pytest.raises(CheckpointError, match=match) as err:
            load_pose_backbone_weights(net, path)
        assert "\n" not in str(err.value)

    refused(
        {k: v for k, v in good.items() if k != "blocks.4.depthwise.weight"}, "missing.*blocks.4.depthwise"
    )
    refused(good | {"blocks.3.extra.weight": torch.zeros(3)}, r"unexpected \(1\): blocks.3.extra.weight")
    refused(good | {"surprise": torch.zeros(3)}, r"unexpected \(1\): surprise")
    refused(good | {"stem.weight": torch.zeros(8, 3, 3, 3)}, "shape mismatch.*stem.weight")
    refused(good, "not a jotr MoveNet weight file", fmt="other")
    with pytest.raises(CheckpointError, match="neither 'movenet'"):
        load_pose_backbone_weights(net, "imagenet")
    with pytest.raises(ValueError, match="feature_stride"):
        ModelConfig(backbone="movenet", feature_stride=8)


def test_tiny_jotr_trains_one_step(toy_body):
    from jotr.engine.trainer import TrainStep
    from jotr.losses.config import LossConfig
    from jotr.losses.criterion import Criterion
    from jotr.models.jotr import JOTR
    from jotr.structures import Inputs, Targets

    torch.manual_seed(0)
    cfg = ModelConfig(**MOVENET_MODEL)
    net = JOTR(cfg, toy_body).train()
    ref = MoveNetBackbone(32)
    load_pose_backbone_weights(ref)
    assert torch.equal(net.backbone.blocks[9].expand.weight, ref.blocks[9].expand.weight)
    crit = Criterion(LossConfig(), toy_body, cfg)
    opt = torch.optim.AdamW(list(net.parameters()) + crit.weight_parameters(), lr=1e-4)
    B, J, hm = 2, cfg.num_input_joints, cfg.heatmap_size
    g = torch.Generator().manual_seed(1)
    ones = torch.ones(B, J)
    joints_hm = torch.rand(B, J, 3, generator=g) * hm
    inputs = Inputs(torch.rand(B, 3, cfg.input_size, cfg.input_size, generator=g), joints_hm[..., :2], ones)
    targets = Targets(
        joints_hm=joints_hm,
        joints_trunc=ones,
        joints_cam=torch.randn(B, J, 3, generator=g) * 0.3,
        joints_valid=ones,
        is_3d=torch.ones(B),
        fit_joints_hm=joints_hm,
        fit_joints_trunc=ones,
        pose_aa=torch.randn(B, toy_body.num_pose_joints, 3, generator=g) * 0.2,
        shape=torch.zeros(B, toy_body.num_shape),
        has_fit=torch.ones(B),
    )
    step = TrainStep(net, crit, lambda: torch.autocast("cpu", enabled=False))
    loss, _ = step(inputs, targets, g, g)
    assert torch.isfinite(loss.total)
    before = net.backbone.stem_conv.weight.detach().clone()
    opt.zero_grad(set_to_none=True)
    loss.total.backward()
    grads = [p.grad for p in net.backbone.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert all(gr.abs().sum() > 0 for gr in grads[:4]) and net.backbone.top.weight.grad.abs().sum() > 0
    opt.step()
    assert not torch.equal(before, net.backbone.stem_conv.weight)


def test_checkpoints_carry_the_backbone_and_never_read_the_asset(tmp_path, monkeypatch):
    """A pretrained network's checkpoint holds the backbone; load_model (pretrained=False) restores it
    without opening the shipped weight file; a missing or extra backbone key is a one-line error."""
    from jotr.config import JOTRConfig, merge_config
    from jotr.engine.checkpoint import load_model, load_state_strict, save_checkpoint
    from jotr.models import build_model

    cfg = merge_config(JOTRConfig(), {"body": {"kind": "toy"}, "model": MOVENET_MODEL})
    opened: list[object] = []
    real_read = movenet.read_weights
    monkeypatch.setattr(movenet, "read_weights", lambda path=None: opened.append(path) or real_read(path))
    model = build_model(cfg)  # pretrained=True: reads the file once
    assert len(opened) == 1
    ckpt = save_checkpoint(tmp_path / "mn.pt", model=model, cfg=cfg, step=0, rng=False, commit="test")

    def refuse(path=None):
        raise AssertionError(f"the asset file was read: {path}")

    monkeypatch.setattr(movenet, "read_weights", refuse)
    import safetensors

    monkeypatch.setattr(safetensors, "safe_open", refuse)
    build_model(cfg, pretrained=False)
    loaded, _ = load_model(ckpt)
    assert torch.equal(loaded.backbone.blocks[16].project.weight, model.backbone.blocks[16].project.weight)
    assert torch.equal(loaded.backbone.top.bias, model.backbone.top.bias)

    state = model.state_dict()
    assert any(k.startswith("backbone.stem_conv.") for k in state)
    for bad, match in (
        ({k: v for k, v in state.items() if k != "backbone.blocks.5.expand.weight"}, "missing keys"),
        (state | {"backbone.blocks.5.extra": torch.zeros(1)}, "unexpected keys"),
    ):
        with pytest.raises(CheckpointError, match=match) as err:
            load_state_strict(build_model(cfg, pretrained=False), bad)
        assert "\n" not in str(err.value)
