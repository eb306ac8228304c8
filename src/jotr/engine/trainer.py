"""The training loop: one CPU, one GPU, or many GPUs/nodes with ``torchrun`` (PyTorch DDP).

:func:`train` is the library entry point (``jotr train`` is a thin wrapper around it)::

    from jotr.config import load_config
    from jotr.engine.trainer import train
    result = train(load_config("synthetic_small", ["train.max_steps=200"]))

What one run does (see jotr-reference §3 for the recipe):

* builds the network, the criterion (learned loss weights) and the mixed training stream from the config;
* AdamW with backbone / rest / loss-weight groups, a per-step LR schedule, optional gradient clipping;
* AMP on CUDA (autocast + a GradScaler with dynamic scaling: ``scaler.update()`` with no argument, unlike the
  official code that resets the scale every step, B4), optional CPU bfloat16 autocast;
* DDP when launched by torchrun (SyncBN option on CUDA, rank-0-only logging and checkpointing,
  non-persistent body-model buffers excluded from DDP's buffer broadcast); a plain single process otherwise
  (no torch.distributed call);
* TensorBoard scalars (losses, learned loss weights, depth exponent, lr, throughput) and a tqdm bar;
* ``<out_dir>/last.pt`` every ``ckpt_every`` steps and at the end, ``<out_dir>/best.pt`` by validation MPJPE
  on ``cfg.data.val`` (never a test set, B3), the resolved config and git commit in ``<out_dir>``;
* exact resume: model, optimiser, scheduler, scaler, loss weights, every RNG (torch, numpy, python, CUDA, the
  model's and the criterion's generators, per rank), the step and the position inside the epoch. The sampler's
  order depends only on (seed, epoch) and data augmentation is seeded per sample, so N steps + resume +
  M steps equals N + M steps straight;
* stage 2 (fine-tuning) starts from ``cfg.train.init_from``: weights only, fresh optimiser and schedule;
* a non-finite loss stops the run with :class:`NonFiniteLossError` naming the loss term(s).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from jotr.data.config import dataset_label  # re-exported (experiments)
from jotr.engine import distributed as jd
from jotr.engine.checkpoint import (
    capture_rng_state,
    git_commit,
    load_checkpoint,
    load_state_strict,
    restore_rng_state,
    save_checkpoint,
    unwrap_model,
)
from jotr.engine.optim import build_optimizer, build_scheduler
from jotr.engine.precision import use_cpu_bf16
from jotr.errors import CheckpointError, ConfigError, InputError, RunError
from jotr.utils.io import (
    MARKER,
    atomic_write_text,
    clean_stale_temporaries,
    is_jotr_output,
    make_parents,
    mark_output,
    remove_if_empty,
)

logger = logging.getLogger(__name__)

LAST_CKPT = "last.pt"
BEST_CKPT = "best.pt"
# A resume must keep every setting that shapes training (the restored model, optimiser, scheduler, sampler and
# RNG states embody them): all of body.*, model.*, loss.*, data.* and train.* except these, which only locate
# files, say where to run, or when to log / stop (the run length is checked separately).
RESUME_FREE_SETTINGS = frozenset(
    {
        "body.smpl_model_path",
        "body.smpl_j_regressor_h36m",
        "body.smpl_j_regressor_extra",
        "data.val",
        "data.test",
        "data.num_workers",
        "train.out_dir",
        "train.device",
        "train.epochs",
        "train.max_steps",
        "train.max_minutes",
        "train.init_from",
        "train.find_unused_parameters",
        "train.log_every",
        "train.ckpt_every",
        "train.val_every",
        "train.progress",
        "train.tensorboard",
    }
)
RESUME_SECTIONS = ("body", "model", "loss", "data", "train")


def _flatten(tree: Any, prefix: str) -> dict[str, Any]:
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}.{key}"))
        return out
    return {prefix: tree}


def resume_differences(old_cfg: Any, new_cfg: Any) -> list[str]:
    """``"key old -> new"`` for every setting that shapes training and differs (see RESUME_FREE_SETTINGS)."""
    from jotr.config import config_to_dict

    diffs = []
    for section in RESUME_SECTIONS:
        old = _flatten(config_to_dict(getattr(old_cfg, section)), section)
        new = _flatten(config_to_dict(getattr(new_cfg, section)), section)
        for key in dict.fromkeys([*old, *new]):  # config order
            if key in RESUME_FREE_SETTINGS or any(key.startswith(f + ".") for f in RESUME_FREE_SETTINGS):
                continue
            if old.get(key) != new.get(key):
                diffs.append(f"{key} {old.get(key)!r} -> {new.get(key)!r}")
    return diffs


class NonFiniteLossError(RunError):
    """The training loss became NaN or infinite; the message names the loss term(s) and the step."""


@dataclass
class TrainResult:
    out_dir: Path  # run directory
    steps: int  # optimiser steps taken in total (including those before a resume)
    epochs_completed: int  # full passes over the training stream
    last_checkpoint: Path | None  # <out_dir>/last.pt (None on ranks other than 0)
    best_checkpoint: Path | None  # <out_dir>/best.pt when a validation set is configured
    best_val_mpjpe: float | None  # mm, mean over cfg.data.val datasets
    final_loss: float | None  # total loss of the last step
    loss_history: list[tuple[int, float]] = field(default_factory=list)  # (step, total loss) every step
    val_history: list[tuple[int, float]] = field(default_factory=list)  # (step, val MPJPE mm)
    train_seconds: float = 0.0  # wall-clock of training, resumed parts included


# ----------------------------------------------------------------------------------------------- sampling


class EpochSampler(Sampler[int]):
    """Deterministic, resumable, distributed sampler.

    The order of epoch ``e`` is a permutation drawn from ``seed + e`` (or the identity without shuffling),
    truncated to a multiple of ``world_size`` and strided over ranks (no padding, no duplicated samples).
    ``set_epoch(e, start=k)`` skips this rank's first ``k`` indices (resume in the middle of an epoch).
    """

    def __init__(
        self, n: int, *, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1
    ) -> None:
        self.n, self.seed, self.shuffle, self.rank, self.world_size = n, seed, shuffle, rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        usable = (self.n // self.world_size) * self.world_size
        return order[:usable][self.rank :: self.world_size].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.start :])

    def __len__(self) -> int:
        return max(self.n // self.world_size - self.start, 0)


def _default_collate() -> Callable:
    from jotr.data.dataset import collate

    return collate


# -------------------------------------------------------------------------------------------- train step


class TrainStep(nn.Module):
    """Network + criterion as one module, so that DDP also all-reduces the learned loss weights' gradients.

    The network runs under autocast (when enabled); the criterion runs in float32 outside it.
    """

    def __init__(self, model: nn.Module, criterion: nn.Module, autocast: Callable[[], Any]) -> None:
        super().__init__()
        self.model = model
        self.criterion = criterion
        self._autocast = autocast

    def forward(self, inputs, targets, model_gen: torch.Generator | None, loss_gen: torch.Generator | None):
        with self._autocast():
            out = self.model(inputs, generator=model_gen)
        loss = self.criterion(out, targets, generator=loss_gen)
        return loss, out


def _data_worker_init() -> Callable:
    from jotr.data.dataset import worker_init_fn

    return worker_init_fn


def _non_persistent_buffer_names(module: nn.Module) -> list[str]:
    names = []
    for mod_name, mod in module.named_modules():
        for buf in getattr(mod, "_non_persistent_buffers_set", ()):
            names.append(f"{mod_name}.{buf}" if mod_name else buf)
    return names


def _nonfinite_terms(loss: Any) -> list[str]:
    """Names of the non-finite entries of a LossOutput (unweighted terms first)."""
    bad = []
    for group in ("terms", "weighted", "weights"):
        for name, value in (getattr(loss, group, None) or {}).items():
            if isinstance(value, Tensor) and not bool(torch.isfinite(value.detach()).all()):
                bad.append(f"{group}.{name} = {float(value.detach().float().reshape(-1)[0])}")
    return bad


# ----------------------------------------------------------------------------------------------- trainer


class Trainer:
    """One training run. Most users call :func:`train`; tests may pass a model, criterion or datasets."""

    def __init__(
        self,
        cfg,
        *,
        model: nn.Module | None = None,
        criterion: nn.Module | None = None,
        train_dataset: Dataset | None = None,
        val_datasets: Mapping[str, Dataset] | None = None,
        collate_fn: Callable | None = None,
        resume: str | Path | None = None,
    ) -> None:
        self.cfg = cfg
        tc = cfg.train
        self.dist = jd.setup(tc.device)
        self.device = self.dist.device
        self.out_dir = Path(tc.out_dir)
        self.is_main = self.dist.is_main
        torch.manual_seed(tc.seed + self.dist.rank)
        np.random.seed((tc.seed + self.dist.rank) % 2**32)
        import random

        random.seed(tc.seed + self.dist.rank)

        if model is None:
            from jotr.models import build_model

            # weights from a checkpoint make the pretrained backbone / VPoser files unnecessary
            model = build_model(cfg, pretrained=not (tc.init_from or resume))
        if criterion is None:
            from jotr.losses.criterion import Criterion

            body = getattr(unwrap_model(model), "body", None)
            if not isinstance(body, nn.Module):
                from jotr.body import build_body_model

                body = build_body_model(cfg.body)
            criterion = Criterion(cfg.loss, body, cfg.model)
        self.model = model.to(self.device)
        self.criterion = criterion.to(self.device)
        if tc.init_from:
            self._init_weights(tc.init_from)

        self.collate_fn = collate_fn or _default_collate()
        self.train_dataset = train_dataset if train_dataset is not None else self._build_train_dataset()
        self.val_datasets = dict(val_datasets) if val_datasets is not None else self._build_val_datasets()

        n = len(self.train_dataset)
        per_rank = n // self.dist.world_size
        self.steps_per_epoch = per_rank // tc.batch_size
        if self.steps_per_epoch < 1:
            raise InputError(
                f"training set has {n} samples: too few for batch size {tc.batch_size} x "
                f"{self.dist.world_size} process(es) (train.batch_size)"
            )
        self.total_steps = tc.max_steps if tc.max_steps is not None else tc.epochs * self.steps_per_epoch
        self.sampler = EpochSampler(
            n, seed=tc.seed, shuffle=True, rank=self.dist.rank, world_size=self.dist.world_size
        )

        # mixed precision
        cuda = self.device.type == "cuda"
        self.amp_dtype: torch.dtype | None = None
        if cuda and tc.amp:
            self.amp_dtype = torch.float16 if tc.amp_dtype == "float16" else torch.bfloat16
        elif self.device.type == "cpu" and use_cpu_bf16(tc.cpu_bf16):
            self.amp_dtype = torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda", enabled=cuda and self.amp_dtype == torch.float16)

        # distributed wrapping
        self.step_module: nn.Module = TrainStep(self.model, self.criterion, self._autocast)
        if self.dist.distributed:
            if tc.sync_bn and not cuda:
                logger.warning("train.sync_bn needs CUDA (PyTorch SyncBatchNorm); ignored on %s", self.device)
            elif tc.sync_bn:
                self.step_module = nn.SyncBatchNorm.convert_sync_batchnorm(self.step_module)
                self.model, self.criterion = self.step_module.model, self.step_module.criterion
            nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
                self.step_module, _non_persistent_buffer_names(self.step_module)
            )
            self.step_module = nn.parallel.DistributedDataParallel(
                self.step_module,
                device_ids=[self.device] if cuda else None,
                find_unused_parameters=tc.find_unused_parameters,
            )

        self.optimizer = build_optimizer(self.model, self.criterion, tc)
        self.scheduler = build_scheduler(self.optimizer, tc, self.steps_per_epoch, self.total_steps)
        self.model_gen = torch.Generator(device=self.device).manual_seed(tc.seed * 1000 + 17 + self.dist.rank)
        # same on every rank: the contrastive losses sample from the gathered batch identically everywhere
        self.loss_gen = torch.Generator(device=self.device).manual_seed(tc.seed * 1000 + 29)

        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best_val: float | None = None
        self.history: list[tuple[int, float]] = []
        self.val_history: list[tuple[int, float]] = []
        self.train_seconds = 0.0  # wall-clock of training before this process (resumes), seconds
        self._fit_start: float | None = None
        self._writer = None
        self._evaluator = None
        if resume is not None:
            self._resume(resume)

    # ------------------------------------------------------------------------------------------ set-up

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _data_body_models(self) -> dict[str, nn.Module]:
        """CPU body model for the data pipeline (fitted-body joints), keyed by the body's name."""
        body = getattr(unwrap_model(self.model), "body", None)
        if not isinstance(body, nn.Module) or self.device.type != "cpu":
            from jotr.body import build_body_model

            body = build_body_model(self.cfg.body).eval()
        return {body.name: body}

    def _build_train_dataset(self) -> Dataset:
        from jotr.data.dataset import build_train_dataset

        if not self.cfg.data.train_3d and not self.cfg.data.train_2d:
            raise InputError("no training data: set data.train_3d and/or data.train_2d in the config")
        return build_train_dataset(self.cfg, body_models=self._data_body_models())

    def _build_val_datasets(self) -> dict[str, Dataset]:
        from jotr.data.dataset import build_dataset

        out: dict[str, Dataset] = {}
        bodies = self._data_body_models() if self.cfg.data.val else {}
        test_keys = {(s.name, s.root, s.split) for s in self.cfg.data.test}
        for spec in self.cfg.data.val:
            if (spec.name, spec.root, spec.split) in test_keys:
                raise InputError(
                    f"data.val entry {spec.name}[{spec.split}] at {spec.root!r} is also a test set; model "
                    "selection must not look at test data"
                )
            out[dataset_label(spec)] = build_dataset(spec, self.cfg, train=False, body_models=bodies)
        return out

    def _init_weights(self, path: str | Path) -> None:
        ckpt = load_checkpoint(path)
        load_state_strict(self.model, ckpt["model"], source=f"train.init_from checkpoint {path}")
        crit_state = ckpt.get("criterion")
        if crit_state is not None:
            own = unwrap_model(self.criterion).state_dict()
            if set(own) == set(crit_state):
                load_state_strict(
                    self.criterion, crit_state, source=f"train.init_from checkpoint {path} (criterion)"
                )
            else:
                logger.info(
                    "init_from %s: criterion parameters differ, learned loss weights start fresh", path
                )
        logger.info(
            "initialised weights from %s (step %s); fresh optimiser and schedule", path, ckpt.get("step")
        )

    def _check_resume_settings(self, ckpt: Mapping[str, Any], path: Path) -> None:
        """Refuse a resume whose settings differ from the checkpoint's run in anything that shapes training
        (:func:`resume_differences`; ConfigError listing them): the restored states would silently keep the
        old ones while config.yaml records the new ones. Bookkeeping settings (out_dir, device, log/ckpt/val
        intervals, ...) may change, and so may the run length unless the learning-rate schedule depends on
        it (cosine)."""
        from jotr.engine.checkpoint import checkpoint_config

        old_cfg = checkpoint_config(ckpt, source=f"resume checkpoint {path}")
        old, new = old_cfg.train, self.cfg.train
        diffs = resume_differences(old_cfg, self.cfg)
        if "cosine" in (old.lr_schedule, new.lr_schedule):
            old_total = old.max_steps if old.max_steps is not None else old.epochs * self.steps_per_epoch
            if old_total != self.total_steps:
                diffs.append(
                    f"run length {old_total} -> {self.total_steps} steps (train.max_steps/epochs; the cosine "
                    "schedule is stretched over the whole run)"
                )
        if diffs:
            raise ConfigError(
                f"cannot resume from {path}: the training settings differ from the checkpoint's run: "
                f"{'; '.join(diffs)}. Resume with the run's settings, or start a new run from these weights "
                f"with train.init_from={path} (fresh optimiser and schedule)"
            )

    def _resume(self, path: str | Path) -> None:
        path = Path(path)
        ckpt = load_checkpoint(path)
        for key in ("optimizer", "scheduler", "criterion"):
            if key not in ckpt:
                raise CheckpointError(
                    f"cannot resume from {path}: it has no '{key}' state (weights-only checkpoint?)"
                )
        self._check_resume_settings(ckpt, path)
        load_state_strict(self.model, ckpt["model"], source=f"resume checkpoint {path}")
        load_state_strict(self.criterion, ckpt["criterion"], source=f"resume checkpoint {path} (criterion)")
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            if "scaler" in ckpt and ckpt["scaler"]:
                self.scaler.load_state_dict(ckpt["scaler"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(
                f"cannot resume from {path}: optimiser/scheduler state does not match: {exc}"
            ) from exc
        extra = ckpt.get("extra", {})
        self.step = int(ckpt["step"])
        self.epoch = int(ckpt.get("epoch", 0))
        self.batch_in_epoch = int(extra.get("batch_in_epoch", 0))
        self.best_val = extra.get("best_val")
        self.val_history = [tuple(v) for v in extra.get("val_history", [])]
        self.train_seconds = float(extra.get("train_seconds", 0.0))
        rank_states = extra.get("rank_states") or []
        if len(rank_states) == self.dist.world_size:
            state = rank_states[self.dist.rank]
        else:
            if rank_states:
                logger.warning(
                    "checkpoint was written by %d process(es), now %d: RNG streams are not resumed exactly",
                    len(rank_states),
                    self.dist.world_size,
                )
            state = {"rng": ckpt.get("rng")}
        if state.get("rng") is not None:
            restore_rng_state(state["rng"])
        if state.get("model_gen") is not None:
            self.model_gen.set_state(state["model_gen"])
        if state.get("loss_gen") is not None:
            self.loss_gen.set_state(state["loss_gen"])
        if self.batch_in_epoch >= self.steps_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        logger.info(
            "resumed from %s at step %d (epoch %d, batch %d)",
            path,
            self.step,
            self.epoch,
            self.batch_in_epoch,
        )

    # ----------------------------------------------------------------------------------------- outputs

    def _write_run_info(self) -> None:
        from jotr.config import save_config

        save_config(self.cfg, self.out_dir / "config.yaml")
        info = {
            "git_commit": git_commit(),
            "torch_version": str(torch.__version__),
            "world_size": self.dist.world_size,
            "device": str(self.device),
            "argv": list(sys.argv),
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_text(self.out_dir / "run_info.json", json.dumps(info, indent=2) + "\n")

    @property
    def writer(self):
        if self._writer is None and self.is_main and self.cfg.train.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.out_dir / "tb"), purge_step=self.step + 1)
        return self._writer

    def _rank_state(self) -> dict[str, Any]:
        return {
            "rng": capture_rng_state(),
            "model_gen": self.model_gen.get_state(),
            "loss_gen": self.loss_gen.get_state(),
        }

    def save(self, name: str) -> Path | None:
        """Checkpoint to ``<out_dir>/<name>`` (every rank must call it; rank 0 writes)."""
        jd.broadcast_buffers(self.model)
        states = jd.all_gather_objects(self._rank_state())
        if not self.is_main:
            return None
        extra = {
            "batch_in_epoch": self.batch_in_epoch,
            "best_val": self.best_val,
            "val_history": [list(v) for v in self.val_history],
            "train_seconds": self._elapsed(),
            "rank_states": states,
            "world_size": self.dist.world_size,
        }
        return save_checkpoint(
            self.out_dir / name,
            model=self.model,
            cfg=self.cfg,
            step=self.step,
            epoch=self.epoch,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            criterion=self.criterion,
            extra=extra,
        )

    # ------------------------------------------------------------------------------------------ steps

    def _loader(self) -> DataLoader:
        self.sampler.set_epoch(self.epoch, start=self.batch_in_epoch * self.cfg.train.batch_size)
        set_epoch = getattr(self.train_dataset, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.epoch)
        workers = self.cfg.data.num_workers
        return DataLoader(
            self.train_dataset,
            batch_size=self.cfg.train.batch_size,
            sampler=self.sampler,
            num_workers=workers,
            collate_fn=self.collate_fn,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_data_worker_init() if workers > 0 else None,
            # an explicit generator keeps the loader from drawing on the global RNG (exact resume)
            generator=torch.Generator().manual_seed(self.cfg.train.seed + self.epoch),
            persistent_workers=False,
        )

    def train_step(self, batch) -> tuple[Any, Any]:
        """One optimiser step on one batch; returns (LossOutput, JOTROutput)."""
        tc = self.cfg.train
        self.step_module.train()
        batch = batch.to(self.device, non_blocking=True)
        loss, out = self.step_module(batch.inputs, batch.targets, self.model_gen, self.loss_gen)
        total = loss.total
        bad = (~torch.isfinite(total.detach())).to(torch.float32).reshape(())
        if float(jd.all_reduce_max(bad)) > 0:
            names = _nonfinite_terms(loss) if bool(bad) else ["(on another rank)"]
            raise NonFiniteLossError(
                f"non-finite training loss at step {self.step + 1} (total={float(total.detach())}); "
                f"bad term(s): {', '.join(names) or 'total only'}. Lower train.lr, enable train.grad_clip, "
                "or check the data of this batch."
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if tc.grad_clip is not None and tc.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()  # dynamic loss scaling (no argument: never reset the scale, B4)
        self.scheduler.step()
        return loss, out

    def _log(self, loss, out, samples_per_s: float) -> None:
        w = self.writer
        if w is None:
            return
        s = self.step
        w.add_scalar("loss/total", float(loss.total.detach()), s)
        for group, prefix in (("terms", "loss"), ("weighted", "weighted"), ("weights", "loss_weight")):
            for name, value in (getattr(loss, group, None) or {}).items():
                if isinstance(value, Tensor) and value.numel() == 1:
                    w.add_scalar(f"{prefix}/{name}", float(value.detach()), s)
        exponent = getattr(out, "depth_exponent", None)
        if isinstance(exponent, Tensor):
            w.add_scalar("model/depth_exponent", float(exponent.detach()), s)
        for g in self.optimizer.param_groups:
            w.add_scalar(f"lr/{g.get('name', 'group')}", g["lr"], s)
        w.add_scalar("perf/samples_per_s", samples_per_s, s)
        if self.scaler.is_enabled():
            w.add_scalar("perf/amp_scale", self.scaler.get_scale(), s)

    def validate(self) -> float | None:
        """Mean MPJPE (mm) over the validation datasets (all ranks participate); None without val data."""
        if not self.val_datasets:
            return None
        jd.broadcast_buffers(self.model)
        if self._evaluator is None:
            from jotr.evaluation.evaluator import Evaluator

            self._evaluator = Evaluator(self.cfg, device=self.device)
        evaluator = self._evaluator
        was_training = self.model.training
        results = {
            label: evaluator.evaluate_dataset(self.model, ds, label)
            for label, ds in self.val_datasets.items()
        }
        self.model.train(was_training)
        values = [r.mpjpe for r in results.values() if r.num_samples > 0]
        if not values:
            return None
        mean = float(np.mean(values))
        w = self.writer
        if w is not None:
            w.add_scalar("val/mpjpe", mean, self.step)
            for label, r in results.items():
                w.add_scalar(f"val/{label}/mpjpe", r.mpjpe, self.step)
                w.add_scalar(f"val/{label}/pa_mpjpe", r.pa_mpjpe, self.step)
                w.add_scalar(f"val/{label}/pve", r.pve, self.step)
        return mean

    def _validate_and_keep_best(self) -> None:
        value = self.validate()
        if value is None:
            return
        self.val_history.append((self.step, value))
        # NaN (non-finite predictions, reported by the evaluator) never becomes the best
        improved = math.isfinite(value) and (self.best_val is None or value < self.best_val)
        if improved:
            self.best_val = value
        if self.is_main:
            logger.info(
                "step %d: validation MPJPE %.1f mm%s", self.step, value, " (best)" if improved else ""
            )
        if improved:
            self.save(BEST_CKPT)

    def _elapsed(self) -> float:
        """Seconds of training so far, earlier processes of a resumed run included."""
        now = 0.0 if self._fit_start is None else time.perf_counter() - self._fit_start
        return self.train_seconds + now

    def _out_of_time(self) -> bool:
        """``train.max_minutes`` reached (the same decision on every rank)."""
        budget = self.cfg.train.max_minutes
        if budget is None:
            return False
        flag = torch.tensor(float(self._elapsed() >= 60.0 * budget))
        if self.dist.distributed:
            flag = jd.all_reduce_max(flag.to(self.device)).cpu()
        return bool(flag > 0)

    def fit(self) -> TrainResult:
        self._fit_start = time.perf_counter()
        created: list[Path] = []
        new_marker = False
        if self.is_main:
            created = make_parents(self.out_dir)
            for stale in clean_stale_temporaries(self.out_dir):  # e.g. .last.pt.*.tmp of a killed run
                logger.info("removed %s (left by an interrupted run)", stale)
            new_marker = not is_jotr_output(self.out_dir)
            if new_marker:
                mark_output(self.out_dir, "training run")
        jd.barrier()
        first_step = self.step
        try:
            return self._fit_loop(first_step)
        except BaseException:
            if self.is_main and self.step == first_step:  # failed before its first step: leave nothing
                if new_marker:
                    (self.out_dir / MARKER).unlink(missing_ok=True)
                remove_if_empty(created)
            raise

    def _fit_loop(self, first_step: int) -> TrainResult:
        """:meth:`fit` after the output folder is set up; ``config.yaml`` and ``run_info.json`` are written
        after the first step of this process (a run that fails before it leaves no files)."""
        tc = self.cfg.train
        from tqdm.auto import tqdm

        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            disable=not (self.is_main and tc.progress),
            dynamic_ncols=True,
            desc="train",
            unit="step",
        )
        global_batch = tc.batch_size * self.dist.world_size
        last_loss: float | None = None
        t_last, samples_since = time.perf_counter(), 0
        try:
            stopped = False  # train.max_minutes reached
            while self.step < self.total_steps and not stopped:
                for batch in self._loader():
                    loss, out = self.train_step(batch)
                    if self.is_main and self.step == first_step:
                        self._write_run_info()
                    self.step += 1
                    self.batch_in_epoch += 1
                    samples_since += global_batch
                    last_loss = float(loss.total.detach())
                    self.history.append((self.step, last_loss))
                    now = time.perf_counter()
                    sps = samples_since / max(now - t_last, 1e-9)
                    bar.update(1)
                    if self.step % max(tc.log_every, 1) == 0 or self.step == self.total_steps:
                        bar.set_postfix(loss=f"{last_loss:.4f}", samples_s=f"{sps:.1f}", epoch=self.epoch)
                        self._log(loss, out, sps)
                        t_last, samples_since = now, 0
                    end_of_epoch = self.batch_in_epoch >= self.steps_per_epoch
                    out_of_time = stopped = self._out_of_time()
                    done = self.step >= self.total_steps or out_of_time
                    if out_of_time and self.is_main:
                        logger.info(
                            "train.max_minutes=%g reached at step %d of %d: stopping",
                            tc.max_minutes,
                            self.step,
                            self.total_steps,
                        )
                    if end_of_epoch:
                        self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                    if tc.val_every > 0 and (self.step % tc.val_every == 0 or done):
                        self._validate_and_keep_best()
                    if done or (tc.ckpt_every > 0 and self.step % tc.ckpt_every == 0):
                        self.save(LAST_CKPT)
                    if done or end_of_epoch:
                        break
        finally:
            bar.close()
            if self._writer is not None:
                self._writer.flush()
                self._writer.close()
                self._writer = None
        jd.broadcast_buffers(self.model)  # every rank ends with rank 0's model, buffers included
        best = self.out_dir / BEST_CKPT
        return TrainResult(
            out_dir=self.out_dir,
            steps=self.step,
            epochs_completed=self.epoch,
            last_checkpoint=self.out_dir / LAST_CKPT if self.is_main else None,
            best_checkpoint=best if self.is_main and best.exists() else None,
            best_val_mpjpe=self.best_val,
            final_loss=last_loss,
            loss_history=self.history,
            val_history=self.val_history,
            train_seconds=self._elapsed(),
        )

    def close(self) -> None:
        """End the run's process group (if :func:`jotr.engine.distributed.setup` made it).

        The DDP wrapper goes first: its reducer holds the process group, and a gloo group that outlives
        ``destroy_process_group`` is torn down at interpreter exit, where it can abort the process (SIGABRT)
        after a run that succeeded (7 of 50 two-process gloo runs of a bare DDP step without this order).
        """
        if isinstance(self.step_module, nn.parallel.DistributedDataParallel):
            self.step_module = self.step_module.module
        jd.cleanup(self.dist)


def resolve_resume(resume: str | Path | None, out_dir: str | Path) -> Path | None:
    """``"auto"`` -> ``<out_dir>/last.pt`` when it exists (else None: a fresh run); a path must exist."""
    if resume is None or resume == "":
        return None
    if str(resume) == "auto":
        candidate = Path(out_dir) / LAST_CKPT
        if candidate.is_file():
            return candidate
        logger.info("--resume auto: no %s yet, starting a fresh run", candidate)
        return None
    path = Path(resume)
    if not path.is_file():
        raise CheckpointError(f"resume checkpoint not found: {path}")
    return path


RUN_FILES = (LAST_CKPT, BEST_CKPT, "config.yaml", "run_info.json")  # what a run writes into train.out_dir


def check_run_folder(out_dir: str | Path, resume: str | Path | None, force: bool = False) -> None:
    """The output policy for training: a ``train.out_dir`` that already holds a run (:data:`RUN_FILES`) is
    continued only with ``resume``, and started over only with ``force`` (its run files are then removed
    first, and only if jotr made the folder); otherwise InputError."""
    out = Path(out_dir)
    if resume not in (None, ""):
        return
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if not existing:
        return
    if not force:
        raise InputError(
            f"train.out_dir {out} already holds a run ({', '.join(existing)}); continue it with --resume "
            "auto, start it over with --force, or choose another train.out_dir"
        )
    if not is_jotr_output(out):
        raise InputError(
            f"train.out_dir {out} holds {', '.join(existing)} but was not created by jotr (no {MARKER} "
            "file); jotr does not replace it, even with --force: remove it yourself or choose another "
            "train.out_dir"
        )
    for name in existing:
        (out / name).unlink()
    logger.info("--force: removed %s of the previous run in %s", ", ".join(existing), out)


def train(cfg, *, resume: str | Path | None = None, force: bool = False, **overrides: Any) -> TrainResult:
    """Run training as configured; ``resume`` is a checkpoint path or ``"auto"``; ``force`` starts a new run
    in a ``train.out_dir`` that already holds one (:func:`check_run_folder`).

    Keyword arguments ``model``, ``criterion``, ``train_dataset``, ``val_datasets``, ``collate_fn`` replace
    the pieces built from the config (tests, custom data). A process group created here is destroyed at
    the end.
    """
    from jotr.config import JOTRConfig

    if not isinstance(cfg, JOTRConfig):
        raise InputError(f"train(cfg) needs a JOTRConfig (jotr.config.load_config), got {type(cfg).__name__}")
    allowed = {"model", "criterion", "train_dataset", "val_datasets", "collate_fn"}
    unknown = set(overrides) - allowed
    if unknown:
        raise TypeError(f"train() got unexpected keyword arguments {sorted(unknown)}")
    if jd.launched_rank() == 0:
        check_run_folder(cfg.train.out_dir, resume, force)
    resume_path = resolve_resume(resume, cfg.train.out_dir)
    trainer = Trainer(cfg, resume=resume_path, **overrides)
    try:
        result = trainer.fit()
    finally:
        trainer.close()
    if trainer.is_main and result.final_loss is not None and not math.isfinite(result.final_loss):
        raise NonFiniteLossError("training ended with a non-finite loss")
    return result


__all__: Sequence[str] = ("EpochSampler", "NonFiniteLossError", "TrainResult", "Trainer", "train")
