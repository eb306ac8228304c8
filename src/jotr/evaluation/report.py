"""Evaluation report: printed table, JSON, CSV and PNG plots (all written atomically)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from jotr.evaluation.results import EVAL_JOINT_NAMES, EvalResult
from jotr.evaluation.table import format_table, image_dependence_rows  # format_table re-exported
from jotr.utils.io import atomic_save, atomic_write_text

__all__ = ["format_table", "plot_per_joint", "plot_visibility", "write_report"]


def _csv(rows: list[list]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def write_report(result: EvalResult, out_dir: Path, save_per_sample: bool = True) -> dict[str, Path]:
    """Write metrics.json, metrics.csv, per_joint.csv, by_visibility.csv, per-sample CSVs and the plots."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    payload = {
        "checkpoint": result.checkpoint,
        "step": result.step,
        "units": "mm",
        "datasets": {label: m.summary() for label, m in result.datasets.items()},
    }
    if result.image_dependence:
        payload["image_dependence"] = image_dependence_rows(result)
    files["json"] = out_dir / "metrics.json"
    atomic_write_text(files["json"], json.dumps(payload, indent=2, allow_nan=True) + "\n")

    rows = [["dataset", "num_samples", "num_skipped", "mpjpe_mm", "pa_mpjpe_mm", "pve_mm"]]
    for label, m in result.datasets.items():
        rows.append([label, m.num_samples, m.num_skipped, m.mpjpe, m.pa_mpjpe, m.pve])
    files["csv"] = out_dir / "metrics.csv"
    atomic_write_text(files["csv"], _csv(rows))

    joint_rows = [["dataset", "joint", "mpjpe_mm", "pa_mpjpe_mm"]]
    for label, m in result.datasets.items():
        for name, v in m.per_joint_mpjpe.items():
            joint_rows.append([label, name, v, m.per_joint_pa_mpjpe[name]])
    if result.image_dependence:
        keys = ["dataset", "mode", "num_samples", "mpjpe", "pa_mpjpe", "withheld_mpjpe", "mpjpe_change_pct"]
        dep_rows = [keys] + [[r[k] for k in keys] for r in image_dependence_rows(result)]
        files["image_dependence_csv"] = out_dir / "image_dependence.csv"
        atomic_write_text(files["image_dependence_csv"], _csv(dep_rows))

    files["per_joint_csv"] = out_dir / "per_joint.csv"
    atomic_write_text(files["per_joint_csv"], _csv(joint_rows))

    vis_rows = [["dataset", "visible_low", "visible_high", "count", "mpjpe_mm", "pa_mpjpe_mm", "pve_mm"]]
    for label, m in result.datasets.items():
        for b in m.by_visibility:
            vis_rows.append([label, b.low, b.high, b.count, b.mpjpe, b.pa_mpjpe, b.pve])
    files["by_visibility_csv"] = out_dir / "by_visibility.csv"
    atomic_write_text(files["by_visibility_csv"], _csv(vis_rows))

    if save_per_sample:
        for label, m in result.datasets.items():
            s = m.samples
            if s is None:
                continue
            head = ["index", "sample_id", "visible_fraction", "mpjpe_mm", "pa_mpjpe_mm", "pve_mm"]
            head += [f"err_{n}" for n in EVAL_JOINT_NAMES]
            sample_rows: list[list] = [head]
            for i in range(len(s)):
                sample_rows.append(
                    [
                        int(s.index[i]),
                        s.sample_id[i],
                        float(s.visible_fraction[i]),
                        float(s.mpjpe[i]),
                        float(s.pa_mpjpe[i]),
                        float(s.pve[i]),
                    ]
                    + [float(v) for v in s.joint_err[i]]
                )
            path = out_dir / f"per_sample_{_safe(label)}.csv"
            atomic_write_text(path, _csv(sample_rows))
            files[f"per_sample:{label}"] = path

    files["visibility_png"] = out_dir / "error_vs_visibility.png"
    files["per_joint_png"] = out_dir / "per_joint.png"
    plot_visibility(result, files["visibility_png"])
    plot_per_joint(result, files["per_joint_png"])
    return files


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # object API: no pyplot state, Agg canvas

    return Figure(figsize=(width, height), dpi=100)


def _save_png(fig, path: Path) -> None:
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))


def plot_visibility(result: EvalResult, path: Path) -> None:
    """MPJPE and PA-MPJPE against the person's visible fraction, one line per dataset."""
    fig = _figure(8, 3.6)
    ax1, ax2 = fig.subplots(1, 2, sharey=False)
    for label, m in result.datasets.items():
        xs = [0.5 * (b.low + b.high) for b in m.by_visibility if b.count > 0]
        if not xs:
            continue
        ax1.plot(xs, [b.mpjpe for b in m.by_visibility if b.count > 0], marker="o", label=label)
        ax2.plot(xs, [b.pa_mpjpe for b in m.by_visibility if b.count > 0], marker="o", label=label)
    for ax, title in ((ax1, "MPJPE"), (ax2, "PA-MPJPE")):
        ax.set_xlabel("visible fraction of the person")
        ax.set_ylabel(f"{title} (mm)")
        ax.set_title(f"{title} vs visibility")
        ax.set_xlim(0, 1)
        ax.grid(alpha=0.3)
    if result.datasets:
        ax1.legend(fontsize=7)
    _save_png(fig, path)


def plot_per_joint(result: EvalResult, path: Path) -> None:
    """Grouped bars of the per-joint MPJPE of every dataset."""
    import numpy as np

    fig = _figure(9, 3.6)
    ax = fig.subplots()
    n = max(len(result.datasets), 1)
    x = np.arange(len(EVAL_JOINT_NAMES))
    width = 0.8 / n
    for k, (label, m) in enumerate(result.datasets.items()):
        ax.bar(
            x + k * width - 0.4 + width / 2,
            [m.per_joint_mpjpe[j] for j in EVAL_JOINT_NAMES],
            width,
            label=label,
        )
    ax.set_xticks(x)
    ax.set_xticklabels(EVAL_JOINT_NAMES, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("MPJPE (mm)")
    ax.set_title("per-joint error")
    ax.grid(axis="y", alpha=0.3)
    if result.datasets:
        ax.legend(fontsize=7)
    _save_png(fig, path)
