"""CrowdPose with NeuralAnnot SMPL fits (jotr-reference §6).

Files under ``spec.root``: ``annotations/crowdpose_<split>.json`` (COCO format, 14 keypoints; the image
width/height fields of the train split are swapped, so the pipeline takes the size from the image itself),
``annotations/CrowdPose_<split>_SMPL_NeuralAnnot.json`` (``{str(annotation id): {smpl_param, cam_param,
fit_err}}``); images ``images/<file_name>``.

Fits with ``fit_err`` above ``options.max_fit_err`` (default 5.0, the official threshold in 64-cell heatmap
units) are not used; the official code's comparison is inverted and keeps the bad ones (bug B6). Flip pairs
come from JOTR30 joint names, so the official code's wrong CrowdPose pairs (also B6) cannot occur.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from jotr.data.datasets import common as C
from jotr.data.datasets.coco import COCOReader

OPTIONS = ("annotation_file", "fit_file", "image_dir", "use_fits", "max_fit_err")


class CrowdPoseReader(COCOReader):
    name = "crowdpose"
    keypoint_table = C.CROWDPOSE14_TO_JOTR30
    add_neck = False

    def __init__(self, spec: Any) -> None:
        C.check_options(spec, OPTIONS, self.name)
        self.max_fit_err = float(C.option(spec, "max_fit_err", 5.0))
        opts = {k: v for k, v in (spec.options or {}).items() if k != "max_fit_err"}
        super().__init__(_SpecView(spec, opts))
        self.spec = spec

    def default_paths(self, root: Path, split: str) -> tuple[Path, Path, Path]:
        return (
            root / "annotations" / f"crowdpose_{split}.json",
            root / "annotations" / f"CrowdPose_{split}_SMPL_NeuralAnnot.json",
            root / "images",
        )

    def accept_fit(self, entry: dict) -> bool:
        try:
            err = float(entry.get("fit_err", math.inf))
        except (TypeError, ValueError):
            err = math.inf
        if not err <= self.max_fit_err:
            self.skip("fit error above max_fit_err (sample kept without fit)")
            return False
        return True


class _SpecView:
    """The spec with some options consumed by the subclass."""

    def __init__(self, spec: Any, options: dict) -> None:
        self.name, self.root, self.split, self.options = spec.name, spec.root, spec.split, options
