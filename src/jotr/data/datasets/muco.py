"""MuCo-3DHP in the COCO-style JSON of 3DMPPE/3DCrowdNet (jotr-reference §6).

Files under ``spec.root``: ``MuCo-3DHP.json`` (images: ``id, file_name, width, height, f, c``; annotations:
``id, image_id, keypoints_cam`` 21x3 mm, ``keypoints_img`` 21x2 px, ``bbox``), ``smpl_param.json``
(``{str(annotation id): {pose, shape, trans}}``, camera frame); images ``<root>/<file_name>``.
As in the official code only the person closest to the camera is used per image (``options.closest_only``);
overlapping persons (IoU >= 0.1) feed PoseFix swap errors.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from jotr.body.joint_sets import H36M17
from jotr.data.datasets import common as C
from jotr.data.records import DatasetReader, PersonRecord

logger = logging.getLogger(__name__)

OPTIONS = ("annotation_file", "smpl_file", "image_dir", "use_fits", "fit_threshold_mm", "closest_only")
MUCO_PELVIS = 14
# MuCo joints compared with the fitted body's H36M joints for the fit-error filter: (MuCo index, H36M17
# index).
_FIT_CHECK_NAMES = (
    "Pelvis",
    "R_Hip",
    "R_Knee",
    "R_Ankle",
    "L_Hip",
    "L_Knee",
    "L_Ankle",
    "L_Shoulder",
    "L_Elbow",
    "L_Wrist",
    "R_Shoulder",
    "R_Elbow",
    "R_Wrist",
)
_MUCO_NAMES = tuple(n for n, _ in C.MUCO21_TO_JOTR30)
FIT_CHECK = (
    np.array([_MUCO_NAMES.index(n) for n in _FIT_CHECK_NAMES]),
    np.array([H36M17.index(n) for n in _FIT_CHECK_NAMES]),
)


class MuCoReader(DatasetReader):
    name = "muco"
    is_3d = True

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        C.check_options(spec, OPTIONS, self.name)
        root = C.dataset_root(spec, self.name)
        ann_path = Path(C.option(spec, "annotation_file", root / "MuCo-3DHP.json"))
        image_dir = Path(C.option(spec, "image_dir", root))
        use_fits = bool(C.option(spec, "use_fits", True))
        threshold = float(C.option(spec, "fit_threshold_mm", 25.0)) / 1000.0
        closest_only = bool(C.option(spec, "closest_only", True))
        fits = (
            C.load_json(
                Path(C.option(spec, "smpl_file", root / "smpl_param.json")), "MuCo SMPL parameter file"
            )
            if use_fits
            else {}
        )
        index = C.CocoIndex(C.load_json(ann_path, "MuCo annotation file"), ann_path)
        for _ in range(index.orphans):
            self.skip("annotation without image")
        for image_id, img in index.images.items():
            anns = index.anns_by_image.get(image_id, [])
            f, c = C.as_array(img.get("f"), (2,)), C.as_array(img.get("c"), (2,))
            if f is None or c is None or "file_name" not in img:
                for _ in anns:
                    self.skip("bad image entry")
                continue
            size = (int(img.get("width", 0)), int(img.get("height", 0)))
            persons = []
            for ann in anns:
                rec = self._record(ann, image_id, image_dir / str(img["file_name"]), size, f, c)
                if rec is not None:
                    persons.append(rec)
            boxes = [p.bbox_xywh for p in persons]
            C.attach_near_persons(persons, boxes)
            if closest_only and persons:
                persons = [min(persons, key=lambda p: p.extra["root_depth"])]
            for rec in persons:
                self._attach_fit(
                    rec, fits.get(rec.extra["annotation_id"]) if isinstance(fits, dict) else None, threshold
                )
                self.records.append(rec)
        logger.info(self.summary())

    def _record(self, ann, image_id, path, size, f, c) -> PersonRecord | None:
        cam = C.as_array(ann.get("keypoints_cam"), (21, 3))
        img = C.as_array(ann.get("keypoints_img"), (21, 2))
        box = C.parse_box(ann.get("bbox"))
        if cam is None or img is None:
            self.skip("bad keypoints")
            return None
        if box is None:
            self.skip("bad bbox")
            return None
        if cam[MUCO_PELVIS, 2] <= 0:
            self.skip("joint behind the camera")
            return None
        cam_m = cam / 1000.0
        ones = np.ones((21, 1))
        j_img = C.to_jotr30(np.concatenate([img, ones], 1), C.MUCO21_TO_JOTR30)
        j_cam = C.to_jotr30(np.concatenate([cam_m, ones], 1), C.MUCO21_TO_JOTR30)
        return PersonRecord(
            dataset=self.name,
            sample_id=f"{image_id}_{ann.get('id')}",
            image_path=str(path),
            image_size=size,
            bbox_xywh=box,
            joints_img=j_img[:, :2],
            joints_img_valid=j_img[:, 2],
            joints_cam=j_cam[:, :3],
            joints_cam_valid=j_cam[:, 3],
            body_model="smpl",
            focal=(float(f[0]), float(f[1])),
            princpt=(float(c[0]), float(c[1])),
            is_3d=True,
            extra={
                "annotation_id": str(ann.get("id")),
                "root_depth": float(cam_m[MUCO_PELVIS, 2]),
                "muco_cam": cam_m,
            },
        )

    def _attach_fit(self, rec: PersonRecord, fit: Any, threshold: float) -> None:
        muco_cam = rec.extra.pop("muco_cam")
        if fit is None:
            return
        parsed = C.parse_smpl(fit)
        if parsed is None:
            self.skip("bad smpl fit (sample kept without fit)")
            return
        rec.pose_aa, rec.shape, rec.trans = parsed
        rec.has_fit = True
        rec.extra["fit_check"] = (muco_cam[FIT_CHECK[0]], FIT_CHECK[1])
        rec.extra["fit_threshold"] = threshold
