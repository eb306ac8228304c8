"""The shipped-model file format (``jotr.weights``) and ``scripts/export_shipped_model.py`` on a tiny
random-weight network (toy body): export, strict reload (fp16 -> fp32), same prediction, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from jotr.config import JOTRConfig, merge_config
from jotr.errors import CheckpointError
from jotr.inference.predictor import JOTRPredictor
from jotr.models.config import ModelConfig
from jotr.weights import (
    MAX_SHIPPED_BYTES,
    SHIPPED_FORMAT,
    export_shipped_model,
    load_shipped_model,
    read_shipped_file,
    save_shipped_model,
    shipped_provenance,
)
from jotr.weights.reference import compare_to_reference, reference_inputs, reference_prediction

ROOT = Path(__file__).resolve().parents[1]
TINY = ModelConfig(
    backbone="resnet18",
    input_size=64,
    heatmap_size=16,
    heatmap_sigma=1.0,
    d_model=32,
    nhead=2,
    ffn_dim_2d=64,
    ffn_dim_3d=64,
    ffn_dim_dec=64,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(checkpoint path, fp32 model, cfg) of a random-weight network whose meshes stay in view."""
    from jotr.engine.checkpoint import save_checkpoint
    from jotr.models import build_model

    torch.manual_seed(0)
    cfg = merge_config(JOTRConfig(model=TINY), {"body": {"kind": "toy"}})
    model = build_model(cfg, pretrained=False).eval()
    with torch.no_grad():
        for p in model.cam_head.parameters():
            p.zero_()
        model.cam_head.layers[0].bias[2] = 1.9
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model=model, cfg=cfg, step=7, rng=False, commit="test")
    return path, model, cfg


def _fp16_rounded(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    m = copy.deepcopy(model)
    with torch.no_grad():
        for t in m.state_dict().values():  # the stored tensors only (body-model buffers are not stored)
            if t.is_floating_point():
                t.copy_(t.half().float())
    return m


def test_reference_inputs_are_deterministic():
    img_a, people_a = reference_inputs()
    img_b, people_b = reference_inputs()
    assert img_a.shape == (256, 320, 3) and img_a.dtype == np.uint8
    assert np.array_equal(img_a, img_b)
    assert len(people_a) == 2
    for a, b in zip(people_a, people_b):
        assert np.array_equal(a.keypoints, b.keypoints) and a.keypoint_format == "coco17"
    cut = people_a[1].keypoints
    assert (cut[13:, 2] == 0).all() and (cut[:13, 2] > 0).all()  # knees/ankles outside the image: missing


def test_export_roundtrip_same_prediction(tiny, tmp_path):
    ckpt, model, cfg = tiny
    out = export_shipped_model(ckpt, tmp_path / "m.safetensors", max_bytes=None, require_anny=False)
    tensors, meta = read_shipped_file(out)
    assert meta["format"] == SHIPPED_FORMAT and meta["version"] == "1"
    stored = json.loads(meta["config"])
    assert set(stored) == {"body", "model"} and stored["body"]["kind"] == "toy"
    assert stored["model"]["d_model"] == 32
    assert set(tensors) == set(model.state_dict())
    assert {t.dtype for t in tensors.values() if t.is_floating_point()} == {torch.float16}
    assert out.stat().st_size < sum(v.numel() * 4 for v in model.state_dict().values())  # ~half of fp32
    prov = shipped_provenance(out)
    assert prov["step"] == 7 and prov["source_checkpoint"] == "tiny.pt" and prov["git_commit"] == "test"
    assert prov["training_config"]["model"]["d_model"] == 32

    loaded, loaded_cfg = load_shipped_model(out)
    assert loaded_cfg.model == cfg.model and loaded_cfg.body == cfg.body
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    shipped = JOTRPredictor.from_pretrained(out, device="cpu")
    rounded = JOTRPredictor(_fp16_rounded(model), cfg, device="cpu")
    original = JOTRPredictor(model, cfg, device="cpu")
    got, want, fp32 = (reference_prediction(p) for p in (shipped, rounded, original))
    for name in got:
        np.testing.assert_allclose(got[name], want[name], atol=1e-5, err_msg=name)  # the same network
        np.testing.assert_allclose(got[name], fp32[name], atol=5e-2, err_msg=name)  # fp16 rounding only


def test_strict_loading_errors(tiny, tmp_path):
    from safetensors.torch import save_file

    ckpt, model, cfg = tiny
    out = export_shipped_model(ckpt, tmp_path / "m.safetensors", max_bytes=None, require_anny=False)
    tensors, meta = read_shipped_file(out)

    missing = dict(tensors)
    removed = sorted(missing)[3]
    del missing[removed]
    save_file(missing, str(tmp_path / "missing.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match=f"missing keys: {removed}"):
        load_shipped_model(tmp_path / "missing.safetensors")

    extra = dict(tensors)
    extra["head.not_a_weight"] = torch.zeros(2, dtype=torch.float16)
    save_file(extra, str(tmp_path / "extra.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match=r"unexpected keys: head\.not_a_weight"):
        load_shipped_model(tmp_path / "extra.safetensors")

    other_arch = dict(meta, config=json.dumps({"body": {"kind": "toy"}, "model": {"d_model": 64}}))
    save_file(tensors, str(tmp_path / "arch.safetensors"), metadata=other_arch)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_shipped_model(tmp_path / "arch.safetensors")

    bad_key = dict(meta, config=json.dumps({"body": {"kind": "toy"}, "model": {"not_a_field": 1}}))
    save_file(tensors, str(tmp_path / "key.safetensors"), metadata=bad_key)
    with pytest.raises(CheckpointError, match="not_a_field"):
        load_shipped_model(tmp_path / "key.safetensors")

    foreign = {k: v for k, v in meta.items() if k != "format"}
    save_file(tensors, str(tmp_path / "foreign.safetensors"), metadata=foreign)
    with pytest.raises(CheckpointError, match="not a jotr shipped-model file"):
        load_shipped_model(tmp_path / "foreign.safetensors")

    (tmp_path / "corrupt.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_shipped_model(tmp_path / "corrupt.safetensors")

    with pytest.raises(CheckpointError, match="no shipped model at .*--checkpoint"):
        JOTRPredictor.from_pretrained(tmp_path / "nope.safetensors", device="cpu")


def test_save_refuses_oversized_and_non_finite(tiny, tmp_path):
    _, model, cfg = tiny
    path = tmp_path / "big.safetensors"
    with pytest.raises(CheckpointError, match="above the 0.01 MB limit"):
        save_shipped_model(path, model.state_dict(), cfg, max_bytes=10_000)
    assert not path.exists() and not list(tmp_path.glob(".big*"))  # atomic: nothing left behind
    state = dict(model.state_dict())
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], 1e6)  # overflows float16
    with pytest.raises(CheckpointError, match=f"{key}.*overflows float16"):
        save_shipped_model(path, state, cfg, max_bytes=None)
    assert MAX_SHIPPED_BYTES == 25_000_000


def test_export_refuses_non_anny_by_default(tiny, tmp_path):
    ckpt, _, _ = tiny
    with pytest.raises(CheckpointError, match="'toy' model"):
        export_shipped_model(ckpt, tmp_path / "m.safetensors", max_bytes=None)


def _export_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "export_shipped_model", ROOT / "scripts" / "export_shipped_model.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_export_script_writes_file_and_reference(tiny, tmp_path, capsys):
    ckpt, _, _ = tiny
    out, ref = tmp_path / "w" / "m.safetensors", tmp_path / "data" / "ref.npz"
    args = [str(ckpt), "--out", str(out), "--reference", str(ref), "--allow-non-anny", "--max-mb", "100"]
    script = _export_script()
    assert script.main(args) == 0
    printed = capsys.readouterr().out
    assert "shipped file vs the float32 checkpoint" in printed and "sha256" in printed
    stored = np.load(ref)
    assert stored["joints"].shape == (2, 30, 3) and stored["joints_img"].shape == (2, 30, 2)
    from jotr.weights import file_sha256

    assert str(stored["weights_sha256"]) == file_sha256(out)
    diffs = compare_to_reference(JOTRPredictor.from_pretrained(out, device="cpu"), ref)
    assert max(diffs.values()) < 1e-5
    assert script.main(args[:-1] + ["0.01"]) == 2
    assert "above the 0.01 MB limit" in capsys.readouterr().err


def test_export_script_help():
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "export_shipped_model.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0 and "checkpoint" in res.stdout


def test_demo_commands_use_the_shipped_model(tiny, tmp_path, monkeypatch, capsys):
    """No --checkpoint: `jotr demo` and `jotr demo-synthetic` load the shipped file (here a tiny one put in
    its place); `make demo` therefore trains nothing. A missing file is a clear error naming the ways out."""
    import jotr.weights.shipped_file
    from jotr.cli import main
    from jotr.engine.checkpoint import save_checkpoint
    from jotr.models import build_model

    ckpt, _, _ = tiny
    toy_file = export_shipped_model(ckpt, tmp_path / "toy.safetensors", max_bytes=None, require_anny=False)
    monkeypatch.setattr(jotr.weights.shipped_file, "default_shipped_path", lambda: toy_file)
    image = tmp_path / "000000000001.png"
    import cv2

    cv2.imwrite(str(image), np.full((100, 120, 3), 90, np.uint8))
    kps = np.zeros((17, 3))
    kps[:, 0], kps[:, 1], kps[:, 2] = np.linspace(40, 80, 17), np.linspace(15, 85, 17), 0.9
    kp_file = tmp_path / "kps.json"
    kp_file.write_text(json.dumps([{"image_id": 1, "keypoints": kps.reshape(-1).tolist(), "score": 1}]))
    out = tmp_path / "demo"
    assert main(["demo", str(image), "--out", str(out), "--keypoints", str(kp_file), "--no-render"]) == 0
    assert json.loads((out / image.stem / "params.json").read_text())["body_model"] == "toy"

    torch.manual_seed(0)
    cfg = JOTRConfig(model=TINY)  # Anny: demo-synthetic needs it
    anny_ckpt = save_checkpoint(
        tmp_path / "anny.pt", model=build_model(cfg, pretrained=False), cfg=cfg, step=1, rng=False, commit="t"
    )
    anny_file = export_shipped_model(anny_ckpt, tmp_path / "anny.safetensors", max_bytes=None)
    monkeypatch.setattr(jotr.weights.shipped_file, "default_shipped_path", lambda: anny_file)
    monkeypatch.setenv("JOTR_CACHE", str(tmp_path / "cache"))
    capsys.readouterr()
    args = ["demo-synthetic", "--out", str(tmp_path / "syn"), "--width", "160", "--height", "128"]
    assert main(args + ["--no-render", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "shipped with jotr (no training)" in printed and "MPJPE" in printed
    assert not (tmp_path / "cache").exists()  # nothing trained, nothing cached
    assert main(args + ["--checkpoint", str(anny_ckpt), "--train-demo-model"]) == 2
    assert "exclude each other" in capsys.readouterr().err

    monkeypatch.setattr(
        jotr.weights.shipped_file, "default_shipped_path", lambda: tmp_path / "absent.safetensors"
    )
    assert main(args + ["--no-render", "--force"]) == 2  # --force: the scene's result folder exists already
    err = capsys.readouterr().err
    assert "no shipped model at" in err and "--checkpoint" in err and "--train-demo-model" in err


def test_int8_to_fit_roundtrip(tiny, tmp_path):
    """Above the limit in float16, ``int8_to_fit`` stores the largest weights as per-channel int8 until the
    file fits; the loader dequantises them (strict), the prediction stays close to the float32 network."""
    from safetensors.torch import save_file

    ckpt, model, cfg = tiny
    fp16 = export_shipped_model(ckpt, tmp_path / "fp16.safetensors", max_bytes=None, require_anny=False)
    limit = fp16.stat().st_size - 3_000_000
    with pytest.raises(CheckpointError, match="--int8-to-fit"):
        export_shipped_model(ckpt, tmp_path / "x.safetensors", max_bytes=limit, require_anny=False)
    out = export_shipped_model(
        ckpt, tmp_path / "int8.safetensors", max_bytes=limit, require_anny=False, int8_to_fit=True
    )
    assert out.stat().st_size <= limit
    tensors, meta = read_shipped_file(out)
    int8_keys = json.loads(meta["int8_keys"])
    assert int8_keys and all(tensors[k].dtype == torch.int8 for k in int8_keys)
    assert len(int8_keys) < len([k for k, v in model.state_dict().items() if v.dim() >= 2])  # only as needed
    loaded, _ = load_shipped_model(out)
    for k in int8_keys:
        w, got = model.state_dict()[k], loaded.state_dict()[k]
        step = w.reshape(w.shape[0], -1).abs().amax(1) / 127.0
        assert ((got - w).abs().reshape(w.shape[0], -1).amax(1) <= step / 2 + 1e-7).all()
    got = reference_prediction(JOTRPredictor.from_pretrained(out, device="cpu"))
    want = reference_prediction(JOTRPredictor(model, cfg, device="cpu"))
    np.testing.assert_allclose(got["joints"], want["joints"], atol=2e-2)  # metres, random weights

    broken = {k: v for k, v in tensors.items() if not k.endswith(".__int8_scale__")}
    save_file(broken, str(tmp_path / "broken.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="its scales are missing"):
        load_shipped_model(tmp_path / "broken.safetensors")
