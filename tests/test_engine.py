"""Training engine: sampler, optimiser groups, schedule, exact resume, init_from, non-finite loss, DDP (gloo),
validation / best.pt, evaluator metrics and reports. CPU only, a tiny network on the toy body model."""

from __future__ import annotations

import copy
import json
import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import roma
import torch
import torch.multiprocessing as mp
from conftest import TINY_MODEL
from torch.utils.data import Dataset

from jotr.config import JOTRConfig, merge_config
from jotr.data.collate import collate
from jotr.data.config import DatasetSpec
from jotr.data.dataset import sample_rng
from jotr.engine import distributed as jd
from jotr.engine.checkpoint import load_checkpoint, save_checkpoint
from jotr.engine.optim import build_optimizer, build_scheduler, lr_multiplier
from jotr.engine.trainer import EpochSampler, NonFiniteLossError, Trainer, train
from jotr.errors import CheckpointError, InputError
from jotr.evaluation.evaluator import EVAL_JOINT_NAMES, Evaluator, evaluate, parse_dataset_arg


def tiny_cfg(out_dir: Path, **train) -> JOTRConfig:
    t = dict(
        out_dir=str(out_dir),
        device="cpu",
        batch_size=2,
        max_steps=4,
        lr=2e-4,
        lr_backbone=1e-4,
        log_every=1,
        ckpt_every=0,
        val_every=0,
        progress=False,
        seed=3,
    )
    t.update(train)
    return merge_config(
        JOTRConfig(),
        {
            "body": {"kind": "toy"},
            "model": TINY_MODEL,
            "train": t,
            "data": {"num_workers": 0},
            "eval": {"batch_size": 3, "num_workers": 0},
        },
    )


class MemoryDataset(Dataset):
    """Random but fixed samples in the pipeline's dict format; per-(epoch, index) 'augmentation' noise."""

    def __init__(self, n: int, body, size: int = 64, hm: int = 16, nan_at: int | None = None, seed: int = 0):
        self.n, self.size, self.hm, self.nan_at, self.seed, self.epoch = n, size, hm, nan_at, seed, 0
        g = torch.Generator().manual_seed(seed)
        self.pose = torch.randn(n, body.num_pose_joints, 3, generator=g) * 0.2
        self.pose[:, 0] = torch.tensor([math.pi, 0.0, 0.0])  # upright, facing the camera
        self.shape = torch.randn(n, body.num_shape, generator=g) * 0.5
        with torch.no_grad():
            out = body(roma.rotvec_to_rotmat(self.pose), self.shape)
            joints = body.joints(out, "jotr30")
        self.joints_cam = joints - joints[:, :1]
        xy = (self.joints_cam[..., :2] / 2.0 + 0.5).clamp(0, 1) * hm
        z = (self.joints_cam[..., 2:] / 2.0 + 0.5).clamp(0, 1) * hm
        self.joints_hm = torch.cat([xy, z], -1)
        self.images = torch.rand(n, 3, size, size, generator=g)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        rng = sample_rng(self.seed, self.epoch, i)
        noise = torch.from_numpy(rng.normal(0, 0.05, (3, self.size, self.size)).astype(np.float32))
        jcam = self.joints_cam[i].clone()
        if self.nan_at is not None and i == self.nan_at:
            jcam[:] = float("nan")
        ones = torch.ones(30)
        return {
            "image": (self.images[i] + noise).clamp(0, 1),
            "keypoints_hm": self.joints_hm[i, :, :2] + torch.from_numpy(rng.normal(0, 0.3, (30, 2))).float(),
            "keypoints_valid": ones,
            "joints_hm": self.joints_hm[i],
            "joints_trunc": ones,
            "joints_cam": jcam,
            "joints_valid": ones,
            "is_3d": torch.tensor(1.0),
            "fit_joints_hm": self.joints_hm[i],
            "fit_joints_trunc": ones,
            "pose_aa": self.pose[i],
            "shape": self.shape[i],
            "has_fit": torch.tensor(0.0 if i == 1 else 1.0),  # sample 1: no GT parameters
            "dataset": "memory",
            "sample_id": f"s{i}",
            "crop_to_img": torch.eye(2, 3),
            "visible_fraction": torch.tensor((i % 5) / 4.0),
            "gender": "neutral",
            "body_model": "toy",
            "extra": {},
        }


@pytest.fixture(scope="module")
def body():
    from jotr.body.toy import ToyBody

    return ToyBody()


@pytest.fixture(scope="module")
def _built(body, tmp_path_factory):
    from jotr.models import build_model

    return build_model(tiny_cfg(tmp_path_factory.mktemp("m")), body=body)


@pytest.fixture(scope="module")
def trained(body, _built, tmp_path_factory):
    """Result of a 2-step run (checkpoint shared by the init_from and evaluation tests)."""
    return train(
        tiny_cfg(tmp_path_factory.mktemp("stage1"), max_steps=2),
        model=copy.deepcopy(_built),
        train_dataset=MemoryDataset(4, body),
        val_datasets={},
        collate_fn=collate,
    )


@pytest.fixture
def net(_built):
    """A fresh copy of the tiny network (building one costs seconds: ResNet initialisation)."""
    return copy.deepcopy(_built)


def _state(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {f"model.{k}": v.clone() for k, v in trainer.model.state_dict().items()}
    out.update({f"crit.{k}": v.clone() for k, v in trainer.criterion.state_dict().items()})
    for i, st in trainer.optimizer.state_dict()["state"].items():
        out[f"opt.{i}.exp_avg"] = st["exp_avg"].clone()
    return out


# ------------------------------------------------------------------------------------------------ pieces


def test_epoch_sampler_partitions_and_resumes():
    full = [EpochSampler(11, seed=5, rank=r, world_size=2) for r in range(2)]
    for s in full:
        s.set_epoch(1)
    a, b = full[0].indices(), full[1].indices()
    assert len(a) == len(b) == 5 and not set(a) & set(b)  # no padding, no duplicates
    again = EpochSampler(11, seed=5, rank=0, world_size=2)
    again.set_epoch(1, start=3)
    assert list(again) == a[3:] and len(again) == 2
    other = EpochSampler(11, seed=5)
    other.set_epoch(2)
    one = EpochSampler(11, seed=5)
    one.set_epoch(1)
    assert other.indices() != one.indices()
    assert list(jd.shard_indices(7, 1, 3)) == [1, 4]


def test_param_groups_and_schedule(tmp_path, body, net):
    from jotr.losses.criterion import Criterion

    cfg = tiny_cfg(tmp_path, weight_decay=1e-3, warmup_steps=2, lr_schedule="step", lr_decay_epochs=(1,))
    model = net
    crit = Criterion(cfg.loss, body, cfg.model)
    opt = build_optimizer(model, crit, cfg.train)
    groups = {g["name"]: g for g in opt.param_groups}
    assert set(groups) == {"backbone", "rest", "loss_weights"}
    assert groups["backbone"]["lr"] == pytest.approx(1e-4) and groups["rest"]["lr"] == pytest.approx(2e-4)
    assert groups["loss_weights"]["weight_decay"] == 0.0 and groups["rest"]["weight_decay"] == 1e-3
    n_backbone = sum(p.numel() for p in model.backbone.parameters())
    assert sum(p.numel() for p in groups["backbone"]["params"]) == n_backbone
    assert {id(p) for p in groups["loss_weights"]["params"]} == {id(p) for p in crit.parameters()}
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) + sum(
        p.numel() for p in crit.parameters()
    )
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == trainable
    f = lr_multiplier(cfg.train, steps_per_epoch=10, total_steps=30)
    assert [f(0), f(1), f(5), f(10), f(20)] == pytest.approx([0.5, 1.0, 1.0, 0.1, 0.1])
    cos = merge_config(cfg, {"train": {"lr_schedule": "cosine", "warmup_steps": 0}}).train
    g = lr_multiplier(cos, 10, 30)
    assert g(0) == pytest.approx(1.0) and g(15) == pytest.approx(0.5) and g(30) == pytest.approx(0.0)
    sched = build_scheduler(opt, cfg.train, 10, 30)
    assert groups["rest"]["lr"] == pytest.approx(1e-4)  # warm-up factor applied at step 0
    del sched


# ------------------------------------------------------------------------------------------ training loop


def test_train_writes_run_dir_and_tensorboard(tmp_path, body, net):
    cfg = tiny_cfg(tmp_path / "run", max_steps=3, val_every=3)
    data = MemoryDataset(6, body)
    res = train(
        cfg,
        train_dataset=data,
        val_datasets={"memory": MemoryDataset(5, body, seed=1)},
        model=net,
        collate_fn=collate,
    )
    assert res.steps == 3 and len(res.loss_history) == 3 and math.isfinite(res.final_loss)
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and (run / "last.pt").is_file()
    info = json.loads((run / "run_info.json").read_text())
    assert "git_commit" in info and info["world_size"] == 1
    assert list((run / "tb").glob("events.out.tfevents.*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"loss/total", "loss/joint_cam", "model/depth_exponent", "lr/rest", "perf/samples_per_s"} <= tags
    assert any(t.startswith("loss_weight/") for t in tags) and "val/mpjpe" in tags
    assert res.best_checkpoint == run / "best.pt" and len(res.val_history) == 1
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["step"] == 3 and "optimizer" in ckpt and "criterion" in ckpt and "rng" in ckpt
    assert not any(k.startswith("body.") for k in ckpt["model"])  # body-model arrays never saved


def test_resume_is_exact(tmp_path, body, net):
    """N steps + resume + M steps == N + M steps straight (dropout, joint masking and augmentation on)."""
    data = MemoryDataset(4, body)  # 2 steps per epoch: the resumed part crosses an epoch boundary
    straight = Trainer(
        tiny_cfg(tmp_path / "a", max_steps=3),
        model=copy.deepcopy(net),
        train_dataset=data,
        val_datasets={},
        collate_fn=collate,
    )
    assert straight.model.cfg.dropout > 0 and straight.model.cfg.joint_mask_prob > 0
    straight.fit()
    first = Trainer(
        tiny_cfg(tmp_path / "b", max_steps=1),
        model=copy.deepcopy(net),
        train_dataset=data,
        val_datasets={},
        collate_fn=collate,
    )
    first.fit()
    resumed = Trainer(
        tiny_cfg(tmp_path / "b", max_steps=3),
        model=net,
        train_dataset=data,
        val_datasets={},
        collate_fn=collate,
        resume=tmp_path / "b" / "last.pt",
    )
    assert resumed.step == 1
    res = resumed.fit()
    assert res.steps == 3 and res.epochs_completed == 1
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert straight.history[1:] == resumed.history


def test_resume_auto_and_bad_checkpoints(tmp_path, body, net):
    from jotr.engine.trainer import resolve_resume

    assert resolve_resume("auto", tmp_path) is None
    (tmp_path / "last.pt").write_bytes(b"garbage")
    assert resolve_resume("auto", tmp_path) == tmp_path / "last.pt"
    with pytest.raises(CheckpointError, match="not found"):
        resolve_resume(tmp_path / "missing.pt", tmp_path)
    data = MemoryDataset(4, body)
    with pytest.raises(CheckpointError, match="corrupt"):
        Trainer(
            tiny_cfg(tmp_path),
            model=copy.deepcopy(net),
            train_dataset=data,
            val_datasets={},
            collate_fn=collate,
            resume=tmp_path / "last.pt",
        )
    # a checkpoint of a different architecture: strict load lists the keys
    other = merge_config(tiny_cfg(tmp_path), {"model": {"d_model": 64}})
    from jotr.models import build_model

    save_checkpoint(tmp_path / "other.pt", model=build_model(other, body=body), cfg=other, step=1)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        Trainer(
            tiny_cfg(tmp_path, init_from=str(tmp_path / "other.pt")),
            model=net,
            train_dataset=data,
            val_datasets={},
            collate_fn=collate,
        )


def test_init_from_loads_weights_with_fresh_optimizer(tmp_path, body, net, trained):
    data = MemoryDataset(4, body)
    stage1 = trained
    cfg2 = merge_config(
        tiny_cfg(tmp_path / "s2", max_steps=1, lr=5e-5, cpu_bf16=True),  # + CPU bfloat16 autocast
        {
            "train": {"init_from": str(stage1.last_checkpoint)},
            "loss": {
                "use_contrastive": True,
                "j2j_anchors": 8,
                "j2j_positives": 8,
                "j2j_negatives": 8,
                "j2n_anchors": 8,
                "j2n_positives": 8,
                "j2n_negatives": 16,
            },
        },
    )
    tr = Trainer(cfg2, model=net, train_dataset=data, val_datasets={}, collate_fn=collate)
    ref = load_checkpoint(stage1.last_checkpoint)
    for k, v in tr.model.state_dict().items():
        assert torch.equal(v, ref["model"][k]), k
    assert tr.step == 0 and not tr.optimizer.state_dict()["state"]
    assert {g["name"]: g["lr"] for g in tr.optimizer.param_groups}["rest"] == pytest.approx(5e-5)
    res = tr.fit()
    loss = load_checkpoint(res.last_checkpoint)
    assert loss["config"]["loss"]["use_contrastive"] is True


def test_non_finite_loss_names_the_term(tmp_path, body, net):
    data = MemoryDataset(4, body, nan_at=0)
    with pytest.raises(NonFiniteLossError, match="joint_cam"):
        train(
            tiny_cfg(tmp_path, max_steps=4, batch_size=4),
            model=net,
            train_dataset=data,
            val_datasets={},
            collate_fn=collate,
        )


def test_validation_keeps_best_and_rejects_test_sets(tmp_path, body, net):
    cfg = tiny_cfg(tmp_path / "v", max_steps=2, val_every=1)
    res = train(
        cfg,
        model=copy.deepcopy(net),
        train_dataset=MemoryDataset(4, body),
        val_datasets={"memory": MemoryDataset(5, body)},
        collate_fn=collate,
    )
    assert res.best_checkpoint is not None and res.best_checkpoint.is_file()
    assert len(res.val_history) == 2 and res.best_val_mpjpe == pytest.approx(
        min(v for _, v in res.val_history)
    )
    best = load_checkpoint(res.best_checkpoint)
    assert best["extra"]["best_val"] == pytest.approx(res.best_val_mpjpe)
    spec = DatasetSpec(name="synthetic", root=str(tmp_path), split="oc")
    bad = merge_config(cfg, {"data": {"val": [vars(spec)], "test": [vars(spec)]}})
    with pytest.raises(InputError, match="also a test set"):
        Trainer(bad, model=net, train_dataset=MemoryDataset(4, body), collate_fn=collate)


# -------------------------------------------------------------------------------------------- evaluation


class _Oracle(torch.nn.Module):
    """Returns the GT parameters of the batch it was given (optionally with the whole body turned)."""

    def __init__(self, body, batch, turn: float = 0.0):
        super().__init__()
        self.body = body
        rot = roma.rotvec_to_rotmat(batch.targets.pose_aa)
        if turn:
            spin = roma.rotvec_to_rotmat(torch.tensor([0.0, turn, 0.0]))
            rot[:, 0] = spin @ rot[:, 0]
        self.rot, self.shape = rot, batch.targets.shape

    def forward(self, inputs, generator=None):
        from types import SimpleNamespace

        return SimpleNamespace(pose_rotmat=self.rot, shape=self.shape)


def test_evaluator_metrics_protocol(tmp_path, body):
    cfg = tiny_cfg(tmp_path)
    data = MemoryDataset(5, body)
    batch = collate([data[i] for i in range(5)])
    ev = Evaluator(cfg, collate_fn=collate)
    exact, skipped = ev.batch_errors(_Oracle(body, batch), batch)
    assert skipped == 1 and len(exact) == 4 and exact.sample_id == ["s0", "s2", "s3", "s4"]
    assert np.allclose(exact.mpjpe, 0, atol=1e-3) and np.allclose(exact.pve, 0, atol=1e-3)
    turned, _ = ev.batch_errors(_Oracle(body, batch, turn=0.5), batch)
    assert (turned.mpjpe > 20).all() and np.allclose(turned.pa_mpjpe, 0, atol=0.5)  # similarity-aligned
    assert turned.joint_err.shape == (4, 14) and (turned.pve > 20).all()


def test_evaluate_dataset_and_report(tmp_path, body, net):
    from jotr.evaluation.evaluator import EvalResult
    from jotr.evaluation.report import write_report

    cfg = tiny_cfg(tmp_path)
    model = net
    data = MemoryDataset(7, body)
    m = Evaluator(cfg, collate_fn=collate).evaluate_dataset(model, data, "memory")
    assert m.num_samples == 6 and m.num_skipped == 1  # every sample once; sample 1 has no GT parameters
    assert list(m.samples.index) == [0, 2, 3, 4, 5, 6]
    assert m.mpjpe == pytest.approx(float(np.mean(m.samples.mpjpe)))
    assert set(m.per_joint_mpjpe) == set(EVAL_JOINT_NAMES)
    assert sum(b.count for b in m.by_visibility) == 6
    result = EvalResult(datasets={"memory": m}, checkpoint="x.pt", step=3)
    files = write_report(result, tmp_path / "report")
    payload = json.loads(files["json"].read_text())
    assert payload["datasets"]["memory"]["mpjpe"] == pytest.approx(m.mpjpe)
    assert files["visibility_png"].read_bytes()[:4] == b"\x89PNG"
    assert files["per_joint_png"].stat().st_size > 0
    assert len(files["per_sample:memory"].read_text().splitlines()) == 7
    table = result.table()
    assert "memory" in table and "PA-MPJPE" in table and "visible" in table
    assert not list((tmp_path / "report").glob(".*.tmp"))


def test_evaluate_entry_point_with_checkpoint(tmp_path, body, trained):
    res = trained
    cfg = merge_config(tiny_cfg(tmp_path), {"eval": {"out_dir": str(tmp_path / "ev")}})
    result = evaluate(cfg, res.last_checkpoint, dataset_objects={"memory": MemoryDataset(5, body)})
    assert result.step == 2 and result.datasets["memory"].num_samples == 4
    assert (tmp_path / "ev" / "metrics.csv").read_text().startswith("dataset,num_samples")
    wrong = merge_config(cfg, {"body": {"kind": "anny"}})
    with pytest.raises(InputError, match="body.kind"):
        evaluate(wrong, res.last_checkpoint, dataset_objects={"memory": MemoryDataset(5, body)})
    spec = parse_dataset_arg("synthetic:oc=/data/x", cfg)
    assert (spec.name, spec.split, spec.root) == ("synthetic", "oc", "/data/x")
    with pytest.raises(InputError, match="not in the config"):
        parse_dataset_arg("pw3d:test", cfg)


def test_gendered_smpl_ground_truth(tmp_path, smpl_model_dir):
    cfg = merge_config(
        tiny_cfg(tmp_path),
        {
            "body": {
                "kind": "smpl",
                "smpl_model_path": str(smpl_model_dir),
                "smpl_j_regressor_h36m": str(smpl_model_dir / "J_regressor_h36m_correct.npy"),
                "smpl_j_regressor_extra": str(smpl_model_dir / "J_regressor_extra.npy"),
            }
        },
    )
    ev = Evaluator(cfg, collate_fn=collate)
    from jotr.body import build_body_model

    neutral = build_body_model(cfg.body)
    male = ev.gt_body("male", neutral)
    assert male is not neutral and ev.gt_body("male", neutral) is male
    data = MemoryDataset(3, neutral)
    samples = [data[i] for i in range(3)]
    for s in samples:
        s["body_model"], s["gender"] = "smpl", "male"
    batch = collate(samples)
    res, _ = ev.batch_errors(_Oracle(neutral, batch), batch)
    # the prediction uses the neutral body, the GT the male one: not zero
    assert (res.pve > 0.1).all()
    for s in samples:
        s["gender"] = "neutral"
    res_n, _ = ev.batch_errors(_Oracle(neutral, collate(samples)), collate(samples))
    assert np.allclose(res_n.pve, 0, atol=1e-3)


# ------------------------------------------------------------------------------------------- distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    from jotr.body.toy import ToyBody

    body = ToyBody()
    cfg = tiny_cfg(Path(out_dir), max_steps=2, val_every=2, sync_bn=True)
    trainer = Trainer(
        cfg,
        train_dataset=MemoryDataset(8, body),
        val_datasets={"memory": MemoryDataset(7, body)},
        collate_fn=collate,
    )
    res = trainer.fit()
    ev = Evaluator(cfg, collate_fn=collate).evaluate_dataset(trainer.model, MemoryDataset(7, body), "memory")
    torch.save(
        {
            "state": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
            "crit": {k: v.detach().clone() for k, v in trainer.criterion.state_dict().items()},
            "index": ev.samples.index.tolist(),
            "mpjpe": ev.mpjpe,
            "best": res.best_val_mpjpe,
        },
        Path(out_dir) / f"rank{rank}.pt",
    )
    trainer.close()


def test_ddp_two_cpu_processes_agree(tmp_path):
    port = _free_port()
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k
    for k in r0["crit"]:
        assert torch.equal(r0["crit"][k], r1["crit"][k]), k
    assert r0["index"] == r1["index"] == [0, 2, 3, 4, 5, 6]  # sharded, gathered, each sample once
    assert r0["mpjpe"] == r1["mpjpe"] and r0["best"] == r1["best"]
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert len(ckpt["extra"]["rank_states"]) == 2 and (tmp_path / "best.pt").is_file()
    for k, v in r0["state"].items():
        assert torch.equal(ckpt["model"][k], v), k
