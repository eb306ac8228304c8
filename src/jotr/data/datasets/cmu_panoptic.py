"""CMU-Panoptic evaluation sequences in the form used by ROMP (the official JOTR loader was never released).

Layout under ``spec.root`` (see docs/datasets.md): ``panoptic_annot/*.pkl`` -- each a pickled list of frames
``{filename, width, height, kpts2d (P, >=19, 3), kpts3d (P, >=19, 4)}`` with joints in the SPIN/ROMP "J24"
order (x, y, confidence; X, Y, Z metres camera frame, confidence); the 2D joints are stored at the 832-pixel
width of ROMP's resized frames (scaled by ``options.kp2d_scale``, default 1920/832); images
``images/<sequence>-<frame file>.jpg``. The 2D-pose input is HigherHRNet, from ``options.keypoint_file``
(JSON ``{image name: [[17x3 COCO keypoints], ...]}``), matched to each GT person by the mean distance of the
common joints; without a file the GT 2D joints are used (with a warning). Pickles are read with a restricted
unpickler that only builds numpy arrays and plain containers.
"""

from __future__ import annotations

import io
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from jotr.body.joint_sets import JOTR30
from jotr.data.datasets import common as C
from jotr.data.records import DatasetReader, PersonRecord
from jotr.errors import InputError

logger = logging.getLogger(__name__)

SEQUENCES = ("160422_haggling1", "160422_mafia2", "160422_ultimatum1", "160906_pizza1")
OPTIONS = (
    "annotation_dir",
    "image_dir",
    "sequences",
    "kp2d_scale",
    "keypoint_file",
    "require_keypoints",
    "match_threshold",
)
NUM_STORED = len(C.ROMP_J24_TO_JOTR30)  # 19
LSP_2D = 13  # ROMP trusts the first 13 J24 joints in 2D (LSP-14 without the head top)
_HEAD_TOP = JOTR30.index("Head_top")

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def safe_load_pickle(path: Path) -> Any:
    C.require_file(path, "CMU-Panoptic annotation file")
    try:
        return _SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except Exception as exc:  # noqa: BLE001 -- any unpickling failure is a bad input file
        raise InputError(f"CMU-Panoptic annotation file {path} could not be read: {exc}") from exc


class CMUPanopticReader(DatasetReader):
    name = "cmu_panoptic"
    is_3d = True

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        C.check_options(spec, OPTIONS, self.name)
        root = C.dataset_root(spec, self.name)
        ann_dir = Path(C.option(spec, "annotation_dir", root / "panoptic_annot"))
        image_dir = Path(C.option(spec, "image_dir", root / "images"))
        sequences = set(C.option(spec, "sequences", SEQUENCES))
        scale = float(C.option(spec, "kp2d_scale", 1920.0 / 832.0))
        self.match_threshold = float(C.option(spec, "match_threshold", 0.5))
        require = bool(C.option(spec, "require_keypoints", True))
        kp_file = C.option(spec, "keypoint_file", None)
        detections = C.load_json(Path(kp_file), "CMU-Panoptic keypoint file") if kp_file else None
        if not ann_dir.is_dir():
            raise InputError(f"cmu_panoptic: annotation folder not found: {ann_dir}")
        files = sorted(ann_dir.glob("*.pkl"))
        if not files:
            raise InputError(f"cmu_panoptic: no .pkl annotation files in {ann_dir}")
        for path in files:
            frames = safe_load_pickle(path)
            if not isinstance(frames, (list, tuple)):
                raise InputError(f"{path} must hold a list of frames")
            for frame in frames:
                self._frame(frame, image_dir, sequences, scale, detections, require)
        logger.info(self.summary())

    def _frame(self, frame, image_dir, sequences, scale, detections, require) -> None:
        if not isinstance(frame, dict) or "filename" not in frame:
            self.skip("bad frame entry")
            return
        parts = str(frame["filename"]).replace("\\", "/").split("/")
        seq = next((p for p in parts if p in sequences), None)
        if seq is None:
            return
        name = f"{seq}-{Path(parts[-1]).stem}.jpg"
        k2 = np.asarray(frame.get("kpts2d", []), dtype=np.float64)
        k3 = np.asarray(frame.get("kpts3d", []), dtype=np.float64)
        width, height = int(frame.get("width", 1920)), int(frame.get("height", 1080))
        if (
            k2.ndim != 3
            or k3.ndim != 3
            or len(k2) != len(k3)
            or k2.shape[1] < NUM_STORED
            or k3.shape[1] < NUM_STORED
            or k2.shape[2] < 3
            or k3.shape[2] < 4
        ):
            self.skip("bad keypoint arrays")
            return
        dets = None
        if detections is not None:
            dets = [
                C.keypoints_to_jotr30(d, C.COCO17_TO_JOTR30, add_pelvis=True, add_neck=True)
                for d in detections.get(name, [])
                if C.as_array(d, (17, 3)) is not None
            ]
        for pid in range(len(k2)):
            j2 = k2[pid, :NUM_STORED].copy()
            j2[:, :2] *= scale
            ok2 = (
                (j2[:, 2] >= 0.1) & (j2[:, 0] > 0) & (j2[:, 0] < width) & (j2[:, 1] > 0) & (j2[:, 1] < height)
            )
            ok2[LSP_2D:] = False
            if ok2.sum() < 2:
                self.skip("person not visible")
                continue
            j3 = k3[pid, :NUM_STORED]
            ok3 = (j3[:, 3] >= 0.1) & np.isfinite(j3[:, :3]).all(1)
            if not ok3[14] or j3[14, 2] <= 0:
                self.skip("no 3D pelvis")
                continue
            img30 = C.to_jotr30(np.concatenate([j2[:, :2], ok2[:, None]], 1), C.ROMP_J24_TO_JOTR30)
            img30[_HEAD_TOP, 2] = 0.0
            cam30 = C.to_jotr30(np.concatenate([j3[:, :3], ok3[:, None]], 1), C.ROMP_J24_TO_JOTR30)
            kps = None
            if dets is not None:
                kps = self._match(img30, dets)
                if kps is None and require:
                    self.skip("no matching 2D-pose detection")
                    continue
            self.records.append(
                PersonRecord(
                    dataset=self.name,
                    sample_id=f"{Path(name).stem}_{pid}",
                    image_path=str(image_dir / name),
                    image_size=(width, height),
                    joints_img=img30[:, :2],
                    joints_img_valid=img30[:, 2],
                    joints_cam=cam30[:, :3],
                    joints_cam_valid=cam30[:, 3],
                    input_keypoints=None if kps is None else kps.astype(np.float32),
                    body_model="smpl",
                    is_3d=True,
                    extra={"sequence": seq},
                )
            )

    def _match(self, gt30: np.ndarray, dets: list[np.ndarray]) -> np.ndarray | None:
        """The detection closest to the GT joints (mean distance over common joints, relative to the GT
        box)."""
        valid = gt30[:, 2] > 0
        pts = gt30[valid, :2]
        size = max(float(np.ptp(pts[:, 0])), float(np.ptp(pts[:, 1])), 1.0)
        best, best_d = None, np.inf
        for det in dets:
            common = valid & (det[:, 2] > 0.05)
            if common.sum() < 2:
                continue
            d = float(np.linalg.norm(det[common, :2] - gt30[common, :2], axis=1).mean()) / size
            if d < best_d:
                best, best_d = det, d
        return best if best_d <= self.match_threshold else None
