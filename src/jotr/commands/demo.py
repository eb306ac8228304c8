"""``jotr demo IMAGE_OR_DIR_OR_VIDEO --out DIR [--checkpoint CKPT] [--keypoints FILE]``.

Without ``--checkpoint`` the model shipped with jotr is used (``JOTRPredictor.from_pretrained()``).

Per image ``<out>/<image stem>/``: overlay.png, side.png, person_XX.obj/.ply, scene.glb, rigged.glb (Anny),
params.json, params.npz (written atomically per image). Per video ``<out>/<video stem>/``: overlay.mp4,
side.mp4, params.json, params.npz (per-frame rows; people tracked across frames, ``jotr.inference.tracking``),
rigged.glb (the tracks as one animation) and track_XX.bvh (Anny), with optional temporal smoothing per track
(``--smooth``). Mesh files use ``--frame`` (world: Y up, metres, feet on y = 0; camera: OpenCV), one transform
per result (docs/results_format.md). Keypoints come from ``--keypoints`` (COCO results JSON, COCO
annotation JSON, one OpenPose JSON, or a folder of OpenPose JSONs) or from the built-in multi-person detector
(:mod:`jotr.inference.detector`); with the detector, a table at the end says per image how many people were
detected and reconstructed and why any were dropped, and params.json has the same under ``detection``. The
exit status is non-zero when any image (or person) failed; the others are still processed."""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="an image, a folder of images, or a video file")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="jotr checkpoint (.pt); default: the model shipped with jotr (docs/model_card.md)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace existing result folders OUT/<name>/ (only ones jotr created)",
    )
    p.add_argument(
        "--keypoints", help="COCO results/annotation JSON, an OpenPose JSON, or a folder of OpenPose JSONs"
    )
    p.add_argument(
        "--keypoint-format",
        default=None,
        choices=["coco17", "openpose18", "body25", "jotr30"],
        help="format of the keypoints (default: inferred from the joint count)",
    )
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available)")
    p.add_argument(
        "--focal",
        type=float,
        default=None,
        help="focal length of the input images in px (default sqrt(W^2 + H^2))",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides for loading the checkpoint (e.g. body.smpl_model_path=...)",
    )
    p.add_argument(
        "--bf16",
        action="store_true",
        help="run the network under bfloat16 autocast (faster on CPUs with BF16)",
    )
    p.add_argument("--no-render", action="store_true", help="skip overlay/side renders")
    p.add_argument(
        "--no-meshes", action="store_true", help="skip the mesh files (.obj/.ply/.glb, rigged.glb, .bvh)"
    )
    p.add_argument(
        "--frame",
        default="world",
        choices=["world", "camera"],
        help="frame of every mesh file of a result: world (Y up, metres, feet on y=0, the camera looking "
        "along -z; default) or camera (OpenCV: x right, y down, z forward)",
    )
    p.add_argument(
        "--smooth",
        default="one-euro",
        choices=["none", "one-euro", "ema"],
        help="temporal smoothing of the parameters for videos (default one-euro)",
    )
    p.add_argument("--max-frames", type=int, default=None, help="videos: stop after this many frames")
    p.add_argument(
        "--video-meshes",
        action="store_true",
        help="videos: also store every person-frame's vertices in params.npz (V x 3 float32 each)",
    )


def default_args(**overrides: object) -> argparse.Namespace:
    """The options of ``jotr demo`` with their defaults, ``overrides`` applied (for calling
    :func:`process_image` / :func:`process_video` from Python)."""
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["INPUT", "--out", "OUT"])
    vars(args).update(overrides)
    return args


def _list_inputs(path: Path) -> list[Path]:
    from jotr.errors import InputError

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        if not files:
            raise InputError(f"no images or videos in {path}")
        return files
    if not path.exists():
        raise InputError(f"input not found: {path}")
    return [path]


def _validate_args(args: argparse.Namespace) -> bool:
    """InputError for a bad --focal / --max-frames / --device / --out (exit 2, before any work); removes
    staging folders a killed run left in --out. Returns whether --out does not exist yet."""
    import math

    from jotr.errors import InputError
    from jotr.inference.predictor import check_device
    from jotr.limits import MAX_FOCAL, MIN_FOCAL
    from jotr.utils.io import check_writable_dir, clean_stale_temporaries

    if args.focal is not None and not (math.isfinite(args.focal) and MIN_FOCAL <= args.focal <= MAX_FOCAL):
        raise InputError(f"--focal must be in [{MIN_FOCAL:g}, {MAX_FOCAL:g}] pixels, got {args.focal}")
    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be >= 1, got {args.max_frames}")
    check_device(args.device)
    out = check_writable_dir(args.out, "output folder")
    clean_stale_temporaries(out)
    return not out.exists()


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from jotr.errors import InputError
    from jotr.inference.predictor import JOTRPredictor
    from jotr.utils.io import check_new_output

    out_created = _validate_args(args)  # bad options, output folder: exit 2 before any work
    inputs = _list_inputs(Path(args.input))
    out = Path(args.out)
    names = output_names(inputs)
    for path in inputs:  # the output policy: never replace a result without --force
        check_new_output(out / names[path], f"result folder of {path.name}:", force=args.force)
    people_source = make_people_source(args.keypoints, args.keypoint_format)
    if people_source.one_file_for_one_image and (
        len(inputs) > 1 or inputs[0].suffix.lower() in VIDEO_SUFFIXES
    ):
        people_source.close()
        raise InputError(
            f"--keypoints {args.keypoints} is one OpenPose JSON (the people of one image) but the input is "
            f"{'a video' if len(inputs) == 1 else f'{len(inputs)} files'}; give a folder of OpenPose JSONs "
            "(<stem>_keypoints.json per image or frame) or a COCO keypoint file"
        )
    if args.checkpoint is None:
        predictor = JOTRPredictor.from_pretrained(
            device=args.device, overrides=args.overrides, bf16=args.bf16
        )
    else:
        predictor = JOTRPredictor.from_checkpoint(
            args.checkpoint, device=args.device, overrides=args.overrides, bf16=args.bf16
        )
    visualizer = None
    if not args.no_render:
        from jotr.errors import InputError
        from jotr.viz.overlay import MeshVisualizer
        from jotr.viz.renderer import rendering_available

        ok, why = rendering_available()
        if not ok:
            raise InputError(
                f"cannot render overlays ({why}); install the [render] extra or pass --no-render"
            )
        visualizer = MeshVisualizer()
    failures: list[str] = []
    failed_inputs = 0
    try:
        with logging_redirect_tqdm():  # log lines above the progress bars, not through them
            for path in tqdm(inputs, desc="demo", unit="file", disable=len(inputs) < 2 or None):
                folder = out / names[path]
                if path.suffix.lower() in VIDEO_SUFFIXES:
                    errors = process_video(path, predictor, people_source, folder, visualizer, args)
                else:
                    errors = process_image(path, predictor, people_source, folder, visualizer, args)
                failures += errors
                failed_inputs += bool(errors)
    finally:
        if visualizer is not None:
            visualizer.close()
        people_source.close()
        if out_created:
            from jotr.utils.io import remove_if_empty

            remove_if_empty([out])  # every input failed: no empty output folder
    people_source.print_table()
    print(f"jotr demo: {len(inputs) - failed_inputs}/{len(inputs)} inputs fully processed; outputs in {out}")
    for f in failures:
        print(f"  failed: {f}", file=sys.stderr)
    return 1 if failures else 0


def output_names(inputs: list[Path]) -> dict[Path, str]:
    """Output folder name per input, distinct for every input (:func:`jotr.utils.io.unique_result_names`)."""
    from jotr.utils.io import unique_result_names

    return unique_result_names(inputs)


class PeopleSource:
    """Where the people of an image come from: a keypoint file/folder, or the built-in detector."""

    def __init__(self, keypoints: str | None, fmt: str | None) -> None:
        from jotr.inference.keypoints import KeypointSource

        self.source = KeypointSource(keypoints, fmt) if keypoints else None
        self.detector = None
        self.rows: list[tuple[str, int, int, str]] = []  # image, detected, reconstructed, notes
        if self.source is None:
            from jotr.inference.detector import PersonDetector

            self.detector = PersonDetector()

    @property
    def one_file_for_one_image(self) -> bool:
        """True when the keypoints are one OpenPose JSON: the people of a single image."""
        return self.source is not None and self.source.single_image

    def close(self) -> None:
        if self.detector is not None:
            self.detector.close()

    def people(self, image_rgb: np.ndarray, lookup: Path, name: str):
        return self.people_with_report(image_rgb, lookup, name)[0]

    def people_with_report(self, image_rgb: np.ndarray, lookup: Path, name: str):
        """-> (list of PersonInput, the detector's DetectionReport or None for a keypoint file)."""
        from jotr.errors import InputError
        from jotr.inference.predictor import PersonInput, people_from_report

        if self.source is not None:
            found = self.source.for_image(lookup)
            if found is None:
                raise InputError(f"{name}: no keypoints for it in {self.source.path}")
            if not found:
                raise InputError(f"{name}: its keypoint entry in {self.source.path} lists no people")
            people = [
                PersonInput(keypoints=p.keypoints, keypoint_format=p.fmt, box_xywh=p.box_xywh) for p in found
            ]
            return people, None
        report = self.detector.detect(image_rgb, name)
        if not report.people:
            self.rows.append((name, 0, 0, report.summary()))
            raise InputError(
                f"{name}: the built-in detector found nobody ({report.summary()}); pass keypoints with "
                "--keypoints (e.g. a fixed copy of `jotr detect` output)"
            )
        return people_from_report(report), report

    def record(self, name: str, report, results) -> None:
        """One row of the end-of-run table (detector runs only)."""
        if report is None:
            return
        ok = sum(r.ok for r in results)
        notes = [f"person {r.index}: {r.error}" for r in results if not r.ok] + list(report.skipped)
        self.rows.append((name, report.found, ok, "; ".join(notes)))

    def print_table(self) -> None:
        if not self.rows:
            return
        print("people per image (built-in detector): detected -> reconstructed; dropped and why")
        for name, found, ok, notes in self.rows:
            print(f"  {name}: {found} detected -> {ok} reconstructed" + (f"; {notes}" if notes else ""))


def make_people_source(keypoints: str | None, fmt: str | None) -> PeopleSource:
    return PeopleSource(keypoints, fmt)


def process_image(path: Path, predictor, source: PeopleSource, out: Path, visualizer, args) -> list[str]:
    """Run one image, outputs in the folder ``out``; returns failure messages (empty if everything worked)."""
    import cv2

    from jotr.errors import InputError
    from jotr.inference.export import rig_body_of, save_image_outputs
    from jotr.inference.predictor import load_image

    try:
        image = load_image(path)
        people, report = source.people_with_report(image, path, str(path))
        results = predictor.predict(image, people, focal=args.focal, name=str(path))
        source.record(str(path), report, results)
        extra = None
        if report is not None:
            extra = {"detection": {**report.to_json(), "people_reconstructed": sum(r.ok for r in results)}}
        save_image_outputs(
            out,
            image,
            results,
            predictor.faces,
            image_name=str(path),
            body_model=predictor.cfg.body.kind,
            visualizer=visualizer,
            meshes=not args.no_meshes,
            frame=getattr(args, "frame", "world"),
            rig_body=rig_body_of(predictor),
            predictor=predictor,
            extra=extra,
        )
    except InputError as exc:
        logger.error("%s", exc)
        return [f"{path}: {exc}"]
    except (OSError, RuntimeError, ValueError, MemoryError, cv2.error) as exc:  # disk full, renderer...
        logger.error("%s failed: %s", path, exc, exc_info=logger.isEnabledFor(logging.DEBUG))
        return [f"{path}: {type(exc).__name__}: {exc}"]
    return [f"{path}: {r.error}" for r in results if not r.ok]


def process_video(path: Path, predictor, source: PeopleSource, out: Path, visualizer, args) -> list[str]:
    """Frame by frame; people tracked (:mod:`jotr.inference.tracking`, whatever ``--smooth`` says), parameters
    smoothed per track (``--smooth``); outputs staged, then renamed."""
    import cv2
    import torch
    from tqdm import tqdm

    from jotr.errors import InputError
    from jotr.geometry.rotations import rotmat_to_aa
    from jotr.inference.export import (
        results_to_arrays,
        rig_body_of,
        staged_dir,
        write_json,
        write_npz,
        write_video_rigs,
    )
    from jotr.inference.result_format import meta_to_npz, result_metadata
    from jotr.inference.smoothing import ParameterSmoother
    from jotr.inference.tracking import PersonTracker, track_people

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        return [f"{path}: cannot open the video"]
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    total = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0) or None  # unknown: until the end
    if args.max_frames is not None:
        total = min(total or args.max_frames, args.max_frames)
    tracker = PersonTracker()
    smoother = ParameterSmoother(args.smooth, fps=fps) if args.smooth != "none" else None
    counts = {"detected": 0, "tracked": 0, "reconstructed": 0}
    failures: list[str] = []
    rows: dict[str, list[np.ndarray]] = {}
    intrinsics, video_size = (None, None), (0, 0)
    side_view = None
    lowest: list[np.ndarray] = []  # (3,) lowest mesh point (largest camera y) of every person in every frame
    frames_json = []
    faces = predictor.faces
    try:
        with staged_dir(out) as tmp:
            writers: dict[str, cv2.VideoWriter] = {}
            frames = range(total) if total is not None else itertools.count()
            bar = tqdm(frames, desc=path.name, unit="frame")
            for idx in bar:
                ok, frame = cap.read()
                if not ok:
                    break
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                name = f"{path}:frame {idx}"
                people, results, frame_error = [], [], None
                try:
                    people = source.people(rgb, Path(f"{path.stem}_{idx:012d}.png"), name)
                except InputError as exc:
                    frame_error = str(exc)
                # Tracking is its own step: ids do not depend on smoothing nor on reconstruction.
                person_ids = track_people(tracker, idx, people, (rgb.shape[1], rgb.shape[0]))
                try:
                    if people:
                        results = predictor.predict(rgb, people, focal=args.focal, name=name)
                except InputError as exc:
                    frame_error = str(exc)
                if frame_error is not None:
                    failures.append(f"{path}: frame {idx}: {frame_error}")
                failures += [f"{path}: frame {idx}: {r.error}" for r in results if not r.ok]
                good = [r for r in results if r.ok]
                track_ids = np.array([person_ids[r.index] for r in good], np.int64)
                if smoother is not None:
                    smoother.forget(tracker.ended)
                if smoother is not None and good:
                    pose, shape, trans = smoother.update(
                        idx,
                        track_ids,
                        np.stack([r.pose_rotmat for r in good]),
                        np.stack([r.shape for r in good]),
                        np.stack([r.translation for r in good]),
                    )
                    verts, joints = predictor.body_in_camera(
                        torch.from_numpy(pose), torch.from_numpy(shape), torch.from_numpy(trans)
                    )
                    pose_aa = rotmat_to_aa(torch.from_numpy(pose)).numpy()
                    for k, r in enumerate(good):
                        r.pose_rotmat, r.pose_aa, r.shape, r.translation = (
                            pose[k],
                            pose_aa[k],
                            shape[k],
                            trans[k],
                        )
                        r.vertices, r.joints = verts[k].cpu().numpy(), joints[k].cpu().numpy()
                        r.joints_img = _project(r.joints, r.focal, r.princpt)
                lowest += [r.vertices[np.argmax(r.vertices[:, 1])] for r in good]
                if good:
                    intrinsics = (good[0].focal, good[0].princpt)
                video_size = (rgb.shape[1], rgb.shape[0])
                arrays = results_to_arrays(good)
                arrays["frame"] = np.full(len(good), idx, np.int64)
                arrays["track_id"] = np.asarray(track_ids, np.int64)
                if not args.video_meshes:
                    arrays.pop("vertices")
                for key, value in arrays.items():
                    if len(good):
                        rows.setdefault(key, []).append(value)
                frame_counts = {
                    "detected": len(people),
                    "tracked": int((person_ids >= 0).sum()),
                    "reconstructed": len(good),
                }
                for key, value in frame_counts.items():
                    counts[key] += value
                bar.set_postfix(frame_counts, refresh=False)
                frames_json.append(
                    {
                        "frame": idx,
                        **frame_counts,
                        "track_ids": track_ids.tolist(),  # of the reconstructed people, in row order
                        "skipped": [
                            {"person_index": r.index, "track_id": int(person_ids[r.index]), "error": r.error}
                            for r in results
                            if not r.ok
                        ],
                        **({"error": frame_error} if frame_error is not None else {}),
                    }
                )
                if visualizer is not None:
                    from jotr.viz.overlay import person_color

                    H, W = rgb.shape[:2]
                    focal = good[0].focal if good else (1.0, 1.0)
                    princpt = good[0].princpt if good else (W / 2.0, H / 2.0)
                    ov = visualizer.render(
                        rgb,
                        [(r.vertices, faces) for r in good],
                        focal,
                        princpt,
                        colors=[person_color(int(t)) for t in track_ids],
                        side_view=side_view,  # framed once, on the first frame with people: no jumps
                    )
                    side_view = ov.side_view
                    for key, img in (("overlay", ov.image), ("side", ov.side)):
                        if key not in writers:
                            writers[key] = cv2.VideoWriter(
                                str(tmp / f"{key}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H)
                            )
                        writers[key].write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            for w in writers.values():
                w.release()
            stacked = {k: np.concatenate(v) for k, v in rows.items()}
            export = np.eye(4)
            if lowest:
                from jotr.geometry.coords import export_from_camera

                export = export_from_camera(args.frame, np.stack(lowest), stacked["translation"])
                body = rig_body_of(predictor)
                if body is not None and not args.no_meshes:
                    write_video_rigs(
                        tmp,
                        stacked,
                        body,
                        export,
                        fps=fps,
                        num_frames=len(frames_json),
                        image_size=video_size,
                        focal=intrinsics[0],
                    )
            meta = result_metadata(
                predictor,
                kind="video",
                source=str(path),
                image_size=video_size,
                focal=intrinsics[0],
                princpt=intrinsics[1],
                export_frame=args.frame,
                export_from_camera=export,
                body_model=predictor.cfg.body.kind,
            )
            meta.update(
                fps=float(fps),
                smoothing=args.smooth,
                num_frames=len(frames_json),
                summary={"frames": len(frames_json), **counts, "track_ids": tracker.next_id},
            )
            write_npz(
                tmp / "params.npz", {**meta_to_npz(meta), **stacked, "faces": np.asarray(faces, np.int64)}
            )
            people_json = [
                {k: np.asarray(v[i]).round(6).tolist() for k, v in stacked.items() if k != "vertices"}
                for i in range(len(stacked.get("frame", [])))
            ]
            write_json(tmp / "params.json", {**meta, "frames": frames_json, "people": people_json})
            if not frames_json:
                raise InputError(f"{path}: no frame could be read")
    except InputError as exc:
        return failures + [f"{path}: {exc}"]
    except (OSError, RuntimeError, ValueError) as exc:
        logger.error("%s failed: %s", path, exc, exc_info=logger.isEnabledFor(logging.DEBUG))
        return failures + [f"{path}: {type(exc).__name__}: {exc}"]
    finally:
        cap.release()
    print(
        f"{path}: {len(frames_json)} frames; people detected {counts['detected']}, "
        f"tracked {counts['tracked']} ({tracker.next_id} track ids), reconstructed {counts['reconstructed']}"
    )
    return failures


def _project(joints: np.ndarray, focal, princpt) -> np.ndarray:
    from jotr.geometry.camera import project_points

    return project_points(torch_tensor(joints), tuple(focal), tuple(princpt)).numpy()


def torch_tensor(a: np.ndarray):
    import torch

    return torch.from_numpy(np.asarray(a, np.float32))
