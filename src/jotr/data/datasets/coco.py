"""MSCOCO keypoints with NeuralAnnot SMPL fits (jotr-reference §6).

Files under ``spec.root``: ``annotations/person_keypoints_<split>2017.json`` (COCO format; ``iscrowd`` and
``num_keypoints == 0`` entries are skipped), ``annotations/MSCOCO_<split>_SMPL_NeuralAnnot.json``
(``{str(annotation id): {smpl_param: {pose, shape, trans}, cam_param: {focal, princpt}}}``, camera frame,
metres); images ``images/<split>2017/<file_name>``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from jotr.data.datasets import common as C
from jotr.data.records import DatasetReader, PersonRecord

logger = logging.getLogger(__name__)

OPTIONS = ("annotation_file", "fit_file", "image_dir", "use_fits")


class COCOReader(DatasetReader):
    name = "coco"
    is_3d = False
    keypoint_table = C.COCO17_TO_JOTR30
    add_neck = True

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        C.check_options(spec, OPTIONS, self.name)
        split = spec.split or "train"
        root = C.dataset_root(spec, self.name)
        ann_path, fit_path, image_dir = self.default_paths(root, split)
        ann_path = Path(C.option(spec, "annotation_file", ann_path))
        image_dir = Path(C.option(spec, "image_dir", image_dir))
        fits = {}
        if bool(C.option(spec, "use_fits", True)):
            fits = C.load_json(
                Path(C.option(spec, "fit_file", fit_path)), f"{self.name} NeuralAnnot fit file"
            )
        index = C.CocoIndex(C.load_json(ann_path, f"{self.name} annotation file"), ann_path)
        for _ in range(index.orphans):
            self.skip("annotation without image")
        for image_id, img in index.images.items():
            anns = index.anns_by_image.get(image_id, [])
            if "file_name" not in img:
                for _ in anns:
                    self.skip("bad image entry")
                continue
            size = (int(img.get("width", 0)), int(img.get("height", 0)))
            persons = []
            for ann in anns:
                rec = self._record(ann, image_id, image_dir / str(img["file_name"]), size)
                if rec is not None:
                    persons.append(rec)
            C.attach_near_persons(persons, [p.bbox_xywh for p in persons])
            for rec in persons:
                self._attach_fit(
                    rec, fits.get(rec.extra["annotation_id"]) if isinstance(fits, dict) else None
                )
                self.records.append(rec)
        logger.info(self.summary())

    def default_paths(self, root: Path, split: str) -> tuple[Path, Path, Path]:
        return (
            root / "annotations" / f"person_keypoints_{split}2017.json",
            root / "annotations" / f"MSCOCO_{split}_SMPL_NeuralAnnot.json",
            root / "images" / f"{split}2017",
        )

    def _record(self, ann, image_id, path, size) -> PersonRecord | None:
        if ann.get("iscrowd", 0):
            self.skip("iscrowd")
            return None
        n = len(self.keypoint_table)
        kps = C.as_array(ann.get("keypoints"), (n, 3))
        if kps is None:
            self.skip("bad keypoints")
            return None
        if ann.get("num_keypoints", 1) == 0 or not np.any(kps[:, 2] > 0):
            self.skip("no keypoints")
            return None
        box = C.parse_box(ann.get("bbox"))
        if box is None:
            self.skip("bad bbox")
            return None
        vis = np.concatenate([kps[:, :2], (kps[:, 2:3] > 0).astype(np.float64)], 1)
        j30 = C.keypoints_to_jotr30(vis, self.keypoint_table, add_pelvis=True, add_neck=self.add_neck)
        return PersonRecord(
            dataset=self.name,
            sample_id=f"{image_id}_{ann.get('id')}",
            image_path=str(path),
            image_size=size,
            bbox_xywh=box,
            joints_img=j30[:, :2],
            joints_img_valid=j30[:, 2],
            body_model="smpl",
            is_3d=False,
            extra={"annotation_id": str(ann.get("id"))},
        )

    def accept_fit(self, entry: dict) -> bool:
        return True

    def _attach_fit(self, rec: PersonRecord, entry: Any) -> None:
        if entry is None:
            return
        parsed = C.parse_smpl(entry.get("smpl_param")) if isinstance(entry, dict) else None
        cam = C.parse_cam(entry.get("cam_param")) if isinstance(entry, dict) else None
        if parsed is None or cam is None:
            self.skip("bad smpl fit (sample kept without fit)")
            return
        if not self.accept_fit(entry):
            return
        rec.pose_aa, rec.shape, rec.trans = parsed
        rec.focal, rec.princpt = cam
        rec.has_fit = True
