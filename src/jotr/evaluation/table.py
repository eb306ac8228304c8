"""The plain-text tables of an evaluation result (what ``jotr eval`` prints)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jotr.evaluation.results import EvalResult


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
