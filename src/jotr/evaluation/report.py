"""Evaluation report: printed table, JSON, CSV and PNG plots (all written atomically)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from jotr.utils.io import atomic_save, atomic_write_text

if TYPE_CHECKING:
    from jotr.evaluation.evaluator import EvalResult


def _fmt(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"


def format_table(result: EvalResult) -> str:
    """Plain-text tables: metrics per dataset, then error vs visible fraction."""
    rows = [("dataset", "N", "MPJPE", "PA-MPJPE", "PVE", "skipped")]
    for label, m in result.datasets.items():
        rows.append(
            (label, str(m.num_samples), _fmt(m.mpjpe), _fmt(m.pa_mpjpe), _fmt(m.pve), str(m.num_skipped))
        )
    lines = [_render(rows), "(mm; MPJPE/PA-MPJPE on 14 H36M joints, PVE after pelvis alignment)"]
    for label, m in result.datasets.items():
        bad = getattr(m, "num_nonfinite", 0)
        if bad:
            lines.append(
                f"WARNING {label}: the network's predictions are NaN/inf for {bad} of {m.num_samples} "
                "samples; their errors and the means are undefined ('-')"
            )
    vis_rows = [("dataset", "visible", "N", "MPJPE", "PA-MPJPE", "PVE")]
    for label, m in result.datasets.items():
        for b in m.by_visibility:
            vis_rows.append(
                (
                    label,
                    f"{b.low:.1f}-{b.high:.1f}",
                    str(b.count),
                    _fmt(b.mpjpe),
                    _fmt(b.pa_mpjpe),
                    _fmt(b.pve),
                )
            )
    if len(vis_rows) > 1:
        lines += ["", "error vs visible fraction of the person:", _render(vis_rows)]
    if result.image_dependence:
        lines += ["", "image dependence (jotr.evaluation.perturb):", format_image_dependence(result)]
    if result.datasets:
        labels = list(result.datasets)
        joint_rows = [("joint (MPJPE)", *labels)]
        for name in next(iter(result.datasets.values())).per_joint_mpjpe:
            joint_rows.append((name, *(_fmt(result.datasets[lb].per_joint_mpjpe[name]) for lb in labels)))
        lines += ["", "per-joint error:", _render(joint_rows)]
    return "\n".join(lines)


def image_dependence_rows(result: EvalResult) -> list[dict]:
    """One row per dataset and mode: MPJPE, PA-MPJPE, withheld-joint MPJPE and the MPJPE change against
    the normal row (%)."""
    rows = []
    for label, modes in result.image_dependence.items():
        base = modes["normal"].mpjpe if "normal" in modes else math.nan
        for mode, m in modes.items():
            rows.append(
                {
                    "dataset": label,
                    "mode": mode,
                    "num_samples": m.num_samples,
                    "mpjpe": m.mpjpe,
                    "pa_mpjpe": m.pa_mpjpe,
                    "withheld_mpjpe": m.withheld_mpjpe,
                    "mpjpe_change_pct": 100.0 * (m.mpjpe - base) / base
                    if base and base == base
                    else math.nan,
                }
            )
    return rows


def format_image_dependence(result: EvalResult) -> str:
    """Rows normal / image removed / limbs withheld per dataset."""
    from jotr.evaluation.perturb import MODE_LABELS

    rows = [("dataset", "inputs", "N", "MPJPE", "PA-MPJPE", "withheld joints", "MPJPE vs normal")]
    for r in image_dependence_rows(result):
        change = r["mpjpe_change_pct"]
        rows.append(
            (
                r["dataset"],
                MODE_LABELS.get(r["mode"], r["mode"]),
                str(r["num_samples"]),
                _fmt(r["mpjpe"]),
                _fmt(r["pa_mpjpe"]),
                _fmt(r["withheld_mpjpe"]),
                "-" if math.isnan(change) else f"{change:+.1f} %",
            )
        )
    note = (
        "(mm; 'withheld joints' = MPJPE over the evaluation joints of the limbs drawn per person, whose "
        "input keypoints are withheld in the 'limbs withheld' row; 'image removed' = constant grey crop)"
    )
    return _render(rows) + "\n" + note


def _render(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for k, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        out.append("  ".join(cells))
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


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
            from jotr.evaluation.evaluator import EVAL_JOINT_NAMES

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

    from jotr.evaluation.evaluator import EVAL_JOINT_NAMES

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
