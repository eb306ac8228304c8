"""Small-scale reproduction of JOTR's ablations on the synthetic occlusion benchmark (issue #10).

One command does everything (data, training of every variant, evaluation, tables, plot)::

    nice env OMP_NUM_THREADS=2 ANNY_CACHE_DIR=.cache/anny \
        .venv/bin/python experiments/ablation/run_ablation.py --config experiments/ablation/configs/small.yaml

Phases (``--phase``, default ``all``): ``data`` writes the fixed train / validation / test splits with
``jotr.synth`` (seeds listed in the config; test seeds are never used for training), ``train`` trains and
evaluates every run that has no result yet (a rerun continues where the last one stopped), ``report``
writes ``results.json``, ``results.csv``, ``by_visibility.csv``, ``table.md`` and
``error_vs_visibility.png`` into the config's ``results_dir``.

Variants (same config, same data, same steps and seeds; jotr-reference §2-§3):

1. ``full``            JOTR, stage 2 with both contrastive losses (J2J + J2N)
2. ``no_contrastive``  JOTR, stage 2 without contrastive losses (the control: same number of steps)
3. ``j2n_only``        JOTR, stage 2 with J2N only
4. ``j2j_only``        JOTR, stage 2 with J2J only
5. ``no_3d_branch``    JOTR without the lifted volume / 3D encoder / joint sampling (jotr.models.baselines)
6. ``avgfeat``         AvgFeatReg: averaged backbone features -> MLP regressor (jotr.models.baselines)

Every variant gets stage 1 (``stage1_steps``, no contrastive loss) then stage 2 (``stage2_steps``, fresh
optimiser, lower constant LR). Variants 1-4 share the stage-1 JOTR run of their seed, as the paper's two
stages do. Checkpoints are selected on the validation split only (``best.pt``), never on a test split.
Runs are done in priority order; ``--time-budget-min`` skips the runs that would not finish in time (the
results list exactly what ran).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

log = logging.getLogger("ablation")

VARIANTS: dict[str, dict[str, Any]] = {
    # name: architecture, stage-2 contrastive weights (None = no contrastive losses), label
    "full": {"arch": "jotr", "contrastive": (1.0, 1.0), "label": "(1) JOTR, J2J + J2N"},
    "no_contrastive": {"arch": "jotr", "contrastive": None, "label": "(2) JOTR, no contrastive"},
    "j2n_only": {"arch": "jotr", "contrastive": (0.0, 1.0), "label": "(3) JOTR, J2N only"},
    "j2j_only": {"arch": "jotr", "contrastive": (1.0, 0.0), "label": "(4) JOTR, J2J only"},
    "no_3d_branch": {"arch": "jotr_2d_only", "contrastive": None, "label": "(5) JOTR without 3D branch"},
    "avgfeat": {"arch": "avgfeat", "contrastive": None, "label": "(6) AvgFeatReg (HMR-style)"},
}
# Reference row, no training: every person predicted in the body's rest pose, upright and facing the
# camera, with mid-range shape (AvgFeatReg with a zero final layer). A trained variant that does not beat
# it has learned no pose yet.
REFERENCE = "rest_pose"
REFERENCE_LABEL = "(ref) constant rest pose facing the camera, no training"
ROW_ORDER = (*VARIANTS, REFERENCE)


def row_label(variant: str) -> str:
    return REFERENCE_LABEL if variant == REFERENCE else VARIANTS[variant]["label"]


# stage-1 network shared by the variants that are fine-tuned from it
STAGE1_OF = {
    "full": "jotr",
    "no_contrastive": "jotr",
    "j2n_only": "jotr",
    "j2j_only": "jotr",
    "no_3d_branch": "jotr_2d_only",
    "avgfeat": "avgfeat",
}


# ------------------------------------------------------------------------------------------------ config


@dataclass(frozen=True)
class SplitSpec:
    family: str  # none | oc | pc | crowd
    num: int  # images
    seed: int


@dataclass(frozen=True)
class AblationConfig:
    jotr_config: tuple[str, ...]  # base JOTR configs (shipped names or paths)
    jotr_overrides: dict[str, Any]  # nested overrides of the JOTR config (model size, batch, ...)
    data_root: str  # generated data (train/, val/, test/ below it)
    runs_dir: str  # checkpoints and logs
    results_dir: str  # published results (JSON/CSV/PNG/table)
    image_width: int
    image_height: int
    synth_workers: int
    train: tuple[SplitSpec, ...]
    val: tuple[SplitSpec, ...]
    test: tuple[SplitSpec, ...]
    stage1_steps: int
    stage2_steps: int
    stage2_lr: float
    stage2_weight_decay: float
    contrastive_weight: float  # weight of each enabled contrastive term (official code 0.1)
    seeds: dict[str, tuple[int, ...]]  # variant -> seeds
    order: tuple[tuple[str, int], ...]  # (variant, seed) in priority order
    val_points: int = 2  # validations per stage (best.pt selection)


def load_ablation_config(path: str | Path) -> AblationConfig:
    data = yaml.safe_load(Path(path).read_text())
    known = {f.name for f in dataclasses.fields(AblationConfig)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")

    def splits(items):
        return tuple(SplitSpec(str(s["family"]), int(s["num"]), int(s["seed"])) for s in items)

    seeds = {str(k): tuple(int(s) for s in v) for k, v in data["seeds"].items()}
    for name in seeds:
        if name not in VARIANTS:
            raise ValueError(f"{path}: unknown variant {name!r} in seeds (known: {', '.join(VARIANTS)})")
    order = tuple((str(v), int(s)) for v, s in data["order"])
    for v, s in order:
        if s not in seeds.get(v, ()):
            raise ValueError(f"{path}: order entry ({v}, {s}) is not in seeds")
    cfg = AblationConfig(
        jotr_config=tuple(data["jotr_config"]),
        jotr_overrides=dict(data.get("jotr_overrides") or {}),
        data_root=str(data["data_root"]),
        runs_dir=str(data["runs_dir"]),
        results_dir=str(data["results_dir"]),
        image_width=int(data["image_width"]),
        image_height=int(data["image_height"]),
        synth_workers=int(data["synth_workers"]),
        train=splits(data["train"]),
        val=splits(data["val"]),
        test=splits(data["test"]),
        stage1_steps=int(data["stage1_steps"]),
        stage2_steps=int(data["stage2_steps"]),
        stage2_lr=float(data["stage2_lr"]),
        stage2_weight_decay=float(data["stage2_weight_decay"]),
        contrastive_weight=float(data["contrastive_weight"]),
        seeds=seeds,
        order=order,
        val_points=int(data.get("val_points", 2)),
    )
    used = {s.seed for s in cfg.train + cfg.val}
    clash = used & {s.seed for s in cfg.test}
    if clash:
        raise ValueError(f"{path}: test seeds {sorted(clash)} are also used for training/validation")
    return cfg


# -------------------------------------------------------------------------------------------------- data


def split_folder(acfg: AblationConfig, group: str) -> Path:
    return Path(acfg.data_root) / group


def split_name(spec: SplitSpec) -> str:
    return spec.family


def _split_is_current(acfg: AblationConfig, folder: Path, spec: SplitSpec) -> bool:
    path = folder / f"{split_name(spec)}.json"
    if not path.is_file():
        return False
    try:
        info = json.loads(path.read_text())["info"]
    except (OSError, ValueError, KeyError):
        return False
    opts = info.get("options", {})
    return (
        info.get("num_images") == spec.num
        and info.get("seed") == spec.seed
        and info.get("family") == spec.family
        and opts.get("width") == acfg.image_width
        and opts.get("height") == acfg.image_height
    )


def make_data(acfg: AblationConfig, *, generator=None) -> dict[str, Any]:
    """Write every split that is missing or out of date; returns {group/family: summary}."""
    from jotr.body.config import BodyConfig
    from jotr.synth.scene import SynthOptions

    options = SynthOptions(width=acfg.image_width, height=acfg.image_height, rig=BodyConfig().anny_rig)
    own = None
    if generator is None and acfg.synth_workers <= 1:
        from jotr.synth.scene import SceneGenerator

        generator = own = SceneGenerator(options)  # one generator (one body model) for every split
    try:
        return _make_splits(acfg, options, generator)
    finally:
        if own is not None:
            own.close()


def _make_splits(acfg: AblationConfig, options, generator) -> dict[str, Any]:
    from jotr.synth.writer import write_split

    done = {}
    for group, specs in (("train", acfg.train), ("val", acfg.val), ("test", acfg.test)):
        folder = split_folder(acfg, group)
        for spec in specs:
            key = f"{group}/{spec.family}"
            if _split_is_current(acfg, folder, spec):
                log.info("data %s: up to date (%d images, seed %d)", key, spec.num, spec.seed)
                done[key] = {"num_images": spec.num, "seed": spec.seed, "generated": False}
                continue
            workers = 1 if generator is not None else acfg.synth_workers
            summary = write_split(
                folder,
                spec.family,
                spec.num,
                spec.seed,
                workers=workers,
                options=options,
                progress=False,
                generator=generator,
            )
            log.info(
                "data %s: %d images, %d persons, %.1f s",
                key,
                spec.num,
                summary.num_annotations,
                summary.seconds,
            )
            done[key] = {
                "num_images": spec.num,
                "seed": spec.seed,
                "generated": True,
                "persons": summary.num_annotations,
                "seconds": summary.seconds,
            }
    return done


# ---------------------------------------------------------------------------------------------- training


def base_jotr_config(acfg: AblationConfig):
    """The JOTR config shared by every run (data specs point at the generated splits)."""
    from jotr.config import load_config, merge_config

    repo = Path(__file__).resolve().parents[2]  # YAML paths in jotr_config are relative to the repository
    names = [
        str(repo / n) if n.endswith((".yaml", ".yml")) and not Path(n).is_absolute() else n
        for n in acfg.jotr_config
    ]
    cfg = load_config(names)
    train_root, val_root, test_root = (str(split_folder(acfg, g)) for g in ("train", "val", "test"))
    data = {
        # training uses every annotated person of a scene, evaluation only the target person
        "train_3d": [
            {
                "name": "synthetic",
                "root": train_root,
                "split": split_name(s),
                "options": {"targets_only": False},
            }
            for s in acfg.train
        ],
        "train_2d": [],
        "val": [{"name": "synthetic", "root": val_root, "split": split_name(s)} for s in acfg.val],
        "test": [{"name": "synthetic", "root": test_root, "split": split_name(s)} for s in acfg.test],
    }
    cfg = merge_config(cfg, {"data": data})
    return merge_config(cfg, acfg.jotr_overrides)


def stage_config(
    acfg: AblationConfig, base, *, stage: int, arch: str, variant: str, seed: int, init_from: str | None
):
    from jotr.config import merge_config

    steps = acfg.stage1_steps if stage == 1 else acfg.stage2_steps
    out_dir = Path(acfg.runs_dir) / (f"stage1_{arch}_s{seed}" if stage == 1 else f"{variant}_s{seed}")
    # val_points = 0: no validation, the last checkpoint is used
    val_every = max(1, math.ceil(steps / acfg.val_points)) if acfg.val_points > 0 else 0
    train: dict[str, Any] = {
        "out_dir": str(out_dir),
        "seed": seed,
        "max_steps": steps,
        "val_every": val_every,
        "ckpt_every": steps,
        "progress": False,
        "init_from": init_from,
    }
    loss: dict[str, Any] = {"use_contrastive": False}
    if stage == 2:
        train.update(
            lr=acfg.stage2_lr,
            lr_backbone=acfg.stage2_lr,
            weight_decay=acfg.stage2_weight_decay,
            lr_schedule="constant",
            warmup_steps=0,
        )
        weights = VARIANTS[variant]["contrastive"]
        if weights is not None:
            w = acfg.contrastive_weight
            loss = {"use_contrastive": True, "j2j_weight": w * weights[0], "j2n_weight": w * weights[1]}
    # the saved config names the network, so `jotr eval` rebuilds the right variant from a checkpoint
    return merge_config(base, {"train": train, "loss": loss, "model": {"architecture": arch}})


@dataclass
class Context:
    acfg: AblationConfig
    base: Any  # JOTRConfig
    body: Any  # shared body model (CPU)
    test_sets: dict[str, Any] = field(default_factory=dict)  # label -> Dataset


def build_context(acfg: AblationConfig) -> Context:
    from jotr.body import build_body_model

    base = base_jotr_config(acfg)
    body = build_body_model(base.body).eval()
    return Context(acfg=acfg, base=base, body=body)


def _build_net(ctx: Context, arch: str, cfg):
    import torch

    from jotr.models.baselines import build_variant

    torch.manual_seed(cfg.train.seed)  # same initialisation for the same seed
    return build_variant(arch, cfg, body=ctx.body, pretrained=True)


def run_stage(ctx: Context, cfg, arch: str) -> tuple[dict[str, Any], Any]:
    """Train one stage; returns its summary (best/last checkpoints, validation history, seconds) and the
    trained network."""
    from jotr.engine.trainer import train

    net = _build_net(ctx, arch, cfg)
    t0 = time.perf_counter()
    result = train(cfg, model=net)
    seconds = time.perf_counter() - t0
    best = result.best_checkpoint or result.last_checkpoint
    summary = {
        "out_dir": str(result.out_dir),
        "steps": result.steps,
        "seconds": seconds,
        "seconds_per_step": seconds / max(result.steps, 1),
        "checkpoint": str(best),
        "best_val_mpjpe": result.best_val_mpjpe,
        "val_history": [list(v) for v in result.val_history],
        "final_loss": result.final_loss,
        "num_parameters": int(sum(p.numel() for p in net.parameters())),
    }
    return summary, net


def test_datasets(ctx: Context) -> dict[str, Any]:
    if not ctx.test_sets:
        from jotr.data.config import dataset_label
        from jotr.data.dataset import build_dataset

        for spec in ctx.base.data.test:
            ctx.test_sets[dataset_label(spec)] = build_dataset(
                spec, ctx.base, train=False, body_models={ctx.body.name: ctx.body}
            )
    return ctx.test_sets


def evaluate_checkpoint(ctx: Context, net, checkpoint: str) -> dict[str, Any]:
    """Metrics of a checkpoint (loaded into ``net``, its architecture) on every test split, with
    per-sample errors and visible fractions."""
    from jotr.engine.checkpoint import load_checkpoint, load_state_strict

    load_state_strict(net, load_checkpoint(checkpoint)["model"], source=checkpoint)
    return evaluate_net(ctx, net)


def evaluate_net(ctx: Context, net) -> dict[str, Any]:
    """Metrics of ``net`` on every test split, with per-sample errors and visible fractions."""
    from jotr.evaluation.evaluator import Evaluator

    net.eval()
    evaluator = Evaluator(ctx.base, device=next(net.parameters()).device)
    out = {}
    for label, ds in test_datasets(ctx).items():
        m = evaluator.evaluate_dataset(net, ds, label)
        s = m.samples
        out[label] = {
            "num_samples": m.num_samples,
            "mpjpe": m.mpjpe,
            "pa_mpjpe": m.pa_mpjpe,
            "pve": m.pve,
            "samples": {
                "mpjpe": s.mpjpe.tolist(),
                "pa_mpjpe": s.pa_mpjpe.tolist(),
                "pve": s.pve.tolist(),
                "visible_fraction": s.visible_fraction.tolist(),
            },
        }
    return out


def run_path(acfg: AblationConfig, variant: str, seed: int) -> Path:
    return Path(acfg.runs_dir) / "results" / f"{variant}_s{seed}.json"


def stage1_path(acfg: AblationConfig, arch: str, seed: int) -> Path:
    return Path(acfg.runs_dir) / "results" / f"stage1_{arch}_s{seed}.json"


def _write_json(path: Path, obj: Any) -> None:
    from jotr.utils.io import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def _estimate_seconds(acfg: AblationConfig, variant: str, seed: int, rate: dict[str, float]) -> float | None:
    """Seconds a run will take from the rates measured so far (None before the first measurement)."""
    if "plain" not in rate:
        return None
    plain = rate["plain"]
    s1 = 0.0 if stage1_path(acfg, STAGE1_OF[variant], seed).is_file() else acfg.stage1_steps * plain
    contrastive = VARIANTS[variant]["contrastive"] is not None
    s2 = acfg.stage2_steps * (rate.get("contrastive", 1.5 * plain) if contrastive else plain)
    return s1 + s2 + rate.get("eval", 0.0)


def train_all(ctx: Context, *, only: set[str] | None, deadline: float | None) -> None:
    acfg = ctx.acfg
    # seconds per step / per evaluation, updated from measured runs (initial guesses are conservative)
    rate: dict[str, float] = {}  # measured seconds per step ("plain", "contrastive") and per evaluation
    if not run_path(acfg, REFERENCE, 0).is_file():
        evaluate_reference(ctx)
    for variant, seed in acfg.order:
        if only and variant not in only:
            continue
        out_path = run_path(acfg, variant, seed)
        if out_path.is_file():
            log.info("%s seed %d: already done (%s)", variant, seed, out_path)
            continue
        if deadline is not None:
            need = _estimate_seconds(acfg, variant, seed, rate)
            if need is not None and time.time() + need > deadline:
                log.warning(
                    "%s seed %d: skipped, needs ~%.0f s and the time budget is spent", variant, seed, need
                )
                continue
        arch = VARIANTS[variant]["arch"]
        stage1_arch = STAGE1_OF[variant]
        s1_path = stage1_path(acfg, stage1_arch, seed)
        if s1_path.is_file():
            stage1 = json.loads(s1_path.read_text())
        else:
            log.info("stage 1 of %s, seed %d: %d steps", stage1_arch, seed, acfg.stage1_steps)
            cfg1 = stage_config(
                acfg, ctx.base, stage=1, arch=stage1_arch, variant=variant, seed=seed, init_from=None
            )
            stage1 = run_stage(ctx, cfg1, stage1_arch)[0]
            rate["plain"] = stage1["seconds_per_step"]
            _write_json(s1_path, stage1)
        log.info("stage 2 of %s, seed %d: %d steps", variant, seed, acfg.stage2_steps)
        cfg2 = stage_config(
            acfg, ctx.base, stage=2, arch=arch, variant=variant, seed=seed, init_from=stage1["checkpoint"]
        )
        stage2, net = run_stage(ctx, cfg2, arch)
        key = "contrastive" if VARIANTS[variant]["contrastive"] is not None else "plain"
        rate[key] = stage2["seconds_per_step"]
        t0 = time.perf_counter()
        metrics = evaluate_checkpoint(ctx, net, stage2["checkpoint"])
        rate["eval"] = time.perf_counter() - t0
        _write_json(
            out_path,
            {
                "variant": variant,
                "seed": seed,
                "architecture": arch,
                "num_parameters": stage2["num_parameters"],
                "stage1": stage1,
                "stage2": stage2,
                "eval_seconds": rate["eval"],
                "test": metrics,
            },
        )
        log.info(
            "%s seed %d: %s",
            variant,
            seed,
            ", ".join(f"{k} {v['mpjpe']:.1f}/{v['pa_mpjpe']:.1f}/{v['pve']:.1f}" for k, v in metrics.items()),
        )


# ------------------------------------------------------------------------------------------------ report


METRICS = ("mpjpe", "pa_mpjpe", "pve")


def evaluate_reference(ctx: Context) -> None:
    """The rest-pose reference row (no training), written like a run."""
    import torch

    net = _build_net(ctx, "avgfeat", ctx.base)
    with torch.no_grad():
        for p in net.regressor[-1].parameters():
            p.zero_()  # theta stays at its initial value: rest pose facing the camera, shape at mid-range
    metrics = evaluate_net(ctx, net)
    _write_json(
        run_path(ctx.acfg, REFERENCE, 0),
        {"variant": REFERENCE, "seed": 0, "architecture": "avgfeat (zero final layer)", "test": metrics},
    )
    log.info("reference (rest pose): %s", ", ".join(f"{k} {v['mpjpe']:.1f}" for k, v in metrics.items()))


def collect(acfg: AblationConfig) -> list[dict[str, Any]]:
    runs = []
    ref = run_path(acfg, REFERENCE, 0)
    if ref.is_file():
        runs.append(json.loads(ref.read_text()))
    for variant, seeds in acfg.seeds.items():
        for seed in seeds:
            path = run_path(acfg, variant, seed)
            if path.is_file():
                runs.append(json.loads(path.read_text()))
    return runs


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else float("nan")


def summarise_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """variant -> split -> metric -> {mean, std (over seeds), seeds, values}; plus the pooled 'all' split."""
    out: dict[str, Any] = {}
    for variant in ROW_ORDER:
        vruns = [r for r in runs if r["variant"] == variant]
        if not vruns:
            continue
        splits = list(vruns[0]["test"]) + ["all"]
        table: dict[str, Any] = {}
        for split in splits:
            row = {}
            for metric in METRICS:
                if split == "all":
                    values = [
                        float(np.mean([x for t in r["test"].values() for x in t["samples"][metric]]))
                        for r in vruns
                    ]
                else:
                    values = [r["test"][split][metric] for r in vruns]
                mean, std = _mean_std(values)
                row[metric] = {
                    "mean": mean,
                    "std": std,
                    "values": values,
                    "seeds": [r["seed"] for r in vruns],
                }
            table[split] = row
        out[variant] = table
    return out


def visibility_table(runs: list[dict[str, Any]], edges: tuple[float, ...]) -> list[dict[str, Any]]:
    """Error vs visible fraction, all test splits pooled, per variant (all seeds pooled)."""
    rows = []
    for variant in ROW_ORDER:
        vruns = [r for r in runs if r["variant"] == variant]
        if not vruns:
            continue
        vis = np.concatenate(
            [
                np.asarray(t["samples"]["visible_fraction"], dtype=np.float64)
                for r in vruns
                for t in r["test"].values()
            ]
        )
        errs = {
            m: np.concatenate(
                [np.asarray(t["samples"][m], dtype=np.float64) for r in vruns for t in r["test"].values()]
            )
            for m in METRICS
        }
        for k in range(len(edges) - 1):
            lo, hi = edges[k], edges[k + 1]
            sel = (vis >= lo) & ((vis <= hi) if k == len(edges) - 2 else (vis < hi))
            row = {"variant": variant, "visible_low": lo, "visible_high": hi, "count": int(sel.sum())}
            for m in METRICS:
                row[m] = float(errs[m][sel].mean()) if sel.any() else float("nan")
            rows.append(row)
    return rows


def _fmt(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.1f}" if math.isnan(std) else f"{mean:.1f} ± {std:.1f}"


def markdown_table(summary: dict[str, Any]) -> str:
    splits = []
    for table in summary.values():
        for s in table:
            if s not in splits:
                splits.append(s)
    head = "| variant | seeds | " + " | ".join(f"{s} MPJPE / PA-MPJPE / PVE" for s in splits) + " |"
    lines = [head, "|" + "---|" * (len(splits) + 2)]
    for variant, table in summary.items():
        seeds = table[splits[0]]["mpjpe"]["seeds"]
        cells = []
        for s in splits:
            if s not in table:
                cells.append("-")
                continue
            cells.append(" / ".join(_fmt(table[s][m]["mean"], table[s][m]["std"]) for m in METRICS))
        lines.append(f"| {row_label(variant)} | {','.join(map(str, seeds))} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_visibility(rows: list[dict[str, Any]], path: Path) -> None:
    """MPJPE against the visible fraction (all test splits pooled), one line per variant."""
    from matplotlib.figure import Figure

    from jotr.utils.io import atomic_write_bytes

    fig = Figure(figsize=(9.5, 4.2), dpi=110)
    ax = fig.subplots()
    for variant in ROW_ORDER:
        vr = [r for r in rows if r["variant"] == variant and r["count"] > 0]
        if not vr:
            continue
        x = [(r["visible_low"] + r["visible_high"]) / 2 for r in vr]
        style = {"color": "0.5", "linestyle": "--"} if variant == REFERENCE else {}
        ax.plot(x, [r["mpjpe"] for r in vr], marker="o", label=row_label(variant), **style)
    ax.set_xlabel("visible fraction of the person (bin centre)")
    ax.set_ylabel("MPJPE (mm), all test splits pooled")
    ax.set_title("Error vs visible fraction (synthetic test splits)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def _csv_text(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def report(acfg: AblationConfig, data_summary: dict[str, Any] | None = None) -> dict[str, Path]:
    from jotr.engine.config import EvalConfig
    from jotr.utils.io import atomic_write_text

    runs = collect(acfg)
    out = Path(acfg.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not runs:
        log.warning("no finished runs under %s", acfg.runs_dir)
        return {}
    summary = summarise_runs(runs)
    vis_rows = visibility_table(runs, EvalConfig().visibility_bins)
    files = {}
    doc = {
        "config": dataclasses.asdict(acfg),
        "summary": summary,
        "by_visibility": vis_rows,
        "runs": [
            {k: v for k, v in r.items() if k != "test"}
            | {"test": {s: {m: t[m] for m in ("num_samples",) + METRICS} for s, t in r["test"].items()}}
            for r in runs
        ],
    }
    files["json"] = out / "results.json"
    atomic_write_text(files["json"], json.dumps(doc, indent=1) + "\n")
    rows = [["variant", "seed", "split", "num_samples", *METRICS, "train_seconds"]]
    for r in runs:
        secs = sum(r[k]["seconds"] for k in ("stage1", "stage2") if k in r)
        for s, t in r["test"].items():
            rows.append(
                [
                    r["variant"],
                    r["seed"],
                    s,
                    t["num_samples"],
                    *(f"{t[m]:.2f}" for m in METRICS),
                    f"{secs:.0f}",
                ]
            )
    files["csv"] = out / "results.csv"
    atomic_write_text(files["csv"], _csv_text(rows))
    vrows = [["variant", "visible_low", "visible_high", "count", *METRICS]]
    vrows += [
        [r["variant"], r["visible_low"], r["visible_high"], r["count"], *(f"{r[m]:.2f}" for m in METRICS)]
        for r in vis_rows
    ]
    files["by_visibility"] = out / "by_visibility.csv"
    atomic_write_text(files["by_visibility"], _csv_text(vrows))
    files["table"] = out / "table.md"
    atomic_write_text(files["table"], markdown_table(summary))
    files["plot"] = out / "error_vs_visibility.png"
    plot_visibility(vis_rows, files["plot"])
    return files


# -------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="ablation YAML (experiments/ablation/configs/*.yaml)")
    p.add_argument("--phase", choices=("all", "data", "train", "report"), default="all")
    p.add_argument("--only", nargs="*", choices=tuple(VARIANTS), help="train only these variants")
    p.add_argument(
        "--time-budget-min",
        type=float,
        default=None,
        help="do not start runs that would not finish within this many minutes",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    deadline = time.time() + 60 * args.time_budget_min if args.time_budget_min else None
    acfg = load_ablation_config(args.config)
    if args.phase in ("all", "data"):
        make_data(acfg)
    if args.phase in ("all", "train"):
        ctx = build_context(acfg)
        train_all(ctx, only=set(args.only) if args.only else None, deadline=deadline)
    if args.phase in ("all", "report"):
        files = report(acfg)
        for name, path in files.items():
            print(f"{name}: {path}")
        table = Path(acfg.results_dir) / "table.md"
        if table.is_file():
            print(table.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
