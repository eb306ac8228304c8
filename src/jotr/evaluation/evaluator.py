"""Evaluation: MPJPE / PA-MPJPE / PVE per dataset, per joint and per visible fraction (jotr-reference §4).

Protocol:

* predicted mesh = the body model (neutral) posed with the network's pose and shape; ground-truth mesh =
  the body model posed with the sample's GT parameters, with the sample's gender for SMPL (a gendered SMPL
  body via ``build_body_model(cfg.body, gender=...)``); Anny's gender is one of its shape phenotypes;
* MPJPE: the 17 H36M joints regressed from each mesh, made relative to the H36M pelvis, 14 evaluation joints,
  mean Euclidean error in mm; PA-MPJPE: the same after similarity Procrustes; PVE: mean vertex error after
  subtracting each mesh's own (body-model-regressed) pelvis, no alignment;
* samples without GT body parameters (``targets.has_fit == 0``) are skipped and counted;
* distributed: each rank evaluates a strided shard (no padding) and the per-sample results are gathered, so
  every sample counts exactly once (the official DistributedSampler padded the test set, B10).

:func:`evaluate` is the library entry point behind ``jotr eval``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import roma
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from jotr.body.joint_sets import H36M_EVAL_14, H36M_ROOT, JOTR30
from jotr.engine import distributed as jd
from jotr.engine.checkpoint import unwrap_model
from jotr.errors import InputError
from jotr.evaluation import metrics as M
from jotr.evaluation.perturb import MODES, InputPerturbation, withheld_eval_joints
from jotr.evaluation.perturb import apply as apply_perturbation
from jotr.evaluation.results import (  # re-exported: the evaluator's public names
    EVAL_JOINT_NAMES,
    DatasetMetrics,
    EvalResult,
    SampleErrors,
    VisibilityBin,
)

logger = logging.getLogger(__name__)

PELVIS_30 = JOTR30.index("Pelvis")


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else math.nan


def summarise(
    label: str, samples: SampleErrors, skipped: int, bins: Sequence[float], mode: str = "normal"
) -> DatasetMetrics:
    """Dataset-level metrics from per-sample errors."""
    by_vis = []
    edges = list(bins)
    vis = samples.visible_fraction
    for k in range(len(edges) - 1):
        lo, hi = edges[k], edges[k + 1]
        last = k == len(edges) - 2
        sel = (vis >= lo) & ((vis <= hi) if last else (vis < hi))
        by_vis.append(
            VisibilityBin(
                lo,
                hi,
                int(sel.sum()),
                _mean(samples.mpjpe[sel]),
                _mean(samples.pa_mpjpe[sel]),
                _mean(samples.pve[sel]),
            )
        )
    per_joint = samples.joint_err.mean(0) if len(samples) else np.full(14, math.nan)
    per_joint_pa = samples.joint_err_pa.mean(0) if len(samples) else np.full(14, math.nan)
    return DatasetMetrics(
        label=label,
        num_samples=len(samples),
        num_skipped=skipped,
        mpjpe=_mean(samples.mpjpe),
        pa_mpjpe=_mean(samples.pa_mpjpe),
        pve=_mean(samples.pve),
        per_joint_mpjpe={n: float(v) for n, v in zip(EVAL_JOINT_NAMES, per_joint)},
        per_joint_pa_mpjpe={n: float(v) for n, v in zip(EVAL_JOINT_NAMES, per_joint_pa)},
        by_visibility=by_vis,
        samples=samples,
        num_nonfinite=int(np.isnan(samples.mpjpe).sum()),
        mode=mode,
        withheld_mpjpe=_mean(samples.joint_err[samples.withheld])
        if samples.withheld is not None
        else math.nan,
    )


class Evaluator:
    """Computes the metrics of a model on datasets. Every rank of a process group calls the same methods."""

    def __init__(
        self,
        cfg,
        device: torch.device | str | None = None,
        collate_fn=None,
        perturbation: InputPerturbation | None = None,
    ) -> None:
        self.cfg = cfg
        # input perturbation (image removed / limbs withheld, jotr.evaluation.perturb); None = normal inputs
        self.perturbation = perturbation or InputPerturbation()
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._gt_bodies: dict[str, nn.Module] = {}
        if collate_fn is None:
            from jotr.data.dataset import collate as collate_fn
        self.collate_fn = collate_fn

    def gt_body(self, gender: str, fallback: nn.Module) -> nn.Module:
        """Body model for GT meshes: gendered SMPL, or the prediction's model for Anny / toy."""
        if self.cfg.body.kind != "smpl":
            return fallback
        gender = gender if gender in ("male", "female", "neutral") else "neutral"
        if gender not in self._gt_bodies:
            from jotr.body import build_body_model

            self._gt_bodies[gender] = build_body_model(self.cfg.body, gender=gender).to(self.device).eval()
        return self._gt_bodies[gender]

    @torch.no_grad()
    def batch_errors(self, model: nn.Module, batch) -> tuple[SampleErrors, int]:
        """Errors of one batch (samples with GT parameters) and the number skipped."""
        net = unwrap_model(model)
        body = net.body
        inputs = apply_perturbation(batch.inputs, batch.meta.sample_id, self.perturbation)
        # parameters only (no body model inside, which would refuse NaN): the same values as forward()
        out = net.predict(inputs) if hasattr(net, "predict") else net(inputs)
        t = batch.targets
        keep = t.has_fit > 0.5
        n_skip = int((~keep).sum())
        idx = keep.nonzero().flatten()
        if len(idx) == 0:
            return SampleErrors.empty(), n_skip
        if t.pose_aa.shape[1] != body.num_pose_joints or t.shape.shape[1] != body.num_shape:
            raise InputError(
                f"dataset GT parameters ({t.pose_aa.shape[1]} pose joints, {t.shape.shape[1]} shape values) "
                f"do not belong to the model's body ({body.name}: {body.num_pose_joints} joints, "
                f"{body.num_shape} shape values); evaluate with the body model the dataset was made with "
                "(body.kind)"
            )
        pred_pose, pred_betas = out.pose_rotmat[idx].float(), out.shape[idx].float()
        # A network that outputs NaN/inf: those samples get NaN errors (counted and reported as non-finite
        # predictions); the body model runs on a placeholder for them, so the others are still evaluated.
        finite = torch.isfinite(pred_pose).flatten(1).all(1) & torch.isfinite(pred_betas).flatten(1).all(1)
        if not bool(finite.all()):
            keep_f = finite[:, None]
            pred_pose = torch.where(
                keep_f[..., None, None], pred_pose, body.rest_pose(len(idx), pred_pose.device)
            )
            pred_betas = torch.where(keep_f, pred_betas, body.default_shape(len(idx), pred_betas.device))
        pred = body(pred_pose, pred_betas)
        pred_h36m = body.joints(pred, "h36m17")
        pred_pelvis = body.joints(pred, "jotr30")[:, PELVIS_30]
        finite &= torch.isfinite(pred.vertices).flatten(1).all(1) & torch.isfinite(pred_h36m).flatten(1).all(
            1
        )
        nan_unless_finite = torch.where(finite, 0.0, torch.nan)  # (n,) 0 or NaN, added to each error
        gt_rot = roma.rotvec_to_rotmat(t.pose_aa[idx].float())
        gt_shape = t.shape[idx].float()
        genders = [batch.meta.gender[i] if i < len(batch.meta.gender) else "neutral" for i in idx.tolist()]
        gt_verts = torch.empty_like(pred.vertices)
        gt_h36m = torch.empty_like(pred_h36m)
        gt_pelvis = torch.empty_like(pred_pelvis)
        for g in sorted(set(genders)):
            sel = torch.tensor([x == g for x in genders], device=idx.device)
            gb = self.gt_body(g, body)
            gout = gb(gt_rot[sel], gt_shape[sel])
            gt_verts[sel] = gout.vertices
            gt_h36m[sel] = gb.joints(gout, "h36m17")
            gt_pelvis[sel] = gb.joints(gout, "jotr30")[:, PELVIS_30]
        p14 = M.root_relative(pred_h36m, H36M_ROOT)[:, list(H36M_EVAL_14)]
        g14 = M.root_relative(gt_h36m, H36M_ROOT)[:, list(H36M_EVAL_14)]
        joint_err = M.per_joint_error(p14, g14) + nan_unless_finite[:, None]
        joint_err_pa = M.per_joint_error(M.similarity_procrustes(p14, g14), g14) + nan_unless_finite[:, None]
        vis = batch.meta.visible_fraction[idx].float()
        ids = [batch.meta.sample_id[i] for i in idx.tolist()]
        res = SampleErrors(
            index=idx.cpu().numpy(),  # batch positions; the caller maps them to dataset indices
            sample_id=ids,
            mpjpe=joint_err.mean(-1).cpu().double().numpy(),
            pa_mpjpe=joint_err_pa.mean(-1).cpu().double().numpy(),
            pve=(M.pve(pred.vertices, gt_verts, pred_pelvis, gt_pelvis) + nan_unless_finite)
            .cpu()
            .double()
            .numpy(),
            joint_err=joint_err.cpu().double().numpy(),
            joint_err_pa=joint_err_pa.cpu().double().numpy(),
            visible_fraction=vis.cpu().double().numpy(),
            withheld=withheld_eval_joints(ids, self.perturbation),
        )
        return res, n_skip

    def evaluate_dataset(self, model: nn.Module, dataset: Dataset, label: str) -> DatasetMetrics:
        """Metrics of ``model`` on ``dataset`` (sharded over ranks without padding, results gathered)."""
        net = unwrap_model(model)
        was_training = net.training
        net.eval()
        rank, world = jd.get_rank(), jd.get_world_size()
        shard = list(jd.shard_indices(len(dataset), rank, world))
        loader = DataLoader(
            Subset(dataset, shard),
            batch_size=self.cfg.eval.batch_size,
            shuffle=False,
            num_workers=self.cfg.eval.num_workers,
            collate_fn=self.collate_fn,
            generator=torch.Generator().manual_seed(0),  # never draw on the global RNG
        )
        parts, skipped, offset = [], 0, 0
        try:
            for batch in loader:
                n = len(batch)
                batch = batch.to(self.device)
                res, n_skip = self.batch_errors(net, batch)
                res.index = np.asarray([shard[offset + int(i)] for i in res.index], dtype=np.int64)
                parts.append(res)
                skipped += n_skip
                offset += n
        finally:
            net.train(was_training)
        local = SampleErrors.concat(parts)
        gathered = jd.all_gather_objects((local, skipped))
        samples = SampleErrors.concat([g[0] for g in gathered])
        total_skipped = sum(g[1] for g in gathered)
        if len(np.unique(samples.index)) != len(samples.index):
            raise RuntimeError(f"{label}: a sample was evaluated twice")
        metrics = summarise(
            label, samples, total_skipped, self.cfg.eval.visibility_bins, mode=self.perturbation.mode
        )
        if total_skipped:
            logger.warning("%s: %d sample(s) without GT body parameters were skipped", label, total_skipped)
        if metrics.num_nonfinite:
            logger.warning(
                "%s: the network's predictions are NaN/inf for %d of %d sample(s); their errors and the "
                "means are NaN (a diverged or corrupt checkpoint?)",
                label,
                metrics.num_nonfinite,
                metrics.num_samples,
            )
        return metrics


def image_dependence(
    cfg,
    model: nn.Module,
    dataset: Dataset,
    label: str,
    *,
    num_limbs: int = 2,
    seed: int = 0,
    device: torch.device | str | None = None,
    modes: Sequence[str] = MODES,
    collate_fn=None,
) -> dict[str, DatasetMetrics]:
    """Metrics of ``model`` on ``dataset`` in each perturbation mode (normal / image removed / limbs
    withheld, :mod:`jotr.evaluation.perturb`), the same limbs drawn for every mode."""
    out = {}
    for mode in modes:
        p = InputPerturbation.for_mode(mode, num_limbs=num_limbs, seed=seed)
        ev = Evaluator(cfg, device=device, collate_fn=collate_fn, perturbation=p)
        out[mode] = ev.evaluate_dataset(model, dataset, label)
    return out


def parse_dataset_arg(text: str, cfg) -> Any:
    """``--dataset`` value -> DatasetSpec.

    ``NAME`` or ``NAME:SPLIT`` selects a configured test (or validation) dataset; ``NAME:SPLIT=ROOT`` (or
    ``NAME=ROOT``) defines one.
    """
    from jotr.data.config import DatasetSpec

    key, _, root = text.partition("=")
    name, _, split = key.partition(":")
    name, split, root = name.strip(), split.strip(), root.strip()
    if not name:
        raise InputError(f"--dataset {text!r}: empty dataset name (expected NAME[:SPLIT][=ROOT])")
    if root:
        return DatasetSpec(name=name, root=root, split=split)
    configured = tuple(cfg.data.test) + tuple(cfg.data.val)
    candidates = [s for s in configured if s.name == name and (not split or s.split == split)]
    if not candidates:
        known = ", ".join(f"{s.name}:{s.split}" for s in configured) or "none"
        raise InputError(
            f"--dataset {text!r} is not in the config's data.test / data.val ({known}); "
            "use NAME:SPLIT=ROOT to name a folder"
        )
    return candidates[0]


def evaluate(
    cfg,
    checkpoint: str | Path,
    datasets: Sequence[Any] | None = None,
    *,
    out_dir: str | Path | None = None,
    write: bool = True,
    dataset_objects: Mapping[str, Dataset] | None = None,
    perturbation: InputPerturbation | None = None,
    with_image_dependence: bool = False,
) -> EvalResult:
    """Evaluate a checkpoint on datasets and write the report (rank 0).

    ``cfg`` supplies data, body-model files and evaluation settings; the network architecture always comes
    from the checkpoint (``cfg.model`` is replaced by the stored one). ``datasets``: DatasetSpecs or
    ``--dataset`` strings (default ``cfg.data.test``). ``dataset_objects`` evaluates ready-made datasets
    (label -> Dataset). ``perturbation`` changes the inputs of the main evaluation (image removed / limbs
    withheld, :mod:`jotr.evaluation.perturb`); ``with_image_dependence`` also evaluates every dataset in the
    three modes normal / image removed / limbs withheld (``EvalResult.image_dependence``; the limb draw is
    ``perturbation``'s ``num_limbs`` and ``seed``).
    Files (``out_dir``, default ``cfg.eval.out_dir``): ``metrics.json``, ``metrics.csv``, ``per_joint.csv``,
    ``by_visibility.csv``, ``per_sample_<dataset>.csv``, ``error_vs_visibility.png``, ``per_joint.png``.
    """
    import dataclasses

    from jotr.engine.checkpoint import checkpoint_config, load_checkpoint, load_state_strict
    from jotr.evaluation.report import write_report
    from jotr.models import build_model
    from jotr.utils.io import check_writable_dir, clean_stale_temporaries

    report_dir = Path(out_dir if out_dir is not None else cfg.eval.out_dir)
    if write and jd.launched_rank() == 0:  # refuse an unusable output folder before doing the work
        check_writable_dir(report_dir, "evaluation output folder")
        clean_stale_temporaries(report_dir)
    info = jd.setup(cfg.train.device)
    try:
        ckpt = load_checkpoint(checkpoint)
        stored = checkpoint_config(ckpt, source=str(checkpoint))
        if stored.model != cfg.model:
            logger.info("using the network architecture stored in %s", checkpoint)
        if stored.body.kind != cfg.body.kind:
            raise InputError(
                f"checkpoint {checkpoint} was trained with body.kind={stored.body.kind!r} but the config "
                f"says {cfg.body.kind!r}"
            )
        cfg = dataclasses.replace(cfg, model=stored.model)
        model = build_model(cfg, pretrained=False)
        load_state_strict(model, ckpt["model"], source=f"checkpoint {checkpoint}")
        model.to(info.device).eval()

        objects: dict[str, Dataset] = dict(dataset_objects or {})
        if not objects:
            from jotr.body import build_body_model
            from jotr.data.config import dataset_label
            from jotr.data.dataset import build_dataset

            specs = [parse_dataset_arg(d, cfg) if isinstance(d, str) else d for d in (datasets or ())]
            if not specs:
                specs = list(cfg.data.test)
            if not specs:
                raise InputError("no datasets to evaluate: give --dataset or set data.test in the config")
            data_body = build_body_model(cfg.body).eval()
            for spec in specs:
                objects[dataset_label(spec)] = build_dataset(
                    spec, cfg, train=False, body_models={data_body.name: data_body}
                )
        evaluator = Evaluator(cfg, device=info.device, perturbation=perturbation)
        results = {label: evaluator.evaluate_dataset(model, ds, label) for label, ds in objects.items()}
        result = EvalResult(datasets=results, checkpoint=str(checkpoint), step=int(ckpt.get("step", 0)))
        if with_image_dependence:
            p = evaluator.perturbation
            reuse = p.mode == "normal"  # the main evaluation is the normal row
            for label, ds in objects.items():
                modes = [m for m in MODES if not (reuse and m == "normal")]
                rows = image_dependence(
                    cfg, model, ds, label, num_limbs=p.num_limbs, seed=p.seed, device=info.device, modes=modes
                )
                result.image_dependence[label] = ({"normal": results[label]} if reuse else {}) | rows
        if write and info.is_main:
            result.files = write_report(result, report_dir, save_per_sample=cfg.eval.save_per_sample)
        return result
    finally:
        jd.cleanup(info)
