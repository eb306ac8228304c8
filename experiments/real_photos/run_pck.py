"""2D check of JOTR on real photographs with hand-labelled keypoints (issue 15, evidence).

For every person of ``docs/real_photos/keypoints_coco17.json`` (COCO results style, COCO-17, hand-labelled;
unlabelled = invisible or outside the frame, confidence 0) the predictor runs on the photo with those
keypoints as its 2D input -- exactly what ``jotr demo IMAGE --keypoints FILE`` does -- and the output mesh's
COCO-17 joints (the body model's COCO regressor, in the original camera) are projected into the image and
compared with the labels, over the labelled joints only:

* ``PCK@a``: share of labelled joints whose projection lies within ``a * max(w, h)`` of the label, where
  (w, h) is the tight box of the person's labelled keypoints (PCK w.r.t. the person box, Yang & Ramanan);
  reported for a = 0.1 and 0.2.
* ``scale``: ``max(w', h') / max(w, h)``, with (w', h') the box of the projected joints over the same labelled
  joints: 1 = the mesh has the person's size in the image, < 1 too small.
* ``centre offset``: distance between the two box centres, in units of ``max(w, h)``.

Since the labels are also the network's input, this measures whether the mesh lands on the person at the
person's scale (the 2D consistency that the issue asks for), not 3D accuracy. With ``--detect`` the network's
input comes from the built-in detector instead (:class:`jotr.inference.detector.PersonDetector`; each
labelled person takes the detected person whose keypoints lie nearest its labels; a labelled person without
one is reported as not detected), and the mesh is still compared with the hand labels: the difference between
the two runs is what the detector's keypoints cost. Writes per photo
``<out>/<stem>_pck.png`` (labels green, projected mesh joints red, lines between them, the projected mesh
vertices as grey dots) and, when offscreen rendering works, ``<out>/<stem>_mesh.png`` (the rendered overlay);
plus ``<out>/results.json`` and ``<out>/results.md``.

    python experiments/real_photos/run_pck.py                       # the shipped model
    python experiments/real_photos/run_pck.py --detect --out outputs/real_photos/detected
                                  # input keypoints from the built-in detector (labels stay the reference)
    python experiments/real_photos/run_pck.py --checkpoint .cache/jotr/demo_small.pt \
        --out outputs/real_photos/before
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT / "docs" / "real_photos"
COCO17 = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee",
    "left_ankle", "right_ankle",
)  # fmt: skip
ALPHAS = (0.1, 0.2)


def person_box_size(kps: np.ndarray) -> tuple[np.ndarray, float]:
    """(K, 2) labelled points -> box centre (2,) and max(w, h) of their tight box."""
    lo, hi = kps.min(0), kps.max(0)
    return (lo + hi) / 2.0, float(max(hi - lo))


def pck_metrics(pred: np.ndarray, label: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """(17, 2) projected joints, (17, 2) labels, (17,) bool labelled -> PCK@a, scale ratio, centre offset."""
    p, g = pred[valid], label[valid]
    centre_g, size_g = person_box_size(g)
    centre_p, size_p = person_box_size(p)
    size_g = max(size_g, 1.0)
    dist = np.linalg.norm(p - g, axis=1)
    out = {f"pck@{a}": float((dist <= a * size_g).mean()) for a in ALPHAS}
    out.update(
        {
            "joints": int(valid.sum()),
            "box_size_px": size_g,
            "mean_error_px": float(dist.mean()),
            "mean_error_rel": float(dist.mean() / size_g),
            "scale": float(size_p / size_g),
            "centre_offset_rel": float(np.linalg.norm(centre_p - centre_g) / size_g),
        }
    )
    return out


def mesh_coco17(predictor, result) -> tuple[np.ndarray, np.ndarray]:
    """The output mesh's COCO-17 joints and every 4th vertex, projected into the image: (17, 2), (V/4, 2)."""
    import torch

    from jotr.geometry.camera import project_points

    body = predictor.mesh_body
    with torch.no_grad():
        pose = torch.as_tensor(result.pose_rotmat, dtype=torch.float32, device=predictor.device)[None]
        shape = torch.as_tensor(result.shape, dtype=torch.float32, device=predictor.device)[None]
        out = body(pose, shape)
        root = body.joints(out, "jotr30")[:, :1]
        trans = torch.as_tensor(result.translation, dtype=torch.float32, device=predictor.device)
        coco = body.joints(out, "coco17") - root + trans
        verts = out.vertices[:, ::4] - root + trans
        f, c = tuple(result.focal), tuple(result.princpt)
        return project_points(coco, f, c)[0].cpu().numpy(), project_points(verts, f, c)[0].cpu().numpy()


def detected_inputs(report, labels: list[np.ndarray]) -> list:
    """For each labelled person (17, 3), the detected person whose keypoints lie nearest its labels (median
    distance over the joints both have), one detection per person; None when there is none left."""
    from jotr.inference.detector import people_from_report

    people = people_from_report(report)
    out: list = []
    used: set[int] = set()
    for lab in labels:
        best, best_d = None, np.inf
        for i, p in enumerate(people):
            both = (lab[:, 2] > 0) & (p.keypoints[:, 2] > 0)
            if i in used or not both.any():
                continue
            d = float(np.median(np.linalg.norm(p.keypoints[both, :2] - lab[both, :2], axis=1)))
            if d < best_d:
                best, best_d = i, d
        if best is not None:
            used.add(best)
        out.append(people[best] if best is not None else None)
    return out


def draw(image: np.ndarray, people: list[dict], path: Path) -> None:
    import cv2

    img = cv2.cvtColor(image, cv2.COLOR_RGB2BGR).copy()
    for p in people:
        for x, y in p["vertices_img"]:
            if 0 <= x < img.shape[1] and 0 <= y < img.shape[0]:
                cv2.circle(img, (int(x), int(y)), 1, (150, 150, 150), -1)
        for (px, py), (gx, gy), ok in zip(p["pred"], p["label"], p["valid"]):
            if ok:
                cv2.line(img, (int(px), int(py)), (int(gx), int(gy)), (0, 255, 255), 1)
                cv2.circle(img, (int(gx), int(gy)), 4, (0, 200, 0), -1)
            cv2.circle(img, (int(px), int(py)), 3, (0, 0, 255) if ok else (0, 0, 140), -1)
        cx, cy, w, h = p["crop_box"]
        cv2.rectangle(img, (int(cx), int(cy)), (int(cx + w), int(cy + h)), (255, 128, 0), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="jotr checkpoint (.pt); default: the shipped model")
    ap.add_argument("--keypoints", default=str(PHOTOS / "keypoints_coco17.json"), help="hand labels")
    ap.add_argument("--photos", default=str(PHOTOS), help="folder of the photos")
    ap.add_argument("--out", default=str(ROOT / "outputs" / "real_photos"), help="output folder")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-render", action="store_true", help="skip the rendered mesh overlays")
    ap.add_argument("--detect", action="store_true", help="input keypoints from the built-in detector")
    args = ap.parse_args(argv)

    from jotr.inference.predictor import JOTRPredictor, PersonInput, load_image

    if args.checkpoint:
        predictor = JOTRPredictor.from_checkpoint(args.checkpoint, device=args.device)
        model_name = str(args.checkpoint)
    else:
        predictor = JOTRPredictor.from_pretrained(device=args.device)
        model_name = "shipped model"
    source = "built-in detector" if args.detect else "the hand labels"
    labels = json.loads(Path(args.keypoints).read_text())
    by_image: dict[str, list[np.ndarray]] = {}
    for entry in labels:
        by_image.setdefault(str(entry["image_id"]), []).append(
            np.asarray(entry["keypoints"], dtype=np.float64).reshape(17, 3)
        )
    visualizer = None
    if not args.no_render:
        from jotr.viz.renderer import rendering_available

        if rendering_available()[0]:
            from jotr.viz.overlay import MeshVisualizer

            visualizer = MeshVisualizer()
    out_dir = Path(args.out)
    rows, all_people = [], []
    for stem, people in sorted(by_image.items()):
        path = next(Path(args.photos).glob(f"{stem}.*"))
        image = load_image(path)
        inputs = [PersonInput(keypoints=k, keypoint_format="coco17") for k in people]
        if args.detect:
            inputs = detected_inputs(predictor.detect(image, str(path)), people)
            missing = [k for k, p in enumerate(inputs) if p is None]
            rows += [{"image": stem, "person": k, "error": "not detected"} for k in missing]
            people = [k for k, p in zip(people, inputs) if p is not None]
            inputs = [p for p in inputs if p is not None]
        results = predictor.predict(image, inputs, name=str(path)) if inputs else []
        drawn = []
        for k, (kps, res) in enumerate(zip(people, results)):
            if not res.ok:
                rows.append({"image": stem, "person": k, "error": res.error})
                continue
            pred, verts = mesh_coco17(predictor, res)
            valid = kps[:, 2] > 0
            m = pck_metrics(pred, kps[:, :2], valid)
            rows.append({"image": stem, "person": k, **m})
            drawn.append(
                {
                    "pred": pred,
                    "label": kps[:, :2],
                    "valid": valid,
                    "vertices_img": verts,
                    "crop_box": res.box_xywh,
                }
            )
        draw(image, drawn, out_dir / f"{stem}_pck.png")
        if visualizer is not None:
            import cv2

            ok = [r for r in results if r.ok]
            if not ok:
                continue
            ov = visualizer.render(
                image, [(r.vertices, predictor.faces) for r in ok], ok[0].focal, ok[0].princpt
            )
            cv2.imwrite(str(out_dir / f"{stem}_mesh.png"), cv2.cvtColor(ov.image, cv2.COLOR_RGB2BGR))
        all_people += drawn
    if visualizer is not None:
        visualizer.close()

    good = [r for r in rows if "error" not in r]
    total_joints = sum(r["joints"] for r in good)
    summary = {
        f"pck@{a}": sum(r[f"pck@{a}"] * r["joints"] for r in good) / max(total_joints, 1) for a in ALPHAS
    }
    summary["median_scale"] = float(np.median([r["scale"] for r in good])) if good else float("nan")
    summary["joints"] = total_joints
    summary["people"] = len(good)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(
        json.dumps({"model": model_name, "input": source, "people": rows, "all": summary}, indent=1)
    )
    lines = [
        f"model: {model_name}; input keypoints: {source}",
        "",
        "| photo | person | joints | PCK@0.1 | PCK@0.2 | mean err (px) | scale (mesh/person) | centre off. |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['image']} | {r['person']} | failed: {r['error']} |")
            continue
        lines.append(
            f"| {r['image']} | {r['person']} | {r['joints']} | {r['pck@0.1']:.2f} | {r['pck@0.2']:.2f} | "
            f"{r['mean_error_px']:.1f} | {r['scale']:.2f} | {r['centre_offset_rel']:.2f} |"
        )
    lines.append(
        f"| **all** (joint-weighted) | {summary['people']} | {total_joints} | {summary['pck@0.1']:.2f} | "
        f"{summary['pck@0.2']:.2f} | | median {summary['median_scale']:.2f} | |"
    )
    text = "\n".join(lines) + "\n"
    (out_dir / "results.md").write_text(text)
    print(text)
    print(f"overlays and results in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
