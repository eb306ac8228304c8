"""``JOTRPredictor``: an image and its people (boxes and/or 2D keypoints) -> meshes in the original camera.

Preprocessing follows the official test protocol (jotr-reference §4): the box comes from the valid input
keypoints (confidence > 0.05) enlarged x1.2 -- or from the given box when a person has fewer than two valid
keypoints --, then is made square (aspect 1:1) and enlarged x1.1; the crop is resampled to
``cfg.model.input_size`` pixels, RGB in [0, 1]; keypoints go image px -> crop px -> heatmap cells, valid =
confidence > 0.05 and inside the crop. All people of one image run through the network in ONE batch.

Camera conversion (crop camera -> original image camera). The network predicts the body in a *virtual crop
camera*: focal ``f_v`` crop pixels (``VirtualCamera``), principal point at the crop centre, translation ``t``.
The crop is an axis-aligned square of side ``s`` image pixels centred at ``(b_x, b_y)`` resampled to ``S``
pixels, so that camera is the same as an original-image camera with focal ``f_c = f_v * s / S`` and principal
point ``(b_x, b_y)``. Let ``P = r + t`` be the pelvis in the virtual camera (``r`` = pelvis of the posed body
model before root subtraction). With the original image's intrinsics ``(f_x, f_y, c_x, c_y)`` the pelvis is
placed at

    Z' = P_z * sqrt(f_x f_y) / f_c                      (same apparent size)
    X' = (f_c P_x / P_z + b_x - c_x) * Z' / f_x         (same pixel as in the crop)
    Y' = (f_c P_y / P_z + b_y - c_y) * Z' / f_y

and the root-relative mesh is translated by ``(X', Y', Z')``. The pelvis then projects exactly where the crop
camera put it, and every other point up to the (small) perspective difference of a body of depth extent << Z'.
When the intrinsics are unknown the default is ``f_x = f_y = sqrt(W^2 + H^2)`` (a ~53 deg diagonal field of
view, as CLIFF uses) and the image centre; pass ``focal=`` / ``princpt=`` to override."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from jotr.errors import InputError
from jotr.geometry.boxes import apply_affine, box_from_keypoints, crop_transform, invert_affine, square_box
from jotr.geometry.camera import VirtualCamera, project_points
from jotr.geometry.coords import px_to_hm
from jotr.geometry.rotations import rotmat_to_aa
from jotr.inference.keypoints import CONFIDENCE_THRESHOLD, as_float_array, to_jotr30
from jotr.limits import MAX_FOCAL, MAX_PEOPLE_PER_IMAGE, MIN_FOCAL, PREDICT_CHUNK
from jotr.structures import Inputs

if TYPE_CHECKING:
    from jotr.inference.detector import DetectionReport

logger = logging.getLogger(__name__)

KEYPOINT_BOX_EXTEND = 1.2  # tight box of the valid keypoints, enlarged (official test protocol)
CROP_BOX_SCALE = 1.1  # square box enlargement before cropping (official test protocol)
MIN_BOX_PX = 2.0  # smallest square crop box side (image px); below it nothing of a person is visible
MAX_BOX_IMAGE_RATIO = 10.0  # largest crop box side / max(W, H): beyond it the depth estimate is meaningless


@dataclass
class PersonInput:
    """One person to reconstruct: keypoints and/or a box, in original image pixels."""

    keypoints: np.ndarray | None = None  # (K, 3) x, y image px, confidence (K = 17, 18, 25 or 30)
    keypoint_format: str | None = (
        None  # "coco17" | "openpose18" | "body25" | "jotr30"; None = inferred from K
    )
    box_xywh: np.ndarray | None = None  # (4,) x, y, w, h image px (used when < 2 keypoints are valid)


@dataclass
class PersonResult:
    """The reconstruction of one person. Array fields are None when ``error`` is set."""

    index: int  # position of the person in the input list
    error: str | None = None  # why this person failed (input problem), else None
    box_xywh: np.ndarray | None = None  # (4,) square crop box, image px
    crop_to_img: np.ndarray | None = None  # (2, 3) affine: crop px -> image px
    pose_rotmat: np.ndarray | None = (
        None  # (J, 3, 3) local joint rotations, root first (root in camera frame)
    )
    pose_aa: np.ndarray | None = None  # (J, 3) the same as axis-angle
    shape: np.ndarray | None = None  # (S,) body shape (SMPL betas / Anny phenotypes)
    cam_t_crop: np.ndarray | None = None  # (3,) translation in the virtual crop camera, metres
    translation: np.ndarray | None = None  # (3,) pelvis position in the original camera frame, metres
    vertices: np.ndarray | None = None  # (V, 3) original camera frame, metres (x right, y down, z forward)
    joints: np.ndarray | None = None  # (30, 3) jotr30 joints, original camera frame, metres
    joints_img: np.ndarray | None = None  # (30, 2) projection of ``joints``, image px
    keypoints_jotr30: np.ndarray | None = (
        None  # (30, 3) the input keypoints in jotr30 order (x, y img px, conf)
    )
    focal: tuple[float, float] | None = None  # intrinsics used for the original image, px
    princpt: tuple[float, float] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Prepared:
    crop: np.ndarray  # (S, S, 3) float32 RGB [0, 1]
    keypoints_hm: np.ndarray  # (30, 2) heatmap cells
    valid: np.ndarray  # (30,) float32
    box: np.ndarray  # (4,) square box xywh image px
    img_to_crop: np.ndarray  # (2, 3)
    keypoints30: np.ndarray  # (30, 3) image px + conf
    extra: dict[str, Any] = field(default_factory=dict)


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; InputError naming the file if it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}" if not path.exists() else f"{path} is not a regular file")
    check_image_header(path)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except OSError as exc:
        raise InputError(f"cannot read image {path}: {exc.strerror or exc}") from None
    except (cv2.error, MemoryError) as exc:  # e.g. a header claiming more pixels than OpenCV's limit
        reason = " ".join(str(exc).split())[-200:] or type(exc).__name__
        raise InputError(f"cannot read image {path}: too large or corrupt ({reason})") from None
    if img is None:
        raise InputError(f"cannot read image {path}: not a valid image file (corrupt or unsupported format)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def check_image_header(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header (nothing decoded); InputError when the file or its pixel count
    is over :mod:`jotr.limits` (a 1 MB PNG can claim 30000 x 30000 pixels = 2.7 GB decoded)."""
    import PIL.Image

    from jotr.limits import MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS

    size = path.stat().st_size
    if size > MAX_IMAGE_FILE_BYTES:
        raise InputError(
            f"image {path} is {size / 2**20:.0f} MiB; the limit is {MAX_IMAGE_FILE_BYTES // 2**20} MiB"
        )
    limit = f"the limit is {MAX_IMAGE_PIXELS / 1e6:g} Mpx"
    try:
        with PIL.Image.open(path) as im:
            width, height = im.size
    except PIL.Image.DecompressionBombError:  # PIL's own, higher limit (2x its MAX_IMAGE_PIXELS): over ours
        pil = 2 * (PIL.Image.MAX_IMAGE_PIXELS or 0) / 1e6
        raise InputError(f"cannot read image {path}: more than {pil:.0f} Mpx; {limit}") from None
    except (PIL.UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return 0, 0  # a format PIL cannot read: OpenCV decides (it has its own pixel limit)
    if width * height > MAX_IMAGE_PIXELS:
        raise InputError(
            f"cannot read image {path}: {width}x{height} = {width * height / 1e6:.0f} Mpx; {limit}"
        )
    return width, height


def check_device(device: str | torch.device | None) -> torch.device | None:
    """``device`` as a torch.device, or InputError when it is malformed or not available here."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InputError(f"invalid device {device!r} (expected cpu, cuda or cuda:N): {exc}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r}: CUDA is not available in this PyTorch build / machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    elif dev.type not in ("cpu", "meta"):
        backend = getattr(torch.backends, dev.type, None)
        available = getattr(backend, "is_available", None)
        if not (callable(available) and available()):
            raise InputError(f"device {device!r} is not available here (use cpu or cuda)")
    return dev


def _intrinsics(
    focal: Any, princpt: Any, default_focal: tuple[float, float], default_pp: tuple[float, float], name: str
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Validated ``focal`` (positive, one or two numbers) and ``princpt`` (two finite numbers)."""

    def pair(value: Any, what: str) -> tuple[float, float]:
        arr = as_float_array(value, name, what).reshape(-1)
        if arr.size not in (1, 2):
            raise InputError(f"{name}: {what} must be one or two numbers, got {value!r}")
        return float(arr[0]), float(arr[-1])

    fx, fy = default_focal
    cx, cy = default_pp
    if focal is not None:
        fx, fy = pair(focal, "focal")
        if not all(MIN_FOCAL <= f <= MAX_FOCAL for f in (fx, fy)):
            raise InputError(f"{name}: focal must be in [{MIN_FOCAL:g}, {MAX_FOCAL:g}] pixels, got {focal!r}")
    if princpt is not None:
        pp = pair(princpt, "princpt")
        if np.asarray(princpt).size != 2 or not all(math.isfinite(v) for v in pp):
            raise InputError(f"{name}: princpt must be two finite numbers cx, cy, got {princpt!r}")
        cx, cy = pp
    return (fx, fy), (cx, cy)


def as_rgb_float(image: np.ndarray, name: str = "image") -> np.ndarray:
    """(H, W, 3) uint8 [0, 255] or float [0, 1] RGB (also gray / RGBA) -> (H, W, 3) float32 [0, 1]."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or img.shape[0] < 2 or img.shape[1] < 2:
        raise InputError(f"{name}: expected an (H, W, 3) RGB image, got shape {img.shape}")
    img = img[..., :3]
    if img.dtype.kind not in "uif":
        raise InputError(f"{name}: image pixels must be numbers, got dtype {img.dtype}")
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    img = img.astype(np.float32)
    if not np.isfinite(img).all():
        raise InputError(f"{name}: image contains NaN/inf")
    if img.min() < 0.0 or img.max() > 1.0:
        raise InputError(
            f"{name}: float images must be RGB in [0, 1] (got range {img.min():.3g}..{img.max():.3g})"
        )
    return img


def default_intrinsics(width: int, height: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Focal ``sqrt(W^2 + H^2)`` px (both axes) and the image centre."""
    f = math.hypot(width, height)
    return (f, f), (width / 2.0, height / 2.0)


def crop_camera_to_image(
    root_crop: torch.Tensor,
    box_xywh: torch.Tensor,
    crop_focal: float,
    crop_size: int,
    focal: torch.Tensor,
    princpt: torch.Tensor,
) -> torch.Tensor:
    """(B, 3) pelvis in the virtual crop camera -> (B, 3) pelvis in the original camera (module doc formula).

    ``box_xywh`` (B, 4) square crop boxes in image px; ``focal``/``princpt`` (B, 2) original intrinsics.
    """
    f_c = crop_focal * box_xywh[:, 2] / crop_size  # (B,) focal of the crop camera in image px
    centre = box_xywh[:, :2] + box_xywh[:, 2:4] / 2.0  # (B, 2)
    z = root_crop[:, 2].clamp(min=1e-6)
    z_img = z * torch.sqrt(focal[:, 0] * focal[:, 1]) / f_c
    u = f_c[:, None] * root_crop[:, :2] / z[:, None] + centre  # (B, 2) image px of the pelvis
    xy = (u - princpt) * z_img[:, None] / focal
    return torch.cat([xy, z_img[:, None]], dim=1)


class JOTRPredictor:
    """Batched JOTR inference on full images.

    >>> predictor = JOTRPredictor.from_pretrained()  # the shipped model; or .from_checkpoint("run/best.pt")
    >>> results = predictor.predict(image_rgb, [PersonInput(keypoints=coco17_kps)])
    >>> results = predictor.predict(image_rgb)  # people found by the built-in detector
    """

    def __init__(
        self,
        model: torch.nn.Module,
        cfg: Any,
        *,
        full_mesh: bool = True,
        device: str | torch.device | None = None,
        bf16: bool = False,
    ) -> None:
        from jotr.config import JOTRConfig

        if not isinstance(model, torch.nn.Module) or not isinstance(cfg, JOTRConfig):
            raise InputError(
                "JOTRPredictor(model, cfg) needs a torch module and a JOTRConfig, got "
                f"{type(model).__name__} and {type(cfg).__name__} (or use from_checkpoint / from_pretrained)"
            )
        self.cfg = cfg
        self.bf16 = bf16  # run the network under bfloat16 autocast (CPU or CUDA); heads and body stay fp32
        self.model = model.eval()
        device = check_device(device)
        if device is not None:
            self.model.to(device)
        mc = cfg.model
        self.input_size = int(mc.input_size)
        self.heatmap_size = int(mc.heatmap_size)
        self.crop_camera = VirtualCamera.for_crop(self.input_size, mc.focal_256, mc.camera_3d_size)
        self.full_mesh = full_mesh
        self._mesh_body: torch.nn.Module | None = None
        self._body: torch.nn.Module | None = None
        # {"checkpoint": file name, "checkpoint_sha256": hex} of the loaded weights (result files record it)
        self.checkpoint_info: dict[str, str] | None = None
        self._detector: Any = None  # the built-in PersonDetector, made on first use

    # ------------------------------------------------------------------------------------------ construction

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device | None = None,
        *,
        overrides: Sequence[str] = (),
        full_mesh: bool = True,
        bf16: bool = False,
    ) -> JOTRPredictor:
        """Load a jotr checkpoint (strict). ``device`` None = CUDA when available, else CPU."""
        from jotr.engine.checkpoint import load_model

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = check_device(device)  # before loading the checkpoint
        model, cfg = load_model(path, device=device, overrides=overrides)
        predictor = cls(model, cfg, full_mesh=full_mesh, bf16=bf16)
        predictor.checkpoint_info = _checkpoint_info(path)
        return predictor

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        device: str | torch.device | None = None,
        *,
        overrides: Sequence[str] = (),
        full_mesh: bool = True,
        bf16: bool = False,
    ) -> JOTRPredictor:
        """The model shipped with jotr (``jotr/weights/jotr_anny_small.safetensors``, Anny body; see
        docs/model_card.md), or another file in that format at ``path``. Strict load, float16 -> float32.
        ``device`` None = CUDA when available, else CPU. A missing file is a CheckpointError with a hint."""
        from jotr.weights.loading import load_shipped_model
        from jotr.weights.shipped_file import default_shipped_path

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = check_device(device)  # before loading the weights
        model, cfg = load_shipped_model(path, device=device, overrides=overrides)
        predictor = cls(model, cfg, full_mesh=full_mesh, bf16=bf16)
        predictor.checkpoint_info = _checkpoint_info(path if path is not None else default_shipped_path())
        return predictor

    @property
    def device(self) -> torch.device:
        for p in self.model.parameters():
            return p.device
        for b in self.model.buffers():
            return b.device
        return torch.device("cpu")

    @property
    def body(self) -> torch.nn.Module:
        """The network's body model (the one its parameters are trained for)."""
        body = getattr(self.model, "body", None)
        if body is not None:
            return body
        if self._body is None:
            from jotr.body import build_body_model

            self._body = build_body_model(self.cfg.body).to(self.device).eval()
        return self._body

    @property
    def mesh_body(self) -> torch.nn.Module:
        """The body model used for output meshes: the full rendering mesh (Anny) or the network's own."""
        if self._mesh_body is None:
            if self.full_mesh and self.cfg.body.kind == "anny" and getattr(self.body, "name", "") == "anny":
                from jotr.body import build_body_model

                logger.info("building the full-resolution Anny mesh for the outputs")
                self._mesh_body = build_body_model(self.cfg.body, full_mesh=True).to(self.device).eval()
            else:
                self._mesh_body = self.body
        return self._mesh_body

    @property
    def faces(self) -> np.ndarray:
        """(F, 3) int64 triangles of the output meshes."""
        return self.mesh_body.faces.detach().cpu().numpy().astype(np.int64)

    # -------------------------------------------------------------------------------------------- prediction

    def prepare(self, image: np.ndarray, person: PersonInput, name: str) -> _Prepared:
        """Crop and keypoint preprocessing of one person (official test protocol). Raises InputError."""
        H, W = image.shape[:2]
        kps30 = None
        if person.keypoints is not None:
            kps30 = to_jotr30(person.keypoints, person.keypoint_format, name=f"{name} keypoints")
        box = None
        if kps30 is not None:
            # absurd coordinates overflow to inf: caught below as a non-finite box
            with np.errstate(over="ignore", invalid="ignore"):
                box = box_from_keypoints(kps30[:, :2], kps30[:, 2], CONFIDENCE_THRESHOLD, KEYPOINT_BOX_EXTEND)
        given_box = None
        if person.box_xywh is not None:  # type-checked even when the keypoints give the box
            given_box = as_float_array(person.box_xywh, name, "box").reshape(-1)
            if given_box.shape != (4,) or not np.isfinite(given_box).all():
                raise InputError(f"{name}: box must be 4 finite numbers x, y, w, h, got {person.box_xywh!r}")
        if box is None and given_box is not None:
            box = given_box
            if box[2] <= 0 or box[3] <= 0:
                raise InputError(f"{name}: box has zero or negative size (w={box[2]:g}, h={box[3]:g})")
        if box is None:
            raise InputError(
                f"{name}: needs a box or at least two keypoints with confidence > {CONFIDENCE_THRESHOLD}"
            )
        with np.errstate(over="ignore", invalid="ignore"):
            sq = square_box(box, scale=CROP_BOX_SCALE, aspect=1.0)
        if sq[2] <= 0 or not np.isfinite(sq).all():
            raise InputError(f"{name}: the person's box is empty")
        if sq[2] < MIN_BOX_PX or sq[2] > MAX_BOX_IMAGE_RATIO * max(W, H):
            raise InputError(
                f"{name}: the person's box ({sq[2]:.4g} px square) must be {MIN_BOX_PX:g} px to "
                f"{MAX_BOX_IMAGE_RATIO:g}x the {W}x{H} image (box {_fmt_box(box)})"
            )
        x0, y0, x1, y1 = sq[0], sq[1], sq[0] + sq[2], sq[1] + sq[3]
        if x1 <= 0 or y1 <= 0 or x0 >= W or y0 >= H:
            raise InputError(
                f"{name}: the person is entirely outside the {W}x{H} image (box {_fmt_box(box)})"
            )
        S = self.input_size
        M = crop_transform((x0 + sq[2] / 2, y0 + sq[3] / 2), sq[2], S)
        crop = cv2.warpAffine(
            image, M, (S, S), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        if kps30 is None:
            kps30 = np.zeros((30, 3))
        kps_px = apply_affine(kps30[:, :2], M)
        inside = (kps_px >= 0).all(axis=1) & (kps_px < S).all(axis=1)
        valid = (kps30[:, 2] > CONFIDENCE_THRESHOLD) & inside
        kps_hm = px_to_hm(torch.from_numpy(kps_px), S, self.heatmap_size).numpy()
        kps_hm[~valid] = 0.0
        return _Prepared(
            crop.astype(np.float32), kps_hm.astype(np.float32), valid.astype(np.float32), sq, M, kps30
        )

    def detect(self, image: np.ndarray | str | Path, name: str | None = None) -> Any:
        """The built-in multi-person detector (:class:`jotr.inference.detector.PersonDetector`) on one image
        -> its :class:`~jotr.inference.detector.DetectionReport` (people with COCO-17 keypoints)."""
        from jotr.inference.detector import PersonDetector

        if isinstance(image, (str, Path)):
            name = name or str(image)
            image = load_image(image)
        if self._detector is None:
            self._detector = PersonDetector()
        return self._detector.detect(image, name or "image")

    @torch.inference_mode()
    def predict(
        self,
        image: np.ndarray | str | Path,
        people: Sequence[PersonInput | Mapping | np.ndarray] | None = None,
        *,
        focal: float | tuple[float, float] | None = None,
        princpt: tuple[float, float] | None = None,
        name: str | None = None,
    ) -> list[PersonResult]:
        """Reconstruct every person of one image in one batch.

        ``image``: path, or (H, W, 3) RGB uint8 / float [0, 1]. ``people``: :class:`PersonInput`, dicts with
        the same keys, or bare (K, 3) keypoint arrays; None = the people the built-in detector finds
        (:meth:`detect`; nobody found -> an empty list). Per-person input problems give a result with
        ``error`` set; the others are still reconstructed. A bad image raises :class:`InputError`."""
        if isinstance(image, (str, Path)):
            name = name or str(image)
            image = load_image(image)
        name = name or "image"
        img = as_rgb_float(image, name)
        if people is None:
            people = people_from_report(self.detect(image, name))
        H, W = img.shape[:2]
        (fx, fy), (cx, cy) = _intrinsics(focal, princpt, *default_intrinsics(W, H), name)
        if isinstance(people, (str, bytes, Mapping, PersonInput)) or not hasattr(people, "__iter__"):
            raise InputError(f"{name}: people must be a list of persons, got {type(people).__name__}")
        people = list(people)
        if len(people) > MAX_PEOPLE_PER_IMAGE:
            raise InputError(
                f"{name}: {len(people)} people given; the limit is {MAX_PEOPLE_PER_IMAGE} per image"
            )

        results: list[PersonResult] = []
        prepared: list[tuple[int, _Prepared]] = []
        for i, person in enumerate(people):
            pname = f"{name}: person {i}"
            try:
                prepared.append((i, self.prepare(img, _as_person(person, pname), pname)))
            except InputError as exc:
                logger.warning("%s", exc)
                results.append(PersonResult(index=i, error=str(exc)))
        for start in range(0, len(prepared), PREDICT_CHUNK):  # bounded batch: bounded memory
            chunk = prepared[start : start + PREDICT_CHUNK]
            try:
                done = [_refuse_non_finite(r, name) for r in self._run(chunk, (fx, fy), (cx, cy))]
            except InputError as exc:  # e.g. the body model refusing NaN parameters of broken weights
                logger.warning("%s", exc)
                done = [PersonResult(index=i, error=f"{name}: person {i}: {exc}") for i, _ in chunk]
            results.extend(done)
        return sorted(results, key=lambda r: r.index)

    def _run(
        self, prepared: list[tuple[int, _Prepared]], focal: tuple[float, float], princpt: tuple[float, float]
    ) -> list[PersonResult]:
        dev = self.device
        crops = torch.from_numpy(np.stack([p.crop for _, p in prepared])).permute(0, 3, 1, 2)  # (B, 3, S, S)
        inputs = Inputs(
            image=crops.contiguous().to(dev),
            keypoints_hm=torch.from_numpy(np.stack([p.keypoints_hm for _, p in prepared])).to(dev),
            keypoints_valid=torch.from_numpy(np.stack([p.valid for _, p in prepared])).to(dev),
        )
        # Parameters only (JOTRNetwork.predict); the body model runs once below, not inside forward.
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=self.bf16):
            pred = self.model.predict(inputs) if hasattr(self.model, "predict") else self.model(inputs)
        pose, shape, cam_t = pred.pose_rotmat.float(), pred.shape.float(), pred.cam_t.float()
        B = pose.shape[0]
        # Pelvis of the network's body before root subtraction: the crop camera places it at r + cam_t.
        body_out = self.body(pose, shape)
        joints_model = self.body.joints(body_out, "jotr30")  # (B, 30, 3) body frame
        root_crop = joints_model[:, 0] + cam_t
        boxes = torch.tensor(np.stack([p.box for _, p in prepared]), dtype=torch.float32, device=dev)
        f = torch.tensor(focal, dtype=torch.float32, device=dev).expand(B, 2)
        c = torch.tensor(princpt, dtype=torch.float32, device=dev).expand(B, 2)
        root_img = crop_camera_to_image(root_crop, boxes, self.crop_camera.focal, self.input_size, f, c)
        if self.mesh_body is self.body:
            offset = root_img - joints_model[:, 0]
            vertices, joints = body_out.vertices + offset[:, None], joints_model + offset[:, None]
        else:
            vertices, joints = self.body_in_camera(pose, shape, root_img)
        joints_img = project_points(joints, f, c)
        pose_aa = rotmat_to_aa(pose)
        results = []
        for b, (i, p) in enumerate(prepared):
            results.append(
                PersonResult(
                    index=i,
                    box_xywh=p.box,
                    crop_to_img=invert_affine(p.img_to_crop),
                    pose_rotmat=_np(pose[b]),
                    pose_aa=_np(pose_aa[b]),
                    shape=_np(shape[b]),
                    cam_t_crop=_np(cam_t[b]),
                    translation=_np(root_img[b]),
                    vertices=_np(vertices[b]),
                    joints=_np(joints[b]),
                    joints_img=_np(joints_img[b]),
                    keypoints_jotr30=p.keypoints30.astype(np.float32),
                    focal=focal,
                    princpt=princpt,
                )
            )
        return results

    @torch.inference_mode()
    def body_in_camera(
        self, pose_rotmat: torch.Tensor, shape: torch.Tensor, root_cam: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, J, 3, 3), (B, S), (B, 3) pelvis position -> output-mesh vertices (B, V, 3) and jotr30 joints
        (B, 30, 3), camera frame metres (used again after temporal smoothing)."""
        body = self.mesh_body
        dev = self.device
        pose_rotmat, shape, root_cam = (
            pose_rotmat.to(dev).float(),
            shape.to(dev).float(),
            root_cam.to(dev).float(),
        )
        out = body(pose_rotmat, shape)
        joints = body.joints(out, "jotr30")
        root = joints[:, :1]
        return out.vertices - root + root_cam[:, None], joints - root + root_cam[:, None]


def _checkpoint_info(path: str | Path) -> dict[str, str]:
    from jotr.weights import file_sha256

    return {"checkpoint": Path(path).name, "checkpoint_sha256": file_sha256(path)}


def _refuse_non_finite(r: PersonResult, name: str) -> PersonResult:
    """``r``, or an error result when any output is NaN/inf (broken weights, extreme inputs): never ok."""
    arrays = ("pose_rotmat", "shape", "cam_t_crop", "translation", "vertices", "joints", "joints_img")
    bad = [k for k in arrays if getattr(r, k) is not None and not np.isfinite(getattr(r, k)).all()]
    if not bad:
        return r
    msg = f"{name}: person {r.index}: the network produced NaN/inf ({', '.join(bad)}); broken checkpoint?"
    logger.warning("%s", msg)
    return PersonResult(index=r.index, error=msg)


def _fmt_box(box: np.ndarray) -> str:
    return "[" + ", ".join(f"{float(v):.5g}" for v in box) + "]"


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _as_person(person: PersonInput | Mapping | np.ndarray, name: str) -> PersonInput:
    if isinstance(person, PersonInput):
        return person
    if isinstance(person, Mapping):
        unknown = set(person) - {"keypoints", "keypoint_format", "box_xywh"}
        if unknown:
            raise InputError(f"{name}: unknown person fields {sorted(unknown)}")
        return PersonInput(**person)
    if isinstance(person, (np.ndarray, list, tuple)):
        return PersonInput(keypoints=as_float_array(person, name, "keypoints"))
    raise InputError(
        f"{name}: expected PersonInput, a dict or a (K, 3) keypoint array, got {type(person).__name__}"
    )


def people_from_report(report: DetectionReport) -> list[PersonInput]:
    """The people of a report as :class:`PersonInput` (COCO-17 keypoints + box)."""
    return [
        PersonInput(keypoints=p.keypoints, keypoint_format=p.keypoint_format, box_xywh=p.box_xywh)
        for p in report.people
    ]
