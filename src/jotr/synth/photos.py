"""Photographs as scene backgrounds: where they come from, a per-process cache, random crops.

Sources (``SynthOptions.backgrounds``, ``jotr synth --backgrounds``):

* ``"auto"`` (default) -- the photographs of the Debian wallpaper packages ``mate-backgrounds`` (the *nature*
  set) and ``plasma-workspace-wallpapers`` (the photographic wallpapers listed in :data:`PLASMA_PHOTOS`) when
  they are installed (``scripts/setup.sh`` installs them as root), else none: every scene gets a procedural
  background;
* ``"procedural"`` -- never a photograph;
* a folder -- every ``*.jpg``, ``*.jpeg``, ``*.png``, ``*.webp`` and ``*.bmp`` below it (recursively), in
  sorted order.

The images are read at generation time and never stored in the repository; their licences are in each
package's ``/usr/share/doc/<package>/copyright`` (both packages: GPL-2+).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from jotr.errors import InputError

# Photographic wallpapers of plasma-workspace-wallpapers (the package's other wallpapers are illustrations).
PLASMA_PHOTOS = (
    "Autumn",
    "BytheWater",
    "ColdRipple",
    "ColorfulCups",
    "DarkestHour",
    "EveningGlow",
    "FallenLeaf",
    "Grey",
    "Kite",
    "OneStandsOut",
    "Path",
    "summer_1am",
)
DEBIAN_PHOTO_DIRS = (
    "/usr/share/backgrounds/mate/nature",  # mate-backgrounds
    *(
        f"/usr/share/wallpapers/{name}/contents/images" for name in PLASMA_PHOTOS
    ),  # plasma-workspace-wallpapers
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
SOURCES = ("auto", "procedural")  # plus any folder


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    """Image files in ``folder``, one per real file (symbolic links to the same file count once), sorted."""
    found = folder.rglob("*") if recursive else folder.glob("*")
    files, seen = [], set()
    for path in sorted(found):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            files.append(path)
    return files


def find_photos(source: str) -> tuple[Path, ...]:
    """The background photographs of a source (see the module docstring), in a fixed order.

    ``"auto"`` gives an empty tuple when no Debian wallpaper package is installed; a folder that does not
    exist or holds no image is an :class:`~jotr.errors.InputError`.
    """
    if source == "procedural":
        return ()
    if source == "auto":
        photos: list[Path] = []
        for folder in DEBIAN_PHOTO_DIRS:
            if Path(folder).is_dir():  # plasma: many sizes, symbolic links to one file: name the file
                photos.extend(Path(os.path.realpath(p)) for p in _images_in(Path(folder), recursive=False))
        return tuple(photos)
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise InputError(f"synth: background folder {source!r} does not exist (or use 'auto' / 'procedural')")
    photos = _images_in(folder, recursive=True)
    if not photos:
        raise InputError(f"synth: background folder {source!r} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    return tuple(photos)


def describe_photos(photos: tuple[Path, ...], source: str) -> list[str]:
    """Names of the photographs for the dataset's ``info`` (relative to the folder, or full Debian paths)."""
    if source in SOURCES:
        return [str(p) for p in photos]
    root = Path(source).expanduser()
    return [str(p.relative_to(root)) for p in photos]


class PhotoBank:
    """Background photographs decoded on first use, downscaled so that their short side is at most
    ``max_side`` pixels, and kept in a small least-recently-used cache (one bank per generator process)."""

    def __init__(self, photos: tuple[Path, ...], max_side: int, cache_size: int = 48) -> None:
        self.photos = tuple(photos)
        self.max_side = int(max_side)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.photos)

    def get(self, index: int) -> np.ndarray:
        """(h, w, 3) uint8 RGB photograph ``index``."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        image = self._load(self.photos[index])
        self._cache[index] = image
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return image

    def _load(self, path: Path) -> np.ndarray:
        import cv2

        # Decode at 1/8, 1/4 or 1/2 size when the short side stays at least max_side (much faster for the
        # 2560-5120 px wallpapers); the result is the same on every run.
        small = cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_8)
        if small is None:
            raise InputError(f"synth: cannot read background image {path}")
        short = 8 * min(small.shape[:2])  # about the full-size short side
        image = small
        for factor, flag in (
            (8, None),
            (4, cv2.IMREAD_REDUCED_COLOR_4),
            (2, cv2.IMREAD_REDUCED_COLOR_2),
            (1, cv2.IMREAD_COLOR),
        ):
            if short // factor >= self.max_side or factor == 1:
                image = small if flag is None else cv2.imread(str(path), flag)
                break
        if image is None or image.ndim != 3 or min(image.shape[:2]) < 16:
            raise InputError(f"synth: cannot read background image {path}")
        short = min(image.shape[:2])
        if short > self.max_side:
            scale = self.max_side / short
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(image[..., ::-1])


def photo_background(
    rng: np.random.Generator, bank: PhotoBank, width: int, height: int
) -> tuple[np.ndarray, int]:
    """(H, W, 3) uint8 random crop of a random photograph (random scale, position, mirror) and its index.

    The crop has the image's aspect ratio and covers 30-100% of the largest such window of the photo.
    """
    import cv2

    index = int(rng.integers(len(bank)))
    photo = bank.get(index)
    ph, pw = photo.shape[:2]
    aspect = width / height
    max_w = min(pw, ph * aspect)
    crop_w = max_w * rng.uniform(0.3, 1.0)
    crop_h = crop_w / aspect
    x0 = rng.uniform(0.0, pw - crop_w)
    y0 = rng.uniform(0.0, ph - crop_h)
    # Affine crop-and-resize with sub-pixel position (pixel centres at integers on both sides).
    sx, sy = crop_w / width, crop_h / height
    matrix = np.array([[sx, 0.0, x0 + 0.5 * sx - 0.5], [0.0, sy, y0 + 0.5 * sy - 0.5]])
    src = photo
    if sx > 1.5:  # shrinking: low-pass first so that the crop does not alias
        src = cv2.GaussianBlur(photo, (0, 0), 0.45 * sx)
    out = cv2.warpAffine(
        src,
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out), index
