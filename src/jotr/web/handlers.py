"""Request handling of the web demo, free of any web framework (so it is unit-tested without a server).

One request: an uploaded image, and optionally a keypoint JSON (COCO results / COCO annotation / OpenPose), ->
:class:`~jotr.inference.predictor.JOTRPredictor` (the only inference path) -> a :class:`PageResult`: the
overlay and the side view (:class:`~jotr.viz.overlay.MeshVisualizer`), a ``scene.glb`` of all meshes for the
3D viewer, per-person ``.obj`` / ``.ply`` and ``params.json`` to download, and a Markdown message with what
was done and every per-person error. Without keypoints the built-in multi-person detector finds the people
(:mod:`jotr.inference.detector`); the message says how many it found, how many were reconstructed, and why any
were dropped.

:meth:`WebDemo.reconstruct` never raises: a bad upload (not an image, too many pixels, corrupt JSON, keypoints
for another image...) is answered by a message. Its limits (:class:`Limits`): the upload size (also enforced
by the server), the pixel count (refused before decoding), the longer image side (larger images are scaled
down with their keypoints; 2D outputs are mapped back to the original pixels, the 3D is unchanged), the number
of people, and a time limit per request. Work runs on ONE worker thread (the network and the OSMesa renderer
are used from a single thread, one request at a time); a request over its time limit gets a message at once
and its job stops at the next stage boundary.

Files go only into ``workdir`` (one sub-folder per request, pruned after ``Limits.keep_s``); the caller owns
``workdir`` and removes it (``jotr serve`` uses a temporary folder deleted at exit)."""

from __future__ import annotations

import logging
import math
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from jotr import limits as shared
from jotr.errors import CheckpointError, InputError
from jotr.inference.predictor import PersonInput, PersonResult

logger = logging.getLogger(__name__)

KEYPOINT_FORMATS = ("auto", "coco17", "openpose18", "body25", "jotr30")


@dataclass(frozen=True)
class Limits:
    """What one request may cost; defaults from the shared table :mod:`jotr.limits`."""

    max_upload_mb: float = shared.WEB_MAX_UPLOAD_MB  # per uploaded file (the server refuses larger uploads)
    max_pixels: int = shared.MAX_IMAGE_PIXELS  # images with more pixels are refused before decoding
    max_side: int = shared.WEB_MAX_SIDE  # longer sides are scaled down (with their keypoints) for inference
    max_people: int = shared.WEB_MAX_PEOPLE  # people beyond this many are not reconstructed (a note says so)
    timeout_s: float = shared.WEB_TIMEOUT_S  # a request still running after this gets a message
    keep_s: float = shared.WEB_KEEP_S  # request folders older than this are removed at the next request
    client_quota_mb: float = shared.WEB_CLIENT_QUOTA_MB  # uploads per client address per quota_window_s
    quota_window_s: float = shared.WEB_QUOTA_WINDOW_S

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            number = not isinstance(value, bool) and isinstance(value, (int, float))
            low = 0 <= value if number and f.name == "keep_s" else number and 0 < value  # keep_s 0: prune now
            if not (number and low and value < math.inf):
                raise InputError(f"web limit {f.name} must be a positive finite number, got {value!r}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


@dataclass
class PageResult:
    """What the page shows for one request. ``ok`` False: only ``message`` is meaningful."""

    message: str  # Markdown: the summary and every per-person error
    ok: bool = True
    overlay: np.ndarray | None = None  # (H, W, 3) uint8 RGB, meshes over the (possibly scaled) image
    side: np.ndarray | None = None  # (H, W, 3) uint8 RGB, the meshes seen from the side
    scene_glb: str | None = None  # path of a .glb with every mesh (the world frame of the result files)
    files: list[str] = field(
        default_factory=list
    )  # downloads: .obj / .ply per person, params.json, scene.glb
    results: list[PersonResult] = field(default_factory=list)

    @classmethod
    def error(cls, message: str) -> PageResult:
        return cls(message=f"**Error:** {message}", ok=False)


class RequestTimeout(InputError):
    """The request ran past ``Limits.timeout_s``."""


# ------------------------------------------------------------------------------------------------ uploads

_FILE_NAME = re.compile(rb'filename="[^"]+"', re.IGNORECASE)
_BOUNDARY = re.compile(rb'boundary="?([^";]+)"?', re.IGNORECASE)


def unnamed_file_parts(body: bytes, content_type: bytes) -> bool:
    """Whether a multipart/form-data ``body`` has a part without a (non-empty) file name: an upload route
    takes files only, and gradio answered such parts with HTTP 500."""
    m = _BOUNDARY.search(content_type)
    if m is None:
        return True  # not multipart: nothing the upload route can take
    for part in body.split(b"--" + m.group(1))[1:]:
        if part.startswith(b"--"):  # the closing delimiter
            break
        head = part.split(b"\r\n\r\n", 1)[0]
        if _FILE_NAME.search(head) is None:
            return True
    return False


class UploadGuard:
    """ASGI middleware in front of the page's upload route (POST ``.../upload``): a per-client quota
    (``Limits.client_quota_mb`` per ``Limits.quota_window_s`` by client address), a size cap per request
    (two files' worth: the page uploads one file at a time), and a 400 answer for file parts without a file
    name (gradio answered those with HTTP 500). Other requests pass through untouched."""

    def __init__(self, app: Any, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.limits = limits
        self.clock = clock
        self._used: dict[str, list[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def charge(self, client: str, size: int) -> bool:
        """Count ``size`` bytes against ``client``'s quota; False (nothing counted) when over it."""
        now = self.clock()
        quota = int(self.limits.client_quota_mb * 2**20)
        with self._lock:
            recent = [(t, n) for t, n in self._used.get(client, []) if now - t < self.limits.quota_window_s]
            if sum(n for _, n in recent) + size > quota:
                self._used[client] = recent
                return False
            recent.append((now, size))
            self._used[client] = recent
            for other in [c for c, v in self._used.items() if not v]:
                del self._used[other]
            return True

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        path = str(scope.get("path", "")).rstrip("/")
        if scope.get("type") != "http" or scope.get("method") != "POST" or not path.endswith("/upload"):
            await self.app(scope, receive, send)
            return
        client = str((scope.get("client") or ("unknown",))[0])
        headers = {k.lower(): v for k, v in scope.get("headers") or []}
        try:
            length = int(headers.get(b"content-length", b"").decode("latin-1"))
        except ValueError:
            await _reply(send, 411, "uploads need a Content-Length header")
            return
        if length < 0 or length > 2 * self.limits.max_upload_bytes + 2**20:
            await _reply(
                send, 413, f"upload too large; the limit is {self.limits.max_upload_mb:g} MB per file"
            )
            return
        if not self.charge(client, length):
            await _reply(
                send,
                429,
                f"upload quota reached: {self.limits.client_quota_mb:g} MB per "
                f"{self.limits.quota_window_s / 60:g} min per address; try again later",
            )
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > length:
                await _reply(send, 400, "upload longer than its Content-Length")
                return
            if not message.get("more_body", False):
                break
        if unnamed_file_parts(bytes(body), headers.get(b"content-type", b"")):
            await _reply(send, 400, "an uploaded file has no file name")
            return
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _reply(send: Callable, status: int, text: str) -> None:
    data = text.encode("utf-8")
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


# ------------------------------------------------------------------------------------------------ inputs


def uploaded_file(payload: Any, roots: Sequence[Path]) -> tuple[str | None, str | None]:
    """(path, original file name) of a raw gradio file payload (``{"path": ..., "orig_name": ...}``), or
    (None, None) when nothing was uploaded. The click handler takes raw payloads (``preprocess=False``) so
    that gradio does not open a bad image itself (it would fail with its own error before the handler can
    answer); the price is this check that the path lies in the upload folder (or among the examples)."""
    if payload is None or payload == "":
        return None, None
    if isinstance(payload, dict):
        path, name = payload.get("path"), payload.get("orig_name")
    else:
        path, name = getattr(payload, "path", payload), getattr(payload, "orig_name", None)
    if not isinstance(path, str) or not path:
        raise InputError("the upload could not be read; upload the file again")
    resolved = Path(path).resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise InputError("files can only come from an upload or from the examples")
    return str(resolved), (Path(name).name if isinstance(name, str) and name else resolved.name)


def _check_size(path: Path, limits: Limits, what: str) -> None:
    size = path.stat().st_size
    if size > limits.max_upload_bytes:
        raise InputError(
            f"the {what} is {size / 2**20:.1f} MB; the limit is {limits.max_upload_mb:g} MB per file"
        )
    if size == 0:
        raise InputError(f"the {what} is empty")


def read_image(path: str | Path, limits: Limits) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """An uploaded image -> ((H, W, 3) uint8 RGB, at most ``limits.max_side`` px on its longer side;
    (2, 3) affine original px -> returned image px; the original (W, H)). InputError for a missing, empty,
    huge or undecodable file."""
    import PIL.Image

    path = Path(path)
    if not path.is_file():
        raise InputError("no image was uploaded")
    _check_size(path, limits, "image")
    try:  # header only: the pixel count is checked before anything is decoded
        with PIL.Image.open(path) as im:
            width, height = im.size
    except (PIL.UnidentifiedImageError, OSError, ValueError, PIL.Image.DecompressionBombError) as exc:
        raise InputError(f"{path.name} is not an image that can be read ({type(exc).__name__})") from None
    if width * height > limits.max_pixels:
        raise InputError(
            f"{path.name} has {width}x{height} = {width * height / 1e6:.0f} Mpx; "
            f"the limit is {limits.max_pixels / 1e6:.0f} Mpx"
        )
    data = np.fromfile(str(path), dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None or bgr.ndim != 3 or min(bgr.shape[:2]) < 2:
        raise InputError(f"{path.name} could not be decoded (corrupt or unsupported image)")
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    H, W = image.shape[:2]
    scale = min(1.0, limits.max_side / max(H, W))
    if scale < 1.0:
        size = (max(2, round(W * scale)), max(2, round(H * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    sx, sy = image.shape[1] / W, image.shape[0] / H
    # pixel centres at integer coordinates: u' + 0.5 = s (u + 0.5)
    to_small = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])
    return image, to_small, (W, H)


def read_keypoints(
    path: str | Path, keypoint_format: str | None, image_name: str, limits: Limits
) -> list[PersonInput]:
    """An uploaded keypoint JSON -> the people of the image ``image_name`` (original image px).

    OpenPose JSON: all its people. COCO results list / COCO annotation file: the entries of the only image in
    it, or of the image whose file name, stem or trailing number matches ``image_name``."""
    from jotr.inference.keypoints import (
        match_image,
        parse_coco_keypoints,
        parse_json,
        parse_openpose,
        read_regular_file,
    )

    path = Path(path)
    fmt = None if keypoint_format in (None, "", "auto") else keypoint_format
    _check_size(path, limits, "keypoint file")
    data = parse_json(
        read_regular_file(path, limits.max_upload_bytes, "keypoint file"), f"the keypoint file {path.name}"
    )
    if isinstance(data, dict) and "people" in data:
        found = parse_openpose(data, path.name, fmt)
    else:
        by_image = parse_coco_keypoints(data, path.name, fmt)
        if not by_image:
            raise InputError(f"the keypoint file {path.name} has no keypoints")
        if len(by_image) == 1:
            found = next(iter(by_image.values()))
        else:
            found = match_image(by_image, Path(image_name))
            if found is None:
                keys = sorted(by_image)
                raise InputError(
                    f"the keypoint file {path.name} has entries for {len(keys)} images "
                    f"({', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}) but none for {image_name}"
                )
    if not found:
        raise InputError(f"the keypoint file {path.name} has no people for {image_name}")
    return [PersonInput(keypoints=p.keypoints, keypoint_format=p.fmt, box_xywh=p.box_xywh) for p in found]


def scale_people(people: Sequence[PersonInput], to_small: np.ndarray) -> list[PersonInput]:
    """Keypoints and boxes in original image px -> px of the scaled image (affine ``to_small``)."""
    if np.allclose(to_small, [[1, 0, 0], [0, 1, 0]]):
        return list(people)
    out = []
    for p in people:
        kps = None
        if p.keypoints is not None:
            kps = np.array(p.keypoints, dtype=np.float64, copy=True)
            if kps.ndim == 2 and kps.shape[1] in (2, 3):
                kps[:, :2] = kps[:, :2] @ to_small[:, :2].T + to_small[:, 2]
        box = None
        if p.box_xywh is not None:
            b = np.asarray(p.box_xywh, dtype=np.float64).reshape(-1)
            if b.shape == (4,):
                xy = b[:2] @ to_small[:, :2].T + to_small[:, 2]
                box = np.concatenate([xy, b[2:] * np.diag(to_small[:, :2])])
            else:
                box = b
        out.append(PersonInput(keypoints=kps, keypoint_format=p.keypoint_format, box_xywh=box))
    return out


def map_results_back(results: Sequence[PersonResult], to_small: np.ndarray) -> None:
    """In place: the 2D fields of ``results`` (scaled-image px) -> original image px. 3D fields are unchanged
    (the scaled image's intrinsics, mapped back, are the original image's)."""
    if np.allclose(to_small, [[1, 0, 0], [0, 1, 0]]):
        return
    from jotr.geometry.boxes import invert_affine

    back = invert_affine(to_small)  # (2, 3)
    lin, off = back[:, :2], back[:, 2]
    s = np.diag(lin)
    for r in results:
        if not r.ok:
            continue
        r.box_xywh = np.concatenate([r.box_xywh[:2] @ lin.T + off, r.box_xywh[2:] * s])
        r.crop_to_img = lin @ r.crop_to_img + np.concatenate([np.zeros((2, 2)), off[:, None]], axis=1)
        r.joints_img = (r.joints_img @ lin.T + off).astype(np.float32)
        kps = r.keypoints_jotr30.copy()
        valid = kps[:, 2] > 0
        kps[valid, :2] = kps[valid, :2] @ lin.T + off
        r.keypoints_jotr30 = kps
        r.focal = (float(r.focal[0] * s[0]), float(r.focal[1] * s[1]))
        r.princpt = tuple(float(v) for v in np.asarray(r.princpt) @ lin.T + off)


# ----------------------------------------------------------------------------------------------- outputs


def point_overlay(image: np.ndarray, results: Sequence[PersonResult]) -> np.ndarray:
    """Fallback when no 3D renderer is available: each mesh's projected vertices as dots."""
    from jotr.viz.overlay import person_color

    out = image.copy()
    H, W = out.shape[:2]
    for r in results:
        if not r.ok:
            continue
        v = np.asarray(r.vertices, np.float64)
        z = np.clip(v[:, 2], 1e-6, None)
        u = v[:, 0] / z * r.focal[0] + r.princpt[0]
        w = v[:, 1] / z * r.focal[1] + r.princpt[1]
        keep = (v[:, 2] > 0) & (u >= 0) & (u < W) & (w >= 0) & (w < H)
        colour = tuple(int(255 * c) for c in person_color(r.index))
        out[w[keep].astype(int), u[keep].astype(int)] = colour
    return out


def summary_markdown(
    results: Sequence[PersonResult],
    *,
    source: str,
    image_size: tuple[int, int],
    processed_size: tuple[int, int],
    seconds: float,
    notes: Sequence[str] = (),
) -> str:
    """The page's message: counts, where the people came from, timing, and one line per person."""
    ok = sum(r.ok for r in results)
    W, H = image_size
    lines = [
        f"**{ok} of {len(results)} people reconstructed** in {seconds:.2f} s "
        f"(people from {source}; image {W}x{H}"
        + (f", processed at {processed_size[0]}x{processed_size[1]}" if processed_size != image_size else "")
        + ")",
        "",
    ]
    from jotr.viz.overlay import person_hex

    for r in results:
        if r.ok:
            x, y, z = (float(v) for v in r.translation)
            swatch = f'<span style="color:{person_hex(r.index)}">&#9632;</span>'  # the person's mesh colour
            lines.append(
                f"- {swatch} person {r.index}: ok, pelvis at ({x:.2f}, {y:.2f}, {z:.2f}) m (camera frame)"
            )
        else:
            lines.append(f"- person {r.index}: **failed**: {r.error}")
    lines += [f"- note: {n}" for n in notes]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ service


class WebDemo:
    """The web demo's back end: one :class:`JOTRPredictor`, one worker thread, files under ``workdir``.

    ``detector_factory``: builds the keypoint detector used when no keypoint file is given (default: the
    built-in :class:`~jotr.inference.detector.PersonDetector`); it must have ``detect(image_rgb, name) ->
    DetectionReport``."""

    def __init__(
        self,
        predictor: Any,
        workdir: str | Path,
        limits: Limits | None = None,
        *,
        render: bool = True,
        detector_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.predictor = predictor
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.limits = limits or Limits()
        self.render = render
        self._detector_factory = detector_factory
        self._detector: Any = None
        self._visualizer: Any = None
        self._render_problem: str | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jotr-web")
        self._lock = threading.Lock()

    def warm_up(self) -> Future:
        """Start the renderer on the worker thread in the background (the first request then waits less)."""

        def job() -> None:
            try:
                self._render(np.zeros((64, 64, 3), np.uint8), [], np.zeros((0, 3), np.int64), [])
            except Exception:  # noqa: BLE001 -- the first request will report it
                logger.warning("renderer warm-up failed", exc_info=True)

        return self._executor.submit(job)

    def close(self) -> None:
        """Stop the worker (after its current job) and free the renderer and the detector."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._visualizer is not None:
            self._visualizer.close()
            self._visualizer = None
        if self._detector is not None and hasattr(self._detector, "close"):
            self._detector.close()
            self._detector = None

    def __enter__(self) -> WebDemo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------------------------------- request

    def reconstruct(
        self,
        image_path: str | Path | None,
        keypoints_path: str | Path | None = None,
        keypoint_format: str | None = "auto",
        *,
        image_name: str | None = None,
        focal: float | None = None,
    ) -> PageResult:
        """One request; never raises. ``image_name``: the uploaded file's name (to find its keypoints in a
        COCO file), default the file name of ``image_path``; ``focal``: the photo's focal length in original
        pixels (None: the predictor's default)."""
        if image_path is None or str(image_path) == "":
            return PageResult.error("upload an image first (or pick an example)")
        if focal in ("", 0):
            focal = None
        if focal is not None:
            try:
                focal = float(focal)
            except (TypeError, ValueError):
                return PageResult.error(f"the focal length must be a number of pixels, got {focal!r}")
            if not (math.isfinite(focal) and focal > 0):
                return PageResult.error(
                    f"the focal length must be a positive number of pixels, got {focal:g}"
                )
        if keypoint_format not in (None, *KEYPOINT_FORMATS):
            return PageResult.error(f"unknown keypoint format {keypoint_format!r}; one of {KEYPOINT_FORMATS}")
        self._prune()
        deadline = time.monotonic() + self.limits.timeout_s
        cancelled = threading.Event()
        try:
            request_dir = Path(tempfile.mkdtemp(prefix="request-", dir=self.workdir))
            future = self._executor.submit(
                self._job,
                Path(image_path),
                None if keypoints_path in (None, "") else Path(keypoints_path),
                keypoint_format,
                image_name or Path(image_path).name,
                request_dir,
                deadline,
                cancelled,
                focal,
            )
            return future.result(timeout=self.limits.timeout_s)
        except FutureTimeout:
            cancelled.set()
            return PageResult.error(
                f"the request took longer than {self.limits.timeout_s:g} s and was stopped; "
                "try a smaller image or fewer people"
            )
        except RuntimeError as exc:
            if "shutdown" in str(exc):  # the executor is closed: the server is stopping
                return PageResult.error("the server is shutting down")
            logger.exception("web demo request failed")
            return PageResult.error(f"internal error ({type(exc).__name__}: {exc}); see the server log")
        except InputError as exc:
            return PageResult.error(str(exc))
        except Exception as exc:  # noqa: BLE001 -- a request must never take the server down
            logger.exception("web demo request failed")
            return PageResult.error(f"internal error ({type(exc).__name__}: {exc}); see the server log")

    def _job(
        self,
        image_path: Path,
        keypoints_path: Path | None,
        keypoint_format: str | None,
        image_name: str,
        out: Path,
        deadline: float,
        cancelled: threading.Event,
        focal: float | None = None,
    ) -> PageResult:
        def check(stage: str) -> None:
            if cancelled.is_set() or time.monotonic() > deadline:
                raise RequestTimeout(f"stopped before {stage}: over the {self.limits.timeout_s:g} s limit")

        t0 = time.perf_counter()
        limits = self.limits
        check("reading the image")
        image, to_small, (W0, H0) = read_image(image_path, limits)
        notes: list[str] = []
        report = None
        if keypoints_path is not None:
            people = scale_people(
                read_keypoints(keypoints_path, keypoint_format, image_name, limits), to_small
            )
            source = f"the keypoint file {keypoints_path.name}"
        else:
            people, report = self._detect(image, image_name)
            source = f"the built-in detector: {report.summary()}"
        if len(people) > limits.max_people:
            notes.append(f"{len(people)} people given; only the first {limits.max_people} were reconstructed")
            people = people[: limits.max_people]
        check("inference")
        # the focal length of the original photo, in the pixels of the (possibly scaled) inference image
        small_focal = None if focal is None else (focal * to_small[0, 0], focal * to_small[1, 1])
        results = self.predictor.predict(image, people, name=image_name, focal=small_focal)
        check("rendering")
        ok = [r for r in results if r.ok]
        faces = self.predictor.faces
        overlay, side = self._render(image, ok, faces, notes)
        check("writing the downloads")
        map_results_back(results, to_small)
        extra = None
        if report is not None:
            extra = {"detection": {**report.to_json(), "people_reconstructed": len(ok)}}
        files = self._export(out, results, faces, image_name, (W0, H0), extra)
        scene = str(out / "scene.glb") if ok else None
        message = summary_markdown(
            results,
            source=source,
            image_size=(W0, H0),
            processed_size=(image.shape[1], image.shape[0]),
            seconds=time.perf_counter() - t0,
            notes=notes,
        )
        return PageResult(
            message=message,
            ok=True,
            overlay=overlay,
            side=side,
            scene_glb=scene,
            files=files,
            results=list(results),
        )

    # -------------------------------------------------------------------------------------------- stages

    def _detect(self, image: np.ndarray, name: str) -> tuple[list[PersonInput], Any]:
        """People from the built-in detector (or ``detector_factory``'s) -> (people, DetectionReport)."""
        from jotr.inference.predictor import people_from_report

        if self._detector is None:
            try:
                if self._detector_factory is not None:
                    self._detector = self._detector_factory()
                else:
                    from jotr.inference.detector import PersonDetector

                    self._detector = PersonDetector()
            except (InputError, CheckpointError) as exc:
                raise InputError(
                    "no keypoint file was uploaded and the built-in detector is not available: "
                    f"{exc}. Upload a keypoint JSON (COCO results or OpenPose) with the image."
                ) from None
        report = self._detector.detect(image, name)
        if not report.people:
            raise InputError(
                f"the built-in detector found nobody in the image ({report.summary()}); upload a keypoint "
                "JSON (COCO results or OpenPose) with the image"
            )
        return people_from_report(report), report

    def _render(
        self, image: np.ndarray, ok: list[PersonResult], faces: np.ndarray, notes: list[str]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if self.render and self._visualizer is None and self._render_problem is None:
            from jotr.viz.renderer import rendering_available

            available, why = rendering_available()
            if available:
                from jotr.viz.overlay import MeshVisualizer

                self._visualizer = MeshVisualizer()
            else:
                self._render_problem = why
        if self._visualizer is None:
            if self.render:
                notes.append(
                    f"3D rendering is not available ({self._render_problem}); the overlay shows points"
                )
            return point_overlay(image, ok), None
        from jotr.viz.overlay import person_color

        H, W = image.shape[:2]
        focal = ok[0].focal if ok else (1.0, 1.0)
        princpt = ok[0].princpt if ok else (W / 2.0, H / 2.0)
        ov = self._visualizer.render(
            image,
            [(r.vertices, faces) for r in ok],
            focal,
            princpt,
            boxes=[r.box_xywh for r in ok],
            colors=[person_color(r.index) for r in ok],
            labels=[str(r.index) for r in ok],
        )
        return ov.image, ov.side

    def _export(
        self,
        out: Path,
        results: Sequence[PersonResult],
        faces: np.ndarray,
        image_name: str,
        image_size: tuple[int, int],
        extra: dict | None = None,
    ) -> list[str]:
        from jotr.geometry.coords import apply_rigid
        from jotr.inference.export import (
            result_export_transform,
            results_to_json,
            write_json,
            write_mesh,
            write_scene_glb,
        )
        from jotr.inference.result_format import result_metadata

        files = []
        ok = [r for r in results if r.ok]
        export = result_export_transform(results, "world")  # one frame for every file of the request
        for r in ok:
            for ext in ("obj", "ply"):
                path = out / f"person_{r.index:02d}.{ext}"
                write_mesh(path, apply_rigid(export, r.vertices), faces)
                files.append(str(path))
        params = out / "params.json"
        meta = result_metadata(
            self.predictor,
            kind="image",
            source=image_name,
            image_size=image_size,
            focal=ok[0].focal if ok else None,
            princpt=ok[0].princpt if ok else None,
            export_frame="world",
            export_from_camera=export,
            body_model=self.predictor.cfg.body.kind,
        )
        meta.update(extra or {})
        write_json(params, results_to_json(results, meta))
        files.append(str(params))
        if ok:
            files.append(str(write_scene_glb(out / "scene.glb", ok, faces, export)))
        return files

    def _prune(self) -> None:
        """Remove request folders older than ``limits.keep_s`` (the page has long fetched their files)."""
        now = time.time()
        with self._lock:
            for d in self.workdir.glob("request-*"):
                try:
                    if now - d.stat().st_mtime > self.limits.keep_s:
                        shutil.rmtree(d, ignore_errors=True)
                except OSError:
                    continue


def examples_dir() -> Path:
    """The folder of the shipped example images and their keypoint files."""
    return Path(__file__).resolve().parent / "examples"


def list_examples() -> list[list[str | None]]:
    """[[image, keypoint JSON or None], ...] of the shipped examples, sorted by name."""
    folder = examples_dir()
    out: list[list[str | None]] = []
    for img in sorted(folder.glob("*")):
        if img.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            continue
        kp = img.with_suffix(".json")
        out.append([str(img), str(kp) if kp.is_file() else None])
    return out
