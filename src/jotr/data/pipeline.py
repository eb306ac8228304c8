"""The shared sample pipeline: :class:`PersonRecord` (original image) -> tensors of one sample (crop space).

Steps (jotr-reference §3, §4):

1. load the image (cv2, BGR -> RGB; a clear :class:`InputError` naming the path if missing or corrupt);
2. the crop box: training = tight GT box (annotation box, else GT 2D joints), aspect 1:1, random enlargement
   U(``bbox_enlarge``); test = the official protocol, box of the valid input keypoints (confidence > 0.05)
   x1.2, aspect 1:1, x1.1 (GT 2D joints when the record has no detector keypoints; a warning is logged once);
3. augmentation (training): scale, rotation, flip, colour (:mod:`jotr.data.augment`), the affine crop with
   :func:`jotr.geometry.boxes.crop_transform` + ``cv2.warpAffine``;
4. targets in heatmap space (``joints_hm``: x, y cells, z = root-relative depth mapped through
   :func:`jotr.geometry.coords.depth_to_unit`), truncation masks, root-relative camera-frame joints, the
   fitted body's joints (the body model run on the record's parameters, transformed like the GT) and the
   augmented pose/shape targets;
5. the 2D-pose input: detector keypoints, or in training PoseFix-style corruption of the GT joints
   (:func:`jotr.data.posefix.corrupt_keypoints`) after optional occluders
   (:func:`jotr.data.occlusion.paste_occluders`). In training, joints under a pasted occluder lose their
   detector keypoint, and the input may lose whole limbs or take a neighbour's limb
   (:mod:`jotr.data.keypoint_aug`; the targets are unchanged). A keypoint is valid if its confidence is
   > 0.05 and it lies inside the crop.

Every random draw comes from the ``rng`` argument.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from jotr.body.joint_sets import JOTR30, SMPL24
from jotr.data import augment as A
from jotr.data.records import PersonRecord
from jotr.errors import InputError
from jotr.geometry import coords
from jotr.geometry.boxes import apply_affine, box_from_keypoints, crop_transform, invert_affine, square_box

logger = logging.getLogger(__name__)

KEYPOINT_THRESHOLD = 0.05  # detector confidence above which an input keypoint is used (official protocol)
TEST_BOX_EXTEND = 1.2  # test box: valid input keypoints' box x1.2, square, x1.1
TEST_BOX_SCALE = 1.1
FALLBACK_BOX_SCALE = 1.25  # annotation box when the keypoints give none (official process_bbox factor)
ROOT = JOTR30.index("Pelvis")
NUM_JOINTS = len(JOTR30)
JOTR30_FLIP = np.asarray(JOTR30.flip_permutation, dtype=np.int64)
# Pose/shape sizes of body models whose parameters can be carried without an instance of the model.
KNOWN_SIZES = {"smpl": (len(SMPL24), 10)}
_BodyJoints = tuple[np.ndarray, "np.ndarray | None"]  # (30, 3) JOTR30 and (17, 3) H36M camera-frame joints
BODY_CACHE_SIZE = 200_000  # records whose fitted-body joints are kept (~0.5 kB each)
FAR_AWAY = 1e9  # position given to unannotated joints of other persons (never a PoseFix swap donor)


class UnreadableImageError(InputError):
    """An image file exists but cannot be decoded (empty, truncated, corrupt): training skips it."""


def load_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB image; InputError naming the path when it is missing, UnreadableImageError when
    it cannot be decoded."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"image not found: {p}")
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise UnreadableImageError(f"image could not be decoded (empty, corrupt or unsupported format): {p}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class SamplePipeline:
    """Callable turning a :class:`PersonRecord` into a dict of tensors for one sample.

    Keys: every field of :class:`jotr.structures.Inputs`, :class:`~jotr.structures.Targets` and
    :class:`~jotr.structures.Meta` (without the batch axis), plus ``body_model`` (name of the body model the
    pose/shape targets belong to); ``extra`` holds ``box_xywh`` (4,) the crop box in image pixels and
    ``image_path``. See :func:`jotr.data.collate.collate`.
    """

    def __init__(self, cfg: Any, train: bool, body_models: Mapping[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.train = train
        self.aug = cfg.data.augment
        self.input_size = int(cfg.model.input_size)
        self.uses_image = cfg.model.uses_image
        self.hm_size = int(cfg.model.heatmap_size)
        self.bbox_3d_size = float(cfg.model.bbox_3d_size)
        self.body_models = dict(body_models or {})
        self._pose_perm: dict[str, np.ndarray] = {}
        self._warned: set[str] = set()
        # Fitted-body joints per record (they do not depend on the augmentation, which is applied afterwards):
        # the body model runs once per record and process, not once per epoch. Bounded FIFO.
        self._body_cache: OrderedDict[tuple[str, str, int], _BodyJoints] = OrderedDict()
        self.body_cache_size = BODY_CACHE_SIZE

    # ------------------------------------------------------------------------------------------------ helpers

    def _warn_once(self, key: str, msg: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(msg, *args)

    def _body(self, name: str) -> Any:
        """The body model of records of ``name``; SMPL records also take any SMPL-protocol model ("toy")."""
        body = self.body_models.get(name)
        if body is None and name == "smpl":
            from jotr.body.smpl import SMPLBody

            body = next((b for b in self.body_models.values() if isinstance(b, SMPLBody)), None)
        return body

    def _sizes(self, name: str) -> tuple[int, int]:
        body = self._body(name)
        if body is not None:
            return int(body.num_pose_joints), int(body.num_shape)
        if name in KNOWN_SIZES:
            return KNOWN_SIZES[name]
        raise InputError(
            f"records of body model {name!r} need that body model (pass body_models={{{name!r}: ...}})"
        )

    def _pose_permutation(self, name: str) -> np.ndarray:
        if name not in self._pose_perm:
            body = self._body(name)
            if body is not None:
                names = body.pose_joint_names
            elif name == "smpl":
                names = SMPL24.names
            else:
                raise InputError(f"flipping a {name!r} pose needs that body model's pose joint names")
            self._pose_perm[name] = A.flip_permutation(names)
        return self._pose_perm[name]

    def _crop_box(self, record: PersonRecord, params: A.AugParams) -> np.ndarray:
        """Square xywh box in image pixels (before the augmentation scale)."""
        if self.train and self.aug.train_box == "keypoints":
            box = self._test_box(record)
            if box is not None:
                c = box[:2] + box[2:] / 2.0
                side = box[2] * params.enlarge
                return np.array([c[0] - side / 2.0, c[1] - side / 2.0, side, side])
        if self.train:
            tight = record.bbox_xywh
            if tight is None and record.joints_img is not None:
                tight = box_from_keypoints(
                    record.joints_img, record.joints_img_valid, threshold=0.5, extend=1.0
                )
            if tight is None and record.input_keypoints is not None:
                kps = record.input_keypoints
                tight = box_from_keypoints(kps[:, :2], kps[:, 2], threshold=KEYPOINT_THRESHOLD, extend=1.0)
            if tight is None:
                raise InputError(
                    f"{record.dataset} sample {record.sample_id}: no box and no 2D joints to crop"
                )
            return square_box(tight, scale=params.enlarge)
        box = self._test_box(record)
        if box is not None:
            return box
        if record.bbox_xywh is not None:
            return square_box(record.bbox_xywh, scale=FALLBACK_BOX_SCALE)
        raise InputError(f"{record.dataset} sample {record.sample_id}: no keypoints or box to crop")

    @staticmethod
    def _test_box(record: PersonRecord) -> np.ndarray | None:
        """The test protocol's square box (valid input keypoints, else GT 2D joints, x1.2, square, x1.1),
        or None when fewer than two keypoints are valid."""
        box = None
        if record.input_keypoints is not None:
            kps = record.input_keypoints
            box = box_from_keypoints(
                kps[:, :2], kps[:, 2], threshold=KEYPOINT_THRESHOLD, extend=TEST_BOX_EXTEND
            )
        elif record.joints_img is not None:
            box = box_from_keypoints(
                record.joints_img, record.joints_img_valid, threshold=0.5, extend=TEST_BOX_EXTEND
            )
        return None if box is None else square_box(box, scale=TEST_BOX_SCALE)

    def _in_crop(self, xy_px: np.ndarray) -> np.ndarray:
        return (
            (xy_px[:, 0] >= 0)
            & (xy_px[:, 0] < self.input_size)
            & (xy_px[:, 1] >= 0)
            & (xy_px[:, 1] < self.input_size)
        )

    def _to_hm(self, xy_px: np.ndarray) -> np.ndarray:
        return coords.px_to_hm(
            torch.from_numpy(np.asarray(xy_px, dtype=np.float64)), self.input_size, self.hm_size
        ).numpy()

    def _depth_to_hm(self, z_rel_m: np.ndarray) -> np.ndarray:
        unit = coords.depth_to_unit(
            torch.from_numpy(np.asarray(z_rel_m, dtype=np.float64)), self.bbox_3d_size
        )
        return coords.unit_to_hm(unit, self.hm_size).numpy()

    def _hm_targets(self, xy_px: np.ndarray, z_rel: np.ndarray | None, valid: np.ndarray, is_3d: bool):
        """(30, 3) heatmap-space joints and (30,) truncation mask."""
        hm = np.zeros((NUM_JOINTS, 3))
        hm[:, :2] = self._to_hm(xy_px)
        hm[:, 2] = self._depth_to_hm(z_rel if z_rel is not None else np.zeros(NUM_JOINTS))
        inside = (hm[:, :2] >= 0).all(1) & (hm[:, :2] < self.hm_size).all(1)
        if is_3d:
            inside &= (hm[:, 2] >= 0) & (hm[:, 2] < self.hm_size)
        trunc = (valid > 0) & inside
        hm[valid <= 0] = 0.0
        return hm, trunc.astype(np.float64)

    # ---------------------------------------------------------------------------------------------- the call

    def __call__(self, record: PersonRecord, rng: np.random.Generator) -> dict[str, Any]:
        # a model that never reads the crop (model.uses_image False) gets a black one, undecoded: same
        # random streams, boxes, keypoints and targets as with the image
        image = load_image(record.image_path) if self.uses_image else None
        params = A.sample_aug_params(self.aug, rng) if self.train else A.AugParams()
        box = self._crop_box(record, params)
        size = box[2] * params.scale
        center = (box[0] + box[2] / 2.0, box[1] + box[3] / 2.0)
        if self.train and self.aug.box_shift > 0:  # drawn only when enabled: other streams stay unchanged
            shift = np.clip(rng.standard_normal(2), -2.0, 2.0) * self.aug.box_shift * size
            center = (center[0] + shift[0], center[1] + shift[1])
        M = crop_transform(center, size, self.input_size, rot_deg=params.rot_deg, flip=params.flip)
        if image is None:
            crop = np.zeros((self.input_size, self.input_size, 3), dtype=np.uint8)
        else:
            crop = cv2.warpAffine(
                image,
                M,
                (self.input_size, self.input_size),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=(0, 0, 0),
            )
        perm = JOTR30_FLIP if params.flip else np.arange(NUM_JOINTS)
        cam_T = A.camera_transform(params.rot_deg, params.flip)

        # ---- GT 2D / 3D joints
        if record.joints_img is not None:
            gt_px = apply_affine(record.joints_img, M)[perm]
            gt_valid = np.asarray(record.joints_img_valid, dtype=np.float64)[perm]
        else:
            gt_px, gt_valid = np.zeros((NUM_JOINTS, 2)), np.zeros(NUM_JOINTS)
        is_3d = bool(record.is_3d and record.joints_cam is not None)
        joints_cam = np.zeros((NUM_JOINTS, 3))
        cam_valid = np.zeros(NUM_JOINTS)
        if is_3d:
            jc = np.asarray(record.joints_cam, dtype=np.float64)
            jv = np.asarray(record.joints_cam_valid, dtype=np.float64)
            if jv[ROOT] > 0:
                joints_cam = ((jc - jc[ROOT]) @ cam_T.T)[perm]
                cam_valid = jv[perm]
                joints_cam[cam_valid <= 0] = 0.0
            else:
                is_3d = False
        joints_hm, joints_trunc = self._hm_targets(
            gt_px, joints_cam[:, 2] if is_3d else None, gt_valid, is_3d
        )

        # ---- fitted body (pseudo-)GT
        fit = self._fit_targets(record, M, perm, params)

        # ---- occluders and the 2D-pose input
        covered = np.zeros(NUM_JOINTS, dtype=bool)
        if self.train and self.aug.occluder_prob > 0 and rng.random() < self.aug.occluder_prob:
            from jotr.data.occlusion import paste_occluders

            aim = {"at": gt_px[gt_valid > 0]} if self.aug.occluder_placement == "joints" else {}
            crop, covered = paste_occluders(crop, gt_px, rng, occluder_dir=self.aug.occluder_dir, **aim)
            covered = np.asarray(covered, dtype=bool)
        kps_px, kps_conf = self._input_keypoints(record, M, perm, gt_px, gt_valid, covered, rng)
        if self.train:
            kps_px, kps_conf = self._corrupt_input(record, M, perm, kps_px, kps_conf, covered, rng)
        kps_valid = (kps_conf > KEYPOINT_THRESHOLD) & self._in_crop(kps_px)
        kps_hm = np.where(kps_valid[:, None], self._to_hm(kps_px), 0.0)

        # ---- image
        img = crop.astype(np.float32)
        if self.train:
            img = A.apply_color(img, params.color)
        image_t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1) / 255.0, dtype=np.float32))

        f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        return {
            "image": image_t,  # (3, S, S) RGB [0, 1]
            "keypoints_hm": f32(kps_hm),  # (30, 2) heatmap cells
            "keypoints_valid": f32(kps_valid),  # (30,)
            "joints_hm": f32(joints_hm),  # (30, 3) heatmap cells (z: root-relative depth)
            "joints_trunc": f32(joints_trunc),  # (30,)
            "joints_cam": f32(joints_cam),  # (30, 3) root-relative camera-frame metres
            "joints_valid": f32(cam_valid if is_3d else gt_valid),  # (30,)
            "is_3d": torch.tensor(float(is_3d)),
            "fit_joints_hm": f32(fit["joints_hm"]),  # (30, 3)
            "fit_joints_trunc": f32(fit["trunc"]),  # (30,)
            "pose_aa": f32(fit["pose_aa"]),  # (J, 3) axis-angle, root first, camera frame (augmented)
            "shape": f32(fit["shape"]),  # (S,)
            "has_fit": torch.tensor(float(fit["has_fit"])),
            "body_model": record.body_model,
            "dataset": record.dataset,
            "sample_id": record.sample_id,
            "crop_to_img": f32(invert_affine(M)),  # (2, 3)
            "visible_fraction": torch.tensor(float(record.visible_fraction)),
            "gender": record.gender,
            "extra": {"box_xywh": f32([box[0], box[1], box[2], box[3]]), "image_path": record.image_path},
        }

    # ------------------------------------------------------------------------------------------------ parts

    def _input_keypoints(self, record, M, perm, gt_px, gt_valid, covered, rng):
        """(30, 2) crop pixels and (30,) confidence of the 2D-pose input."""
        if self.train and self.aug.keypoint_noise and record.joints_img is not None:
            from jotr.data.posefix import corrupt_keypoints

            occluded = covered.copy()
            if record.extra.get("occluded") is not None:
                occluded |= np.asarray(record.extra["occluded"], dtype=bool)[perm]
            others = self._others_px(record, M, perm)
            # a joint outside the original image gets no input keypoint, as from a real detector
            in_image = np.asarray(record.extra.get("in_image", np.ones(NUM_JOINTS, dtype=bool)), dtype=bool)
            out = corrupt_keypoints(
                gt_px, (gt_valid > 0) & in_image[perm], rng, occluded=occluded, others=others
            )
            return np.asarray(out[:, :2], dtype=np.float64), np.asarray(out[:, 2], dtype=np.float64)
        if record.input_keypoints is not None:
            kps = np.asarray(record.input_keypoints, dtype=np.float64)
            return apply_affine(kps[:, :2], M)[perm], kps[perm, 2]
        if not self.train:
            self._warn_once(
                f"gt2d:{record.dataset}",
                "%s: no detector keypoints in the records; the GT 2D joints are used as the 2D-pose "
                "input (results are not comparable with the detector protocol)",
                record.dataset,
            )
        return gt_px.copy(), gt_valid.copy()

    def _others_px(self, record: PersonRecord, M: np.ndarray, perm: np.ndarray) -> list[np.ndarray]:
        """The other annotated persons' (30, 2) joints in crop pixels (flip-permuted); unannotated or
        outside-image joints at FAR_AWAY."""
        out = []
        for other in record.extra.get("others_img", ()):
            other = np.asarray(other, dtype=np.float64)
            xy = apply_affine(other[:, :2], M)[perm]
            xy[other[perm, 2] <= 0] = FAR_AWAY
            out.append(xy)
        return out

    def _corrupt_input(self, record, M, perm, kps_px, kps_conf, covered, rng):
        """Training: detector-keypoint inputs lose the joints that pasted occluders cover; then a neighbour's
        limb and whole-limb drops (``data.augment.neighbour_limb_prob`` / ``limb_drop_prob``,
        :mod:`jotr.data.keypoint_aug`). Random numbers are drawn only for enabled options."""
        from jotr.data import keypoint_aug as K

        if covered.any() and not (self.aug.keypoint_noise and record.joints_img is not None):
            kps_conf = np.where(covered, 0.0, kps_conf)  # (PoseFix inputs already treat them as occluded)
        if self.aug.neighbour_limb_prob > 0 and rng.random() < self.aug.neighbour_limb_prob:
            others = [o for o in self._others_px(record, M, perm) if self._in_crop(o).any()]
            kps_px, kps_conf, _ = K.swap_in_neighbour_limb(kps_px, kps_conf, others, rng)
        if self.aug.limb_drop_prob > 0:
            kps_conf, _ = K.drop_limbs(kps_conf, rng, self.aug.limb_drop_prob)
        return kps_px, kps_conf

    def _fit_targets(
        self, record: PersonRecord, M: np.ndarray, perm: np.ndarray, params: A.AugParams
    ) -> dict:
        J, S = self._sizes(record.body_model)
        out = {
            "joints_hm": np.zeros((NUM_JOINTS, 3)),
            "trunc": np.zeros(NUM_JOINTS),
            "pose_aa": np.zeros((J, 3)),
            "shape": np.zeros(S),
            "has_fit": False,
        }
        if not record.has_fit or record.pose_aa is None or record.shape is None:
            return out
        pose = np.asarray(record.pose_aa, dtype=np.float64).reshape(-1, 3)
        shape = np.asarray(record.shape, dtype=np.float64).reshape(-1)
        if pose.shape[0] != J or shape.shape[0] != S:
            raise InputError(
                f"{record.dataset} sample {record.sample_id}: {record.body_model} parameters must be "
                f"pose ({J}, 3) and shape ({S},), got {pose.shape} and {shape.shape}"
            )
        pose_perm = self._pose_permutation(record.body_model) if params.flip else None
        out["pose_aa"] = A.augment_pose(pose, params.rot_deg, params.flip, pose_perm)
        out["shape"] = shape
        out["has_fit"] = True
        body = self._body(record.body_model)
        if body is None:
            self._warn_once(
                f"nobody:{record.body_model}",
                "no %r body model given to the pipeline: fitted-body joint targets are left out "
                "(fit_joints_trunc = 0)",
                record.body_model,
            )
            return out
        trans = np.zeros(3) if record.trans is None else np.asarray(record.trans, dtype=np.float64)
        key = (record.dataset, record.sample_id, hash((pose.tobytes(), shape.tobytes(), trans.tobytes())))
        cached = self._body_cache.get(key)
        if cached is None:
            cached = self._run_body(body, pose, shape, record)
            if self.body_cache_size > 0:
                self._body_cache[key] = cached
                if len(self._body_cache) > self.body_cache_size:
                    self._body_cache.popitem(last=False)
        joints30, h36m = cached
        check = record.extra.get("fit_check")
        if check is not None and h36m is not None:
            gt, idx = check
            pred = h36m[np.asarray(idx)]
            gt = np.asarray(gt, dtype=np.float64)
            err = np.linalg.norm((pred - pred.mean(0)) - (gt - gt.mean(0)), axis=1).mean()
            if not err <= float(record.extra.get("fit_threshold", 0.025)):
                out["has_fit"] = False
                return out
        if record.focal is None or record.princpt is None or record.trans is None:
            return out
        z = joints30[:, 2:3]
        if np.any(z <= 1e-6):
            return out
        img_xy = joints30[:, :2] / z * np.asarray(record.focal) + np.asarray(record.princpt)
        px = apply_affine(img_xy, M)[perm]
        z_rel = (joints30[:, 2] - joints30[ROOT, 2])[perm]
        out["joints_hm"], out["trunc"] = self._hm_targets(px, z_rel, np.ones(NUM_JOINTS), True)
        return out

    @torch.no_grad()
    def _run_body(self, body, pose: np.ndarray, shape: np.ndarray, record: PersonRecord):
        """Absolute camera-frame JOTR30 joints (30, 3) of the fitted body, and its H36M-17 joints if
        available."""
        ref = next(iter(body.buffers()), None)
        device = ref.device if ref is not None else torch.device("cpu")
        dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
        from jotr.geometry.rotations import aa_to_rotmat

        rotmat = aa_to_rotmat(torch.as_tensor(pose, dtype=dtype, device=device))[None]
        result = body(rotmat, torch.as_tensor(shape, dtype=dtype, device=device)[None])
        offset = np.zeros(3)
        if record.trans is not None:
            offset = np.asarray(record.trans, dtype=np.float64).copy()
            R = record.extra.get("root_offset_rotation")
            if (
                R is not None
            ):  # the fitted root was rotated into the camera about the origin, not the root joint
                j0 = result.skeleton[0, 0].double().cpu().numpy()
                offset += (np.asarray(R, dtype=np.float64) - np.eye(3)) @ j0
        joints30 = body.joints(result, "jotr30")[0].double().cpu().numpy() + offset
        try:
            h36m = body.joints(result, "h36m17")[0].double().cpu().numpy() + offset
        except KeyError:
            h36m = None
            if record.extra.get("fit_check") is not None:
                self._warn_once(
                    "noh36m", "body model has no h36m17 regressor: the fit-error filter is skipped"
                )
        if not math.isfinite(float(joints30.sum())):
            raise InputError(f"{record.dataset} sample {record.sample_id}: body model gave non-finite joints")
        return joints30, h36m
