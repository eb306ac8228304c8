"""Example images of the synthetic families with the target's ground-truth joints drawn on top.

``python -m jotr.synth.preview docs/synthetic --grid docs/synthetic_samples.png`` writes ``<family>.png``
for every family (scene 0 of seed 0, 320x240, not cut by the frame) and ``truncated.png`` (the first
upper-body portrait of family ``none`` from scene 0 on, every target cut by the frame), the images shown in
docs/synthetic_format.md and README.md, and with ``--grid`` a grid of samples of every family as the
generator makes them (:func:`sample_grid`).
:func:`contact_sheet` tiles many scenes into one image (a visual check of poses and framing). Joint colours:
green = visible, orange = occluded by an object, magenta = occluded by another person; white crosses = the
detector-like input keypoints (confidence above 0).
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
    out_dir: str | Path,
    *,
    seed: int = 0,
    index: int = 0,
    width: int = 320,
    height: int = 240,
    backgrounds: str = "auto",
):
    """Write ``<family>.png`` per family into ``out_dir``; returns the written paths."""
    import cv2

    from jotr.synth.scene import SceneGenerator, SynthOptions
    from jotr.synth.writer import write_file

    out = Path(out_dir)
    gen = SceneGenerator(SynthOptions(width=width, height=height, truncation=0.0, backgrounds=backgrounds))
    # truncated.png: the first upper-body portrait (scene >= index of `none`, every target cut by the frame).
    cut = SceneGenerator(
        SynthOptions(width=width, height=height, truncation=1.0, backgrounds=backgrounds), body=gen.body
    )
    paths = []

    def save(image: np.ndarray, name: str) -> None:
        ok, buf = cv2.imencode(".png", image[..., ::-1], [int(cv2.IMWRITE_PNG_COMPRESSION), 9])
        if not ok:
            raise RuntimeError("PNG encoding failed")
        path = out / f"{name}.png"
        write_file(path, buf.tobytes())
        paths.append(path)

    try:
        for family in FAMILIES:
            save(draw_target(gen.generate(family, seed, index)), family)
        for i in range(index, index + 20):
            scene = cut.generate("none", seed, i)
            if scene.image_info["truncation"] == "bottom":
                save(draw_target(scene), "truncated")
                break
    finally:
        gen.close()
        cut.close()
    return paths


def contact_sheet(
    out_path: str | Path,
    *,
    num: int = 24,
    seed: int = 0,
    family: str = "none",
    cols: int = 6,
    size: int = 192,
    **option_overrides,
) -> Path:
    """Tile scenes ``0..num-1`` of ``family`` into one PNG with each target's pose mode / archetype and
    truncation written on it (a visual check of the pose sampler and the framing). ``option_overrides`` go
    to :class:`~jotr.synth.scene.SynthOptions` (e.g. ``truncation=0.0``, ``pose_mix=(("lying", 1.0),)``)."""
    import cv2

    from jotr.synth.scene import SceneGenerator, SynthOptions
    from jotr.synth.writer import write_file

    gen = SceneGenerator(SynthOptions(width=size, height=size, **option_overrides))
    tiles = []
    try:
        for i in range(num):
            scene = gen.generate(family, seed, i)
            tile = draw_target(scene)
            bp = scene.persons[0]["body_param"]
            label = f"{i} {bp['archetype']}"
            trunc = scene.image_info.get("truncation", "none")
            for text, row in ((label, 12), (trunc if trunc != "none" else "", 24)):
                cv2.putText(tile, text, (3, row), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 3, cv2.LINE_AA)
                cv2.putText(
                    tile, text, (3, row), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 0), 1, cv2.LINE_AA
                )
            tiles.append(tile)
    finally:
        gen.close()
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[r : r + cols], axis=1) for r in range(0, len(tiles), cols)]
    sheet = np.concatenate(rows, axis=0)
    ok, buf = cv2.imencode(".png", sheet[..., ::-1], [int(cv2.IMWRITE_PNG_COMPRESSION), 9])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    path = Path(out_path)
    write_file(path, buf.tobytes())
    return path


def sample_grid(
    out_path: str | Path,
    *,
    rows: int = 3,
    seed: int = 0,
    width: int = 256,
    height: int = 192,
    **option_overrides,
) -> tuple[Path, list[str]]:
    """Tile scenes ``0..rows-1`` of every family (one column per family, as the generator makes them: no
    joints drawn, the family written in a corner) into one PNG; returns its path and the backgrounds used
    (photograph names or ``procedural``). ``option_overrides`` go to
    :class:`~jotr.synth.scene.SynthOptions` (e.g. ``backgrounds="procedural"``)."""
    import cv2

    from jotr.synth.scene import SceneGenerator, SynthOptions
    from jotr.synth.writer import write_file

    gen = SceneGenerator(SynthOptions(width=width, height=height, **option_overrides))
    tiles, used = [], []
    try:
        for row in range(rows):
            for family in FAMILIES:
                scene = gen.generate(family, seed, row)
                used.append(scene.image_info["background"])
                tile = np.ascontiguousarray(scene.image.copy())
                cv2.putText(tile, family, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
                cv2.putText(
                    tile, family, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA
                )
                tiles.append(tile)
    finally:
        gen.close()
    cols = len(FAMILIES)
    sheet = np.concatenate([np.concatenate(tiles[r : r + cols], axis=1) for r in range(0, len(tiles), cols)])
    ok, buf = cv2.imencode(".png", sheet[..., ::-1], [int(cv2.IMWRITE_PNG_COMPRESSION), 9])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    path = Path(out_path)
    write_file(path, buf.tobytes())
    return path, used


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder for <family>.png and truncated.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument(
        "--grid", default=None, metavar="PNG", help="also write a grid of samples of every family (3 rows)"
    )
    parser.add_argument(
        "--backgrounds", default="auto", help="background source (auto | procedural | a folder; default auto)"
    )
    args = parser.parse_args(argv)
    for path in write_previews(args.out_dir, seed=args.seed, index=args.index, backgrounds=args.backgrounds):
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    if args.grid:
        path, used = sample_grid(args.grid, seed=args.seed, backgrounds=args.backgrounds)
        print(f"wrote {path} ({path.stat().st_size // 1024} KB); backgrounds: {', '.join(sorted(set(used)))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
