"""3DPW (test, OC, PC, Crowd, validation) in the COCO-style JSON of 3DCrowdNet/JOTR (jotr-reference §6).

Files (under ``spec.root``): ``3DPW_latest_test.json`` (split ``test``), ``3DPW_oc.json`` (``oc``),
``3DPW_pc.json`` (``pc``), ``3DPW_latest_validation.json`` (``crowd`` = sequences courtyard_hug_00 +
courtyard_dancing_00, and ``validation`` = all), images ``imageFiles/<sequence>/<file_name>``. The 2D-pose
input is OpenPose-18 (``openpose_result``) or, per dataset (``options.keypoint_source``; the default for
``crowd``), HigherHRNet COCO-17 from ``3DPW_validation_crowd_hhrnet_result.json`` -- never a global setting
(official bug B5).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from jotr.data.datasets import common as C
from jotr.data.records import DatasetReader, PersonRecord
from jotr.errors import InputError

logger = logging.getLogger(__name__)

SPLIT_FILES = {
    "test": "3DPW_latest_test.json",
    "oc": "3DPW_oc.json",
    "pc": "3DPW_pc.json",
    "crowd": "3DPW_latest_validation.json",
    "validation": "3DPW_latest_validation.json",
}
CROWD_SEQUENCES = ("courtyard_hug_00", "courtyard_dancing_00")
HHRNET_FILE = "3DPW_validation_crowd_hhrnet_result.json"
OPTIONS = ("annotation_file", "image_dir", "keypoint_source", "hhrnet_file", "sequences")


class PW3DReader(DatasetReader):
    name = "pw3d"
    is_3d = False

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        C.check_options(spec, OPTIONS, self.name)
        split = spec.split or "test"
        if split not in SPLIT_FILES:
            raise InputError(f"pw3d: unknown split {split!r}; valid: {sorted(SPLIT_FILES)}")
        root = C.dataset_root(spec, self.name)
        ann_path = Path(C.option(spec, "annotation_file", root / SPLIT_FILES[split]))
        image_dir = Path(C.option(spec, "image_dir", root / "imageFiles"))
        source = C.option(spec, "keypoint_source", "hhrnet" if split == "crowd" else "openpose")
        if source not in ("openpose", "hhrnet"):
            raise InputError(f"pw3d: options.keypoint_source must be 'openpose' or 'hhrnet', got {source!r}")
        self.keypoint_source = source
        self.openpose_fallbacks = 0  # persons without a HigherHRNet entry, kept with their OpenPose keypoints
        default_seqs = CROWD_SEQUENCES if split == "crowd" else None
        sequences = C.option(spec, "sequences", default_seqs)
        sequences = set(sequences) if sequences is not None else None
        hhrnet: dict[str, Any] = {}
        if source == "hhrnet":
            hh_path = Path(C.option(spec, "hhrnet_file", root / HHRNET_FILE))
            hhrnet = C.load_json(hh_path, "3DPW HigherHRNet keypoint file")
            if not isinstance(hhrnet, dict):
                raise InputError(f"{hh_path} must hold a mapping {{annotation id: {{coco_joints: 17x3}}}}")

        index = C.CocoIndex(C.load_json(ann_path, "3DPW annotation file"), ann_path)
        for _ in range(index.orphans):
            self.skip("annotation without image")
        for image_id, img in index.images.items():
            seq = img.get("sequence")
            if sequences is not None and seq not in sequences:
                continue
            cam = C.parse_cam(img.get("cam_param"))
            if cam is None or "file_name" not in img or seq is None:
                for _ in index.anns_by_image.get(image_id, []):
                    self.skip("bad image entry (cam_param, file_name or sequence)")
                continue
            width, height = int(img.get("width", 0)), int(img.get("height", 0))
            path = image_dir / str(seq) / str(img["file_name"])
            for ann in index.anns_by_image.get(image_id, []):
                rec = self._record(ann, image_id, path, (width, height), cam, hhrnet)
                if rec is not None:
                    self.records.append(rec)
        if self.openpose_fallbacks:
            logger.info(
                "pw3d[%s]: %d persons have no HigherHRNet keypoints and use OpenPose",
                split,
                self.openpose_fallbacks,
            )
        logger.info(self.summary())

    def _record(self, ann, image_id, path: Path, size, cam, hhrnet) -> PersonRecord | None:
        smpl = ann.get("smpl_param")
        parsed = C.parse_smpl(smpl, reset_large_shape=False)
        if parsed is None:
            self.skip("bad smpl_param")
            return None
        pose, shape, trans = parsed
        kps = None
        if self.keypoint_source == "hhrnet":
            entry = hhrnet.get(str(ann.get("id")))
            coco = C.as_array(entry.get("coco_joints"), (17, 3)) if isinstance(entry, dict) else None
            if coco is not None:
                kps = C.keypoints_to_jotr30(coco, C.COCO17_TO_JOTR30, add_pelvis=True, add_neck=True)
        if kps is None:
            op = C.as_array(ann.get("openpose_result"), (18, 3))
            if op is None:
                self.skip("bad openpose_result")
                return None
            kps = C.keypoints_to_jotr30(op, C.OPENPOSE18_TO_JOTR30, add_pelvis=True)
            if self.keypoint_source == "hhrnet":
                self.openpose_fallbacks += 1
        if not C.keypoint_box_ok(kps):
            self.skip("fewer than 2 confident keypoints")
            return None
        return PersonRecord(
            dataset=self.name,
            sample_id=f"{image_id}_{ann.get('id')}",
            image_path=str(path),
            image_size=size,
            bbox_xywh=C.parse_box(ann.get("bbox")),
            input_keypoints=kps.astype(np.float32),
            body_model="smpl",
            pose_aa=pose,
            shape=shape,
            trans=trans,
            gender=C.normalise_gender(smpl.get("gender")),
            focal=cam[0],
            princpt=cam[1],
            is_3d=False,
            has_fit=True,
            extra={"sequence": str(path.parent.name), "keypoint_source": self.keypoint_source},
        )
