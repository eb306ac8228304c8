"""3DOH (3D Object-Occluded Humans) test set in JOTR's JSON (jotr-reference §6).

File ``<root>/3doh_test_annots_scale_1.json``: ``{img_rel_path: {pose (72), shape (10), trans (3), scale,
hrnet_results (17x3 COCO), bbox (x1, y1, x2, y2)}}``; images ``<root>/images/<img_rel_path>`` (or
``<root>/<img_rel_path>`` when the relative path already includes the folder). The box is xyxy and is
converted here (the official fallback passed it as xywh, bug B10). GT body: neutral SMPL. The file has no
intrinsics; ``options.focal``/``options.princpt`` supply them when fitted joints in the image are wanted.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from jotr.data.datasets import common as C
from jotr.data.records import DatasetReader, PersonRecord
from jotr.errors import InputError
from jotr.geometry.boxes import xyxy_to_xywh

logger = logging.getLogger(__name__)

OPTIONS = ("annotation_file", "image_dir", "focal", "princpt")


class OH3DReader(DatasetReader):
    name = "oh3d"
    is_3d = False

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        C.check_options(spec, OPTIONS, self.name)
        root = C.dataset_root(spec, self.name)
        ann_path = Path(C.option(spec, "annotation_file", root / "3doh_test_annots_scale_1.json"))
        image_dir = Path(C.option(spec, "image_dir", root / "images"))
        focal, princpt = C.option(spec, "focal", None), C.option(spec, "princpt", None)
        cam = None
        if focal is not None or princpt is not None:
            cam = C.parse_cam({"focal": focal, "princpt": princpt})
            if cam is None:
                raise InputError(
                    f"oh3d: options.focal/princpt must be two positive numbers each, got {focal}, {princpt}"
                )
        data = C.load_json(ann_path, "3DOH annotation file")
        if not isinstance(data, dict):
            raise InputError(f"{ann_path} must hold a mapping {{image path: annotation}}")
        for i, (rel, ann) in enumerate(sorted(data.items())):
            rec = self._record(str(rel), ann, root, image_dir, cam, i)
            if rec is not None:
                self.records.append(rec)
        logger.info(self.summary())

    def _record(self, rel: str, ann: Any, root: Path, image_dir: Path, cam, i: int) -> PersonRecord | None:
        if not isinstance(ann, dict):
            self.skip("bad entry")
            return None
        parsed = C.parse_smpl(ann, reset_large_shape=False)
        if parsed is None:
            self.skip("bad smpl parameters")
            return None
        hr = C.as_array(ann.get("hrnet_results"), (17, 3))
        if hr is None:
            self.skip("bad hrnet_results")
            return None
        kps = C.keypoints_to_jotr30(hr, C.COCO17_TO_JOTR30, add_pelvis=True, add_neck=True)
        if not C.keypoint_box_ok(kps):
            self.skip("fewer than 2 confident keypoints")
            return None
        xyxy = C.as_array(ann.get("bbox"), (4,))
        box = None
        if xyxy is not None:
            box = C.parse_box(xyxy_to_xywh(xyxy))
        path = image_dir / rel
        if not path.exists() and (root / rel).exists():
            path = root / rel
        pose, shape, trans = parsed
        return PersonRecord(
            dataset=self.name,
            sample_id=f"{i}_{Path(rel).stem}",
            image_path=str(path),
            image_size=(0, 0),
            bbox_xywh=box,
            input_keypoints=kps.astype(np.float32),
            body_model="smpl",
            pose_aa=pose,
            shape=shape,
            trans=trans,
            gender="neutral",
            focal=cam[0] if cam else None,
            princpt=cam[1] if cam else None,
            has_fit=True,
            extra={"image_key": rel},
        )
