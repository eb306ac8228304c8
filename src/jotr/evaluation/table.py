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
    if result.datasets:
        labels = list(result.datasets)
        joint_rows = [("joint (MPJPE)", *labels)]
        for name in next(iter(result.datasets.values())).per_joint_mpjpe:
            joint_rows.append((name, *(_fmt(result.datasets[lb].per_joint_mpjpe[name]) for lb in labels)))
        lines += ["", "per-joint error:", _render(joint_rows)]
    return "\n".join(lines)


def _render(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for k, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        out.append("  ".join(cells))
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
