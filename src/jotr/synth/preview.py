"""Example images of the synthetic families with the target's ground-truth joints drawn on top.

``python -m jotr.synth.preview docs/synthetic`` writes ``<family>.png`` for every family (scene 0 of seed 0,
320x240), the images shown in docs/synthetic_format.md. Joint colours: green = visible, orange = occluded by
an object, magenta = occluded by another person; white crosses = the detector-like input keypoints
(confidence above 0).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from jotr.synth.scene import FAMILIES, VIS_OBJECT, VIS_PERSON, VIS_VISIBLE, Scene

_COLOURS = {VIS_VISIBLE: (40, 220, 40), VIS_OBJECT: (255, 150, 0), VIS_PERSON: (230, 0, 230)}


def draw_target(scene: Scene) -> np.ndarray:
    """(H, W, 3) uint8 copy of the scene image with the target's GT joints and input keypoints."""
    import cv2

    image = np.ascontiguousarray(scene.image.copy())
    target = scene.persons[0]
    for (x, y), code in zip(target["joints_2d_jotr30"], target["visibility_jotr30"], strict=True):
        if int(code) in _COLOURS:
            cv2.circle(image, (int(round(x)), int(round(y))), 3, _COLOURS[int(code)], -1, cv2.LINE_AA)
    for x, y, conf in target["input_keypoints"]:
        if conf > 0:
            cv2.drawMarker(image, (int(round(x)), int(round(y))), (255, 255, 255), cv2.MARKER_CROSS, 5, 1)
    return image


def write_previews(
    out_dir: str | Path, *, seed: int = 0, index: int = 0, width: int = 320, height: int = 240
):
    """Write ``<family>.png`` per family into ``out_dir``; returns the written paths."""
    import cv2

    from jotr.synth.scene import SceneGenerator, SynthOptions
    from jotr.synth.writer import write_file

    out = Path(out_dir)
    gen = SceneGenerator(SynthOptions(width=width, height=height))
    paths = []
    try:
        for family in FAMILIES:
            image = draw_target(gen.generate(family, seed, index))
            ok, buf = cv2.imencode(".png", image[..., ::-1], [int(cv2.IMWRITE_PNG_COMPRESSION), 9])
            if not ok:
                raise RuntimeError("PNG encoding failed")
            path = out / f"{family}.png"
            write_file(path, buf.tobytes())
            paths.append(path)
    finally:
        gen.close()
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder for <family>.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", type=int, default=0)
    args = parser.parse_args(argv)
    for path in write_previews(args.out_dir, seed=args.seed, index=args.index):
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
