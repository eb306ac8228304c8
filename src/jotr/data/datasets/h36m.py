"""Human3.6M in the COCO-style JSON of I2L-MeshNet/3DCrowdNet (jotr-reference §6).

Files under ``spec.root``: ``annotations/Human36M_subject{S}_data.json`` (images: ``file_name, width, height,
subject, action_idx, subaction_idx, frame_idx, cam_idx``; annotations: ``id, image_id, bbox``),
``annotations/Human36M_subject{S}_camera.json`` (``{cam_idx: {R, t, f, c}}``, t in mm),
``annotations/Human36M_subject{S}_joint_3d.json`` (``{action: {subaction: {frame: 17x3 world mm}}}``) and the
fitted SMPL parameters ``annotations/Human36M_subject{S}_smpl_param.json`` (``{action: {subaction: {frame:
{pose, shape, trans}}}}``, world frame). Images ``images/<file_name>``.

The fitted root rotation is turned into the camera frame (``R_cam @ R_root``) and the translation into ``R_cam
@ trans + t``; the pipeline adds the rotation of the root-joint offset (``extra['root_offset_rotation']``) and
rejects a fit whose H36M joints are more than ``fit_threshold_mm`` from the GT (``extra['fit_check']``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from jotr.data.datasets import common as C
from jotr.data.records import DatasetReader, PersonRecord
from jotr.errors import InputError

logger = logging.getLogger(__name__)

DEFAULTS = {  # split -> (subjects, frame step)
    "train": ((1, 5, 6, 7, 8), 5),
    "test": ((9, 11), 64),
}
OPTIONS = (
    "subjects",
    "frame_step",
    "cameras",
    "annotation_dir",
    "image_dir",
    "use_fits",
    "fit_threshold_mm",
    "smpl_param_pattern",
)


class H36MReader(DatasetReader):
    name = "h36m"
    is_3d = True

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        C.check_options(spec, OPTIONS, self.name)
        split = spec.split or "train"
        if split not in DEFAULTS:
            raise InputError(f"h36m: unknown split {split!r}; valid: {sorted(DEFAULTS)}")
        root = C.dataset_root(spec, self.name)
        subjects = [int(s) for s in C.option(spec, "subjects", DEFAULTS[split][0])]
        step = int(C.option(spec, "frame_step", DEFAULTS[split][1]))
        if step < 1:
            raise InputError(f"h36m: options.frame_step must be >= 1, got {step}")
        cameras = {int(c) for c in C.option(spec, "cameras", (1, 2, 3, 4))}
        ann_dir = Path(C.option(spec, "annotation_dir", root / "annotations"))
        image_dir = Path(C.option(spec, "image_dir", root / "images"))
        use_fits = bool(C.option(spec, "use_fits", True))
        threshold = float(C.option(spec, "fit_threshold_mm", 25.0)) / 1000.0
        pattern = str(C.option(spec, "smpl_param_pattern", "Human36M_subject{subject}_smpl_param.json"))

        for subject in subjects:
            base = ann_dir / f"Human36M_subject{subject}"
            data_path = Path(f"{base}_data.json")
            index = C.CocoIndex(C.load_json(data_path, "Human3.6M data file"), data_path)
            cams = C.load_json(Path(f"{base}_camera.json"), "Human3.6M camera file")
            joints = C.load_json(Path(f"{base}_joint_3d.json"), "Human3.6M joint file")
            fits = (
                C.load_json(ann_dir / pattern.format(subject=subject), "Human3.6M SMPL parameter file")
                if use_fits
                else {}
            )
            for _ in range(index.orphans):
                self.skip("annotation without image")
            for image_id, img in index.images.items():
                anns = index.anns_by_image.get(image_id, [])
                try:
                    frame = int(img["frame_idx"])
                    cam_idx = int(img["cam_idx"])
                    key = (str(img["action_idx"]), str(img["subaction_idx"]), str(img["frame_idx"]))
                    file_name = str(img["file_name"])
                    size = (int(img["width"]), int(img["height"]))
                except (KeyError, TypeError, ValueError):
                    for _ in anns:
                        self.skip("bad image entry")
                    continue
                if frame % step != 0 or cam_idx not in cameras:
                    continue
                for ann in anns:
                    rec = self._record(
                        ann,
                        image_id,
                        image_dir / file_name,
                        size,
                        cams.get(str(cam_idx)),
                        _nested(joints, key),
                        _nested(fits, key),
                        threshold,
                        subject,
                    )
                    if rec is not None:
                        self.records.append(rec)
        logger.info(self.summary())

    def _record(self, ann, image_id, path, size, cam, world, fit, threshold, subject) -> PersonRecord | None:
        if not isinstance(cam, dict):
            self.skip("missing camera")
            return None
        R = C.as_array(cam.get("R"), (3, 3))
        t = C.as_array(cam.get("t"), (3,))
        f = C.as_array(cam.get("f"), (2,))
        c = C.as_array(cam.get("c"), (2,))
        if R is None or t is None or f is None or c is None:
            self.skip("bad camera")
            return None
        world = C.as_array(world, (17, 3))
        if world is None:
            self.skip("missing 3D joints")
            return None
        box = C.parse_box(ann.get("bbox"))
        if box is None:
            self.skip("bad bbox")
            return None
        cam_mm = world @ R.T + t  # (17, 3) camera frame, mm
        if np.any(cam_mm[:, 2] <= 0):
            self.skip("joint behind the camera")
            return None
        cam_m = cam_mm / 1000.0
        focal, princpt = (float(f[0]), float(f[1])), (float(c[0]), float(c[1]))
        img17 = C.project(cam_m, focal, princpt)
        ones = np.ones((17, 1))
        joints_img = C.to_jotr30(np.concatenate([img17, ones], 1), C.H36M17_TO_JOTR30)
        joints_cam = C.to_jotr30(np.concatenate([cam_m, ones], 1), C.H36M17_TO_JOTR30)
        rec = PersonRecord(
            dataset=self.name,
            sample_id=f"{image_id}_{ann.get('id')}",
            image_path=str(path),
            image_size=size,
            bbox_xywh=box,
            joints_img=joints_img[:, :2],
            joints_img_valid=joints_img[:, 2],
            joints_cam=joints_cam[:, :3],
            joints_cam_valid=joints_cam[:, 3],
            body_model="smpl",
            focal=focal,
            princpt=princpt,
            is_3d=True,
            extra={"subject": subject},
        )
        parsed = C.parse_smpl(fit) if fit is not None else None
        if fit is not None and parsed is None:
            self.skip("bad smpl fit (sample kept without fit)")
        if parsed is not None:
            pose, shape, trans = parsed
            root = cv2.Rodrigues(R @ cv2.Rodrigues(pose[0].reshape(3, 1))[0])[0].reshape(3)
            pose = pose.copy()
            pose[0] = root
            rec.pose_aa, rec.shape = pose, shape
            rec.trans = R @ trans + t / 1000.0
            rec.has_fit = True
            rec.extra["root_offset_rotation"] = R
            rec.extra["fit_check"] = (cam_m, np.arange(17))
            rec.extra["fit_threshold"] = threshold
        return rec


def _nested(tree: Any, key: tuple[str, ...]) -> Any:
    node = tree
    for k in key:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node
