"""Reader of the synthetic occluded-people dataset written by ``jotr synth`` (docs/synthetic_format.md).

``spec.root`` = the dataset folder, ``spec.split`` = the split name (``none``, ``oc``, ``pc``, ``crowd`` or a
custom ``--name``): reads ``<root>/<split>.json`` and ``<root>/images/<file_name>``. One
:class:`~jotr.data.records.PersonRecord` per annotated person; option ``targets_only`` (default True) keeps
only the target person of each scene. Ground truth is exact: every JOTR30 joint is annotated (valid),
including occluded and out-of-image joints (the pipeline marks truncation itself). ``record.extra`` carries
``occluded`` (30,) bool (hidden by an object or a person, for the keypoint-corruption model), ``visibility``
(30,) int codes, ``in_image`` (30,) bool (the joint's pixel lies inside the image; False = cut by the frame,
the input keypoint is missing), ``others_img`` (the other annotated persons' (30, 3) GT joints: x, y,
inside-image flag) and the ids. Persons flagged ``too_truncated`` (fewer than ``min_joints_in_image`` joints
inside the image) are skipped (counted as "too truncated") but still serve as the others' swap donors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jotr.body.joint_sets import JOTR30
from jotr.data.datasets import common as C
from jotr.data.records import DatasetReader, PersonRecord
from jotr.errors import InputError

logger = logging.getLogger(__name__)

OPTIONS = ("targets_only",)
NUM_JOINTS = len(JOTR30)
VIS_OUTSIDE, VIS_VISIBLE, VIS_OBJECT, VIS_PERSON = 0, 1, 2, 3  # = jotr.synth.scene.VIS_*


def _array(value: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """A finite float array of exactly ``shape``, or None."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.shape != shape or not np.all(np.isfinite(arr)):
        return None
    return arr


class SyntheticReader(DatasetReader):
    name = "synthetic"
    is_3d = True

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        C.check_options(spec, OPTIONS, self.name)
        targets_only = bool(C.option(spec, "targets_only", True))
        root = C.dataset_root(spec, self.name)
        split = str(getattr(spec, "split", "") or "")
        if not split:
            raise InputError(f"{self.name}: no split given for {root} (e.g. 'oc', 'pc', 'crowd', 'none')")
        json_path = root / f"{split}.json"
        data = C.load_json(json_path, "synthetic split file")
        image_root = root / "images"
        if not image_root.is_dir():
            raise InputError(f"{self.name}: image folder not found: {image_root} (next to {json_path})")
        if not isinstance(data, Mapping) or not isinstance(data.get("info"), Mapping):
            raise InputError(
                f"{json_path} is not a synthetic split file (needs 'info', 'images', 'annotations')"
            )
        body = data["info"].get("body_model", {})
        num_pose = len(body.get("pose_joint_names", ())) if isinstance(body, Mapping) else 0
        num_shape = len(body.get("shape_names", ())) if isinstance(body, Mapping) else 0
        rig = body.get("rig", "") if isinstance(body, Mapping) else ""
        if num_pose == 0 or num_shape == 0:
            raise InputError(f"{json_path}: info.body_model lacks pose_joint_names / shape_names")
        index = C.CocoIndex(data, json_path)
        for _ in range(index.orphans):
            self.skip("annotation without image")

        for image_id, img in index.images.items():
            anns = [a for a in index.anns_by_image.get(image_id, []) if isinstance(a, Mapping)]
            image_ok = self._image_entry(img, image_root)
            if image_ok is None:
                for _ in anns:
                    self.skip("bad image entry")
                continue
            path, size, focal, princpt = image_ok
            if not path.is_file():
                for _ in anns:
                    self.skip("missing image file")
                continue
            parsed = []
            for ann in anns:
                rec = self._person(ann, img, path, size, focal, princpt, num_pose, num_shape, rig)
                if rec is None:
                    self.skip("malformed annotation")
                    continue
                parsed.append(rec)
            for rec in parsed:
                rec.extra["others_img"] = [
                    np.concatenate([o.joints_img, (o.extra["visibility"] != VIS_OUTSIDE)[:, None]], axis=1)
                    for o in parsed
                    if o is not rec
                ]
                if targets_only and not rec.extra["is_target"]:
                    continue
                if rec.extra["too_truncated"]:  # almost entirely outside the image: no training person
                    self.skip("too truncated")
                    continue
                self.records.append(rec)
        logger.info(self.summary())

    @staticmethod
    def _image_entry(img: Mapping[str, Any], image_root: Path):
        try:
            file_name = str(img["file_name"])
            size = (int(img["width"]), int(img["height"]))
            cam = img["cam_param"]
            focal = _array(cam["focal"], (2,))
            princpt = _array(cam["princpt"], (2,))
        except (KeyError, TypeError, ValueError):
            return None
        if focal is None or princpt is None or size[0] <= 0 or size[1] <= 0:
            return None
        return (
            image_root / file_name,
            size,
            (float(focal[0]), float(focal[1])),
            (float(princpt[0]), float(princpt[1])),
        )

    def _person(self, ann, img, path, size, focal, princpt, num_pose, num_shape, rig) -> PersonRecord | None:
        joints_2d = _array(ann.get("joints_2d_jotr30"), (NUM_JOINTS, 2))
        joints_3d = _array(ann.get("joints_3d_jotr30"), (NUM_JOINTS, 3))
        vis = _array(ann.get("visibility_jotr30"), (NUM_JOINTS,))
        kps = _array(ann.get("input_keypoints"), (NUM_JOINTS, 3))
        box = _array(ann.get("bbox"), (4,))
        param = ann.get("body_param")
        if not isinstance(param, Mapping):
            return None
        pose = _array(param.get("pose_aa"), (num_pose, 3))
        shape = _array(param.get("shape"), (num_shape,))
        trans = _array(param.get("trans"), (3,))
        vf = ann.get("visible_fraction")
        if any(x is None for x in (joints_2d, joints_3d, vis, kps, box, pose, shape, trans)):
            return None
        if (
            not isinstance(vf, (int, float))
            or not 0.0 <= float(vf) <= 1.0
            or not np.isin(vis, (0, 1, 2, 3)).all()
        ):
            return None
        vis_i = vis.astype(np.int64)
        ones = np.ones(NUM_JOINTS)
        return PersonRecord(
            dataset=self.name,
            sample_id=f"{img['id']}_{ann.get('id')}",
            image_path=str(path.resolve()),
            image_size=size,
            bbox_xywh=box,
            joints_img=joints_2d,
            joints_img_valid=ones.copy(),
            joints_cam=joints_3d,
            joints_cam_valid=ones.copy(),
            input_keypoints=kps,
            body_model="anny",
            pose_aa=pose,
            shape=shape,
            trans=trans,
            focal=focal,
            princpt=princpt,
            is_3d=True,
            has_fit=True,
            visible_fraction=float(vf),
            extra={
                "image_id": img["id"],
                "annotation_id": ann.get("id"),
                "is_target": bool(ann.get("is_target", False)),
                "visibility": vis_i,
                "occluded": np.isin(vis_i, (VIS_OBJECT, VIS_PERSON)),
                "in_image": vis_i != VIS_OUTSIDE,
                "too_truncated": bool(ann.get("too_truncated", False)),
                "family": img.get("family", ""),
                "rig": rig,
            },
        )
