"""``jotr export-onnx``: the inference network runs in onnxruntime with a dynamic batch and matches
PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jotr.cli import main
from jotr.config import JOTRConfig, merge_config
from jotr.errors import InputError
from jotr.models.config import ModelConfig

ort = pytest.importorskip("onnxruntime")


def test_export_onnx_parity(tmp_path):
    from jotr.engine.checkpoint import save_checkpoint
    from jotr.inference.onnx_export import INPUT_NAMES, OUTPUT_NAMES, InferenceNetwork, example_inputs
    from jotr.models import build_model

    torch.manual_seed(0)
    cfg = merge_config(JOTRConfig(model=ModelConfig.small()), {"body": {"kind": "toy"}})
    model = build_model(cfg, pretrained=False).eval()
    ckpt = save_checkpoint(tmp_path / "tiny.pt", model=model, cfg=cfg, step=0, rng=False, commit="test")
    out = tmp_path / "jotr.onnx"
    assert main(["export-onnx", str(ckpt), str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jotr.onnx", "tiny.pt"]  # no temp files left

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == list(INPUT_NAMES)
    assert [o.name for o in sess.get_outputs()] == list(OUTPUT_NAMES)
    wrapper = InferenceNetwork(model).eval()
    for batch in (1, 4):  # traced at 2: the batch axis is dynamic
        inputs = example_inputs(cfg.model, batch=batch, seed=10 + batch)
        got = sess.run(None, {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs)})
        with torch.no_grad():
            ref = wrapper(*inputs)
        for name, g, r in zip(OUTPUT_NAMES, got, ref):
            assert g.shape == tuple(r.shape), name
            np.testing.assert_allclose(g, r.numpy(), atol=1e-4, rtol=0, err_msg=name)
    J = model.body.num_pose_joints
    assert got[0].shape == (4, J, 3, 3) and got[4].shape == (4, 15, 3)


def test_export_rejects_old_opset(tmp_path):
    from jotr.inference.onnx_export import export_onnx
    from jotr.models import build_model

    cfg = merge_config(JOTRConfig(model=ModelConfig.small()), {"body": {"kind": "toy"}})
    model = build_model(cfg, pretrained=False).eval()
    with pytest.raises(InputError, match="opset"):
        export_onnx(model, cfg.model, tmp_path / "x.onnx", opset=17)
    assert not any(tmp_path.iterdir())
