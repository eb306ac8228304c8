"""Ablation variants (jotr.models.baselines) and a smoke run of experiments/ablation/run_ablation.py
(a few steps per variant on a few synthetic scenes)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from jotr.config import JOTRConfig, merge_config
from jotr.errors import InputError
from jotr.models.baselines import AvgFeatReg, JOTR2DOnly, build_variant
from jotr.models.config import ModelConfig
from jotr.structures import Inputs

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "ablation" / "run_ablation.py"
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


def _inputs(cfg: ModelConfig, batch: int, seed: int = 0) -> Inputs:
    g = torch.Generator().manual_seed(seed)
    return Inputs(
        image=torch.rand(batch, 3, cfg.input_size, cfg.input_size, generator=g),
        keypoints_hm=torch.rand(batch, cfg.num_input_joints, 2, generator=g) * cfg.heatmap_size,
        keypoints_valid=(torch.rand(batch, cfg.num_input_joints, generator=g) > 0.2).float(),
    )


@pytest.mark.parametrize("arch", ["jotr_2d_only", "avgfeat"])
def test_variant_outputs_and_gradients(toy_body, arch):
    cfg = JOTRConfig(model=TINY)
    torch.manual_seed(0)
    net = build_variant(arch, cfg, body=toy_body)
    assert isinstance(net, JOTR2DOnly if arch == "jotr_2d_only" else AvgFeatReg)
    net.train()
    out = net(_inputs(TINY, 2))
    layers = TINY.dec_layers if arch == "jotr_2d_only" else 1
    assert out.joints_unit.shape == (layers, 2, 15, 3)
    assert out.pose_rotmat.shape == (2, toy_body.num_pose_joints, 3, 3)
    assert out.vertices.shape == (2, toy_body.num_vertices, 3)
    assert out.joints_cam.shape == (2, 30, 3) and out.joints_proj_hm.shape == (2, 30, 2)
    assert out.feat_volume.shape[1] == 0  # no 3D feature volume
    det = torch.linalg.det(out.pose_rotmat.double())
    assert torch.allclose(det, torch.ones_like(det), atol=1e-4)
    (out.vertices.square().mean() + out.joints_unit.mean() + out.cam_t.mean()).backward()
    no_grad = [k for k, p in net.named_parameters() if p.grad is None]
    # the cascade heads' first layers are used; only nothing of the removed 3D branch may remain
    assert not any(k.startswith(("lift", "encoder_3d", "depth_exponent")) for k, _ in net.named_parameters())
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    if arch == "avgfeat":
        assert no_grad == []
        assert set(k.split(".")[0] for k in net.state_dict()) == {"backbone", "pose2feat", "regressor"}


def test_avgfeat_starts_at_the_rest_pose_facing_the_camera(toy_body):
    from jotr.body.base import rest_pose_rotmat

    torch.manual_seed(0)
    net = build_variant("avgfeat", JOTRConfig(model=TINY), body=toy_body).eval()
    with torch.no_grad():
        for p in net.regressor[-1].parameters():
            p.zero_()
        out = net(_inputs(TINY, 3))
    rest = rest_pose_rotmat(toy_body.num_pose_joints).expand_as(out.pose_rotmat)
    assert torch.allclose(out.pose_rotmat, rest, atol=1e-6)
    assert torch.allclose(out.joints_final_unit, torch.full_like(out.joints_final_unit, 0.5))


def test_build_model_dispatches_on_architecture(toy_body):
    from jotr.models import build_model
    from jotr.models.jotr import JOTR

    base = JOTRConfig(model=TINY)
    assert type(build_model(base, body=toy_body)) is JOTR  # the default is the full network
    for arch, cls in (("jotr_2d_only", JOTR2DOnly), ("avgfeat", AvgFeatReg)):
        cfg = merge_config(base, {"model": {"architecture": arch}})
        assert type(build_model(cfg, body=toy_body)) is cls


def test_variant_rejects_contrastive_and_unknown(toy_body):
    cfg = merge_config(JOTRConfig(model=TINY), {"loss": {"use_contrastive": True}})
    with pytest.raises(InputError, match="contrastive"):
        build_variant("avgfeat", cfg, body=toy_body)
    with pytest.raises(InputError, match="unknown architecture"):
        build_variant("resnet_only", JOTRConfig(model=TINY), body=toy_body)
    full = build_variant("jotr", cfg, body=toy_body)  # the full network keeps its volume
    assert hasattr(full, "encoder_3d")


def _load_script():
    name = "jotr_experiments_run_ablation"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_ablation_config_rejects_test_seed_reuse(tmp_path):
    mod = _load_script()
    text = (ROOT / "experiments" / "ablation" / "configs" / "smoke.yaml").read_text()
    bad = text.replace("{family: none, num: 1, seed: 301}", "{family: none, num: 1, seed: 102}")
    assert bad != text
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    with pytest.raises(ValueError, match="test seeds"):
        mod.load_ablation_config(path)


def test_ablation_smoke(tmp_path, anny_cache_env, monkeypatch):
    """Every variant trains a few steps and is evaluated; the report files are consistent."""
    mod = _load_script()
    monkeypatch.chdir(tmp_path)
    config = ROOT / "experiments" / "ablation" / "configs" / "smoke.yaml"
    assert mod.main(["--config", str(config)]) == 0
    acfg = mod.load_ablation_config(config)
    out = tmp_path / acfg.results_dir
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["summary"]) == set(mod.VARIANTS) | {mod.REFERENCE}
    for variant, table in doc["summary"].items():
        for split in ("synthetic/none", "synthetic/crowd", "all"):
            for metric in ("mpjpe", "pa_mpjpe", "pve"):
                v = table[split][metric]["mean"]
                assert math.isfinite(v) and v > 0, (variant, split, metric)
    runs = {(r["variant"], r["seed"]): r for r in doc["runs"]}
    # the contrastive variants are fine-tuned from the same stage-1 checkpoint as the control
    s1 = {runs[(v, 0)]["stage1"]["checkpoint"] for v in ("full", "no_contrastive", "j2n_only", "j2j_only")}
    assert len(s1) == 1
    assert runs[("avgfeat", 0)]["stage1"]["checkpoint"] != next(iter(s1))
    for r in doc["runs"]:
        if r["variant"] == mod.REFERENCE:
            continue
        assert r["stage1"]["steps"] == acfg.stage1_steps and r["stage2"]["steps"] == acfg.stage2_steps
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(doc["runs"]) * 2  # header + runs x test splits
    assert (out / "error_vs_visibility.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "(5) JOTR without 3D branch" in (out / "table.md").read_text()
    # checkpoints carry the architecture, so `jotr eval` rebuilds the variant
    import yaml

    stage_cfg = yaml.safe_load((tmp_path / acfg.runs_dir / "avgfeat_s0" / "config.yaml").read_text())
    assert stage_cfg["model"]["architecture"] == "avgfeat"
    # a rerun finds every run done and only rewrites the report
    assert mod.main(["--config", str(config), "--phase", "train"]) == 0
