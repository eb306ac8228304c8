"""Checkpoint files: atomic, weights-only loadable, strict, clear errors."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from jotr.config import JOTRConfig, merge_config
from jotr.engine.checkpoint import (
    capture_rng_state,
    checkpoint_config,
    load_checkpoint,
    load_state_strict,
    restore_rng_state,
    save_checkpoint,
)
from jotr.errors import CheckpointError


class _Net(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.lin = nn.Linear(3, width)
        self.bn = nn.BatchNorm1d(width)
        # stands in for body-model arrays: must never reach the checkpoint
        self.register_buffer("licensed", torch.arange(5.0), persistent=False)

    def forward(self, x):
        return self.bn(self.lin(x))


def _trained(seed: int = 0):
    torch.manual_seed(seed)
    net = _Net()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5**s)
    for _ in range(2):
        net(torch.randn(6, 3)).square().mean().backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    return net, opt, sched


def test_roundtrip_weights_only(tmp_path):
    net, opt, sched = _trained()
    cfg = merge_config(JOTRConfig(), {"train": {"lr": 3e-4, "max_steps": 7}})
    scaler = torch.amp.GradScaler("cpu")
    path = save_checkpoint(
        tmp_path / "ckpt.pt",
        model=net,
        cfg=cfg,
        step=2,
        epoch=1,
        optimizer=opt,
        scheduler=sched,
        scaler=scaler,
        extra={"note": "x", "best": 1.5},
    )
    # nothing but the file itself is left in the folder (temp file renamed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "jotr-checkpoint" and raw["step"] == 2 and raw["epoch"] == 1
    assert "licensed" not in raw["model"]
    assert set(raw["model"]) == set(net.state_dict())
    assert raw["extra"] == {"note": "x", "best": 1.5}
    assert raw["config"]["train"]["lr"] == pytest.approx(3e-4)
    assert checkpoint_config(raw) == cfg

    data = load_checkpoint(path)
    net2, opt2, sched2 = _trained(seed=1)
    load_state_strict(net2, data["model"])
    opt2.load_state_dict(data["optimizer"])
    sched2.load_state_dict(data["scheduler"])
    for k, v in net.state_dict().items():
        assert torch.equal(v, net2.state_dict()[k]), k
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_checkpoint_config_overrides(tmp_path):
    net, _, _ = _trained()
    save_checkpoint(tmp_path / "c.pt", model=net, cfg=JOTRConfig(), step=0)
    cfg = checkpoint_config(load_checkpoint(tmp_path / "c.pt"), ["body.kind=toy"])
    assert cfg.body.kind == "toy"


def test_rng_state_roundtrip():
    state = capture_rng_state()
    a = (torch.rand(3), np.random.rand(2), random.random())
    torch.rand(10), np.random.rand(4), random.random()
    restore_rng_state(state)
    b = (torch.rand(3), np.random.rand(2), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(bad)
    net, _, _ = _trained()
    good = save_checkpoint(tmp_path / "good.pt", model=net, cfg=JOTRConfig(), step=1)
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(truncated)
    foreign = tmp_path / "official.pt"
    torch.save({"network": net.state_dict(), "epoch": 17}, foreign)
    with pytest.raises(CheckpointError, match="convert-official"):
        load_checkpoint(foreign)
    pickled = tmp_path / "object.pt"
    torch.save({"format": "jotr-checkpoint", "obj": _Net()}, pickled)
    with pytest.raises(CheckpointError, match="not allowed"):
        load_checkpoint(pickled)
    newer = tmp_path / "newer.pt"
    torch.save({"format": "jotr-checkpoint", "version": 99, "model": {}, "config": {}, "step": 0}, newer)
    with pytest.raises(CheckpointError, match="version"):
        load_checkpoint(newer)


def test_strict_load_lists_keys(tmp_path):
    net, _, _ = _trained()
    save_checkpoint(tmp_path / "c.pt", model=net, cfg=JOTRConfig(), step=1)
    data = load_checkpoint(tmp_path / "c.pt")
    pattern = r"shape mismatches: .*lin\.weight: checkpoint \(4, 3\) vs model \(5, 3\)"
    with pytest.raises(CheckpointError, match=pattern):
        load_state_strict(_Net(width=5), data["model"])
    state = dict(data["model"])
    state.pop("lin.bias")
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"missing keys: lin\.bias.*unexpected keys: extra\.weight"):
        load_state_strict(_Net(), state)


def test_failed_save_leaves_no_file(tmp_path):
    class Boom:
        def state_dict(self):
            raise RuntimeError("boom")

    net, _, _ = _trained()
    with pytest.raises(RuntimeError):
        save_checkpoint(tmp_path / "c.pt", model=net, cfg=JOTRConfig(), step=1, scheduler=Boom())
    assert list(tmp_path.iterdir()) == []


def test_stored_config_mismatch(tmp_path):
    net, _, _ = _trained()
    path = tmp_path / "c.pt"
    save_checkpoint(path, model=net, cfg={"model": {"no_such_field": 1}}, step=0)
    with pytest.raises(CheckpointError, match="stored config"):
        checkpoint_config(load_checkpoint(path))
