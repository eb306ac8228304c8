"""Random appearance for synthetic scenes: clothes-like body colours, textured occluder meshes, backgrounds.

Everything here is pure numpy (plus trimesh for primitive meshes) and draws only from the ``rng`` it is given.
Colours are float RGB in [0, 1] unless stated otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jotr.body.joint_sets import JOTR30

OCCLUDER_SHAPES = ("box", "board", "cylinder", "sphere", "blob", "capsule", "cone")
PATTERNS = ("solid", "hstripes", "vstripes", "checker", "noise", "gradient", "plaid", "dots", "denim")
BACKGROUNDS = ("street", "room", "noise", "blocks")

# Body parts: (name, joint a, joint b, typical radius in metres). Each vertex is assigned to the segment a-b
# with the smallest (distance - radius) at the rest pose.
_SEGMENTS = (
    ("torso", "Pelvis", "Neck", 0.13),
    ("torso", "L_Hip", "R_Hip", 0.10),
    ("torso", "L_Shoulder", "R_Shoulder", 0.08),
    ("head", "Neck", "Head_top", 0.09),
    ("upperarm_L", "L_Shoulder", "L_Elbow", 0.05),
    ("upperarm_R", "R_Shoulder", "R_Elbow", 0.05),
    ("forearm_L", "L_Elbow", "L_Wrist", 0.04),
    ("forearm_R", "R_Elbow", "R_Wrist", 0.04),
    ("hand_L", "L_Wrist", "L_Hand", 0.03),
    ("hand_R", "R_Wrist", "R_Hand", 0.03),
    ("thigh_L", "L_Hip", "L_Knee", 0.08),
    ("thigh_R", "R_Hip", "R_Knee", 0.08),
    ("shin_L", "L_Knee", "L_Ankle", 0.05),
    ("shin_R", "R_Knee", "R_Ankle", 0.05),
    ("foot_L", "L_Ankle", "L_Foot", 0.04),
    ("foot_R", "R_Ankle", "R_Foot", 0.04),
)


@dataclass(frozen=True)
class BodyParts:
    """Per-vertex part labels of a body mesh at rest (shape-independent: computed once per topology)."""

    part: np.ndarray  # (V,) int index into ``names``
    along: np.ndarray  # (V,) position along the part's segment, 0 at joint a, 1 at joint b
    rest: np.ndarray  # (V, 3) rest vertices, canonical frame, metres (for texture coordinates)
    names: tuple[str, ...]
    head_top_y: float  # rest height of the head top
    eye_y: float  # rest height of the eyes
    face_z: float  # rest depth (z) of the eyes -- the face is in front of it
    # (V,) facial detail per vertex: FACE_NONE, FACE_SCLERA, FACE_IRIS, FACE_PUPIL, FACE_BROW, FACE_LIPS
    face: np.ndarray | None = None


def segment_body(rest_vertices: np.ndarray, joints30: np.ndarray) -> BodyParts:
    """Label every rest-pose vertex (canonical frame) with a body part, from the JOTR30 joints at rest."""
    idx = {n: i for i, n in enumerate(JOTR30.names)}
    names = tuple(dict.fromkeys(s[0] for s in _SEGMENTS))
    best = np.full(len(rest_vertices), np.inf)
    part = np.zeros(len(rest_vertices), np.int64)
    along = np.zeros(len(rest_vertices))
    for name, a, b, radius in _SEGMENTS:
        pa, pb = joints30[idx[a]], joints30[idx[b]]
        ab = pb - pa
        t = np.clip((rest_vertices - pa) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0)
        d = np.linalg.norm(rest_vertices - (pa + t[:, None] * ab), axis=1) - radius
        better = d < best
        best[better], part[better], along[better] = d[better], names.index(name), t[better]
    eyes = joints30[[idx["L_Eye"], idx["R_Eye"]]].mean(axis=0)
    return BodyParts(
        part,
        along,
        rest_vertices,
        names,
        float(joints30[idx["Head_top"], 1]),
        float(eyes[1]),
        float(eyes[2]),
        _face_labels(rest_vertices, joints30, idx, part == names.index("head")),
    )


FACE_NONE, FACE_SCLERA, FACE_IRIS, FACE_PUPIL, FACE_BROW, FACE_LIPS = range(6)


def _face_labels(rest: np.ndarray, joints30: np.ndarray, idx: dict[str, int], head: np.ndarray) -> np.ndarray:
    """(V,) facial-detail label of each rest vertex (canonical frame, metres), from the eye and nose joints:
    eyes (the front of the eyeballs: sclera, iris, pupil), eyebrows, lips."""
    face = np.zeros(len(rest), np.int64)
    for eye_name in ("L_Eye", "R_Eye"):
        eye = joints30[idx[eye_name]]
        d = rest - eye
        lateral = np.hypot(d[:, 0], d[:, 1])
        front = head & (d[:, 2] > 0.0)
        ball = front & (np.linalg.norm(d, axis=1) < 0.0165) & (lateral < 0.0135)
        face[ball] = FACE_SCLERA
        face[ball & (lateral < 0.0062)] = FACE_IRIS
        face[ball & (lateral < 0.0028)] = FACE_PUPIL
        brow = front & (np.abs(d[:, 0]) < 0.02) & (d[:, 1] > 0.013) & (d[:, 1] < 0.021) & (d[:, 2] > -0.005)
        face[brow & (face == FACE_NONE)] = FACE_BROW
    nose = joints30[idx["Nose"]]
    d = rest - nose
    lips = head & (np.abs(d[:, 0]) < 0.022) & (d[:, 1] < -0.022) & (d[:, 1] > -0.038) & (d[:, 2] > -0.03)
    face[lips & (face == FACE_NONE)] = FACE_LIPS
    return face


def random_color(rng: np.random.Generator, *, sat=(0.2, 1.0), val=(0.15, 1.0)) -> np.ndarray:
    """(3,) a random RGB colour from HSV ranges."""
    h, s, v = rng.random(), rng.uniform(*sat), rng.uniform(*val)
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def skin_color(rng: np.random.Generator) -> np.ndarray:
    """(3,) a skin tone, from very light to very dark."""
    tone = rng.random()
    light, dark = np.array([0.96, 0.80, 0.69]), np.array([0.30, 0.18, 0.11])
    return np.clip(light * (1 - tone) + dark * tone + rng.normal(0, 0.02, 3), 0, 1)


def pattern_colors(
    rng: np.random.Generator, coords: np.ndarray, base: np.ndarray, scale: float
) -> np.ndarray:
    """(N, 3) colours of a random pattern over (N, 3) coordinates (metres); ``scale`` = typical period."""
    kind = PATTERNS[int(rng.integers(len(PATTERNS)))]
    second = random_color(rng)
    n = len(coords)
    if kind == "solid":
        mix = np.zeros(n)
    elif kind in ("hstripes", "vstripes"):
        axis = 1 if kind == "hstripes" else 0
        period = scale * rng.uniform(0.15, 0.6)
        mix = (np.floor((coords[:, axis] + rng.random() * period) / period) % 2).astype(np.float64)
    elif kind == "checker":
        period = scale * rng.uniform(0.15, 0.5)
        cell = np.floor(coords / period).astype(np.int64)
        mix = (cell.sum(axis=1) % 2).astype(np.float64)
    elif kind == "noise":
        freqs = rng.normal(0, 2.0 * np.pi / (0.3 * scale), (4, 3))
        phases = rng.uniform(0, 2 * np.pi, 4)
        mix = np.clip(0.5 + 0.3 * np.sin(coords @ freqs.T + phases).sum(axis=1), 0.0, 1.0)
    elif kind == "gradient":
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        proj = coords @ direction
        mix = (proj - proj.min()) / max(float(np.ptp(proj)), 1e-9)
    elif kind == "plaid":  # two crossing sets of bands, blended
        period = scale * rng.uniform(0.12, 0.35)
        width = rng.uniform(0.2, 0.45)
        offset = rng.random(2) * period
        bands = [((coords[:, a] + offset[k]) / period) % 1.0 < width for k, a in enumerate((0, 1))]
        mix = 0.5 * bands[0] + 0.5 * bands[1]
    elif kind == "dots":
        period = scale * rng.uniform(0.06, 0.18)
        cell = (coords + rng.random(3) * period) / period
        mix = (np.linalg.norm(cell - np.round(cell), axis=1) < rng.uniform(0.2, 0.35)).astype(np.float64)
    else:  # denim: a blue/grey/black twill -- fine random grain
        base = np.array([0.12, 0.2, 0.38]) * rng.uniform(0.6, 1.5) if rng.random() < 0.7 else base * 0.6
        second = np.clip(base * 1.6 + 0.05, 0.0, 1.0)
        mix = np.clip(rng.beta(2.0, 5.0, n), 0.0, 1.0)
    colors = base[None] * (1 - mix[:, None]) + second[None] * mix[:, None]
    return np.clip(colors * rng.uniform(0.9, 1.1), 0.0, 1.0)


def _smooth_field(
    rng: np.random.Generator, coords: np.ndarray, period: float, octaves: int = 3
) -> np.ndarray:
    """(N,) smooth random field in about [-1, 1] over (N, 3) coordinates (metres): a sum of random plane
    waves, ``period`` = the longest wavelength."""
    coords = coords.astype(np.float32)
    field = np.zeros(len(coords), np.float32)
    amp, total = 1.0, 0.0
    for k in range(octaves):
        freqs = rng.normal(0.0, 2.0 * np.pi / (period / 2**k), (3, 3)).astype(np.float32)
        phases = rng.uniform(0, 2 * np.pi, 3).astype(np.float32)
        field += amp * np.sin(coords @ freqs.T + phases).sum(axis=1) / 3.0
        total += amp
        amp *= 0.5
    return field.astype(np.float64) / total * 1.7


def body_colors(rng: np.random.Generator, parts: BodyParts) -> np.ndarray:
    """(V, 3) per-vertex colours: skin, hair, a patterned top, trousers/shorts/skirt-like bottoms, shoes."""
    names = parts.names
    p = parts.part
    rest = parts.rest
    skin = skin_color(rng)
    colors = np.tile(skin, (len(p), 1))
    # Skin texture: blotches (smooth, a few cm), a slight redness varying over the body, fine grain.
    colors *= 1.0 + 0.05 * _smooth_field(rng, rest, 0.12)[:, None]
    colors += 0.03 * np.clip(_smooth_field(rng, rest, 0.3), 0, 1)[:, None] * np.array([1.0, -0.4, -0.5])
    colors *= rng.uniform(0.97, 1.03, (len(p), 1))

    is_ = {n: p == names.index(n) for n in names}
    sleeve = rng.choice(
        [0.0, 0.35, 1.0, 2.0], p=[0.15, 0.25, 0.2, 0.4]
    )  # upper-arm fraction; 2 = long sleeves
    legs = rng.choice([0.6, 1.0, 2.0], p=[0.25, 0.15, 0.6])  # thigh fraction; 2 = long trousers
    top = np.zeros(len(p), bool) | is_["torso"]
    bottom = np.zeros(len(p), bool)
    hip_y = float(rest[is_["thigh_L"] | is_["thigh_R"], 1].max()) if np.any(is_["thigh_L"]) else 0.0
    torso_low = is_["torso"] & (rest[:, 1] < hip_y + rng.uniform(-0.02, 0.08))
    top &= ~torso_low
    bottom |= torso_low
    for side in ("L", "R"):
        if sleeve >= 2.0:
            top |= is_[f"upperarm_{side}"] | (is_[f"forearm_{side}"] & (parts.along < rng.uniform(0.7, 1.0)))
        elif sleeve > 0.0:
            top |= is_[f"upperarm_{side}"] & (parts.along < sleeve)
        if legs >= 2.0:
            bottom |= is_[f"thigh_{side}"] | (is_[f"shin_{side}"] & (parts.along < rng.uniform(0.8, 1.0)))
        else:
            bottom |= is_[f"thigh_{side}"] & (parts.along < legs)
    top_color = random_color(rng)
    colors[top] = pattern_colors(rng, rest[top], top_color, 0.4)
    colors[bottom] = pattern_colors(rng, rest[bottom], random_color(rng, val=(0.1, 0.8)), 0.6)
    if rng.random() < 0.3:  # an open jacket / cardigan over the top: long sleeves, the front opening shows
        half = rng.uniform(0.02, 0.07)
        jacket = (is_["torso"] & ~torso_low & ((np.abs(rest[:, 0]) > half) | (rest[:, 2] < 0.0))) | (
            is_["upperarm_L"]
            | is_["upperarm_R"]
            | ((is_["forearm_L"] | is_["forearm_R"]) & (parts.along < 0.9))
        )
        colors[jacket] = pattern_colors(
            rng, rest[jacket], random_color(rng, sat=(0.0, 0.6), val=(0.05, 0.7)), 0.5
        )
        top = top | jacket
    if rng.random() < 0.35:  # a belt at the top of the bottoms
        belt = bottom & (rest[:, 1] > hip_y + rng.uniform(0.02, 0.06)) & is_["torso"]
        colors[belt] = random_color(rng, sat=(0.0, 0.5), val=(0.05, 0.4))
    # Fabric: grain and folds (smooth darker bands, across the limbs), on every clothed vertex.
    clothed = top | bottom
    grain = rng.uniform(0.02, 0.07)
    colors[clothed] *= 1.0 + grain * rng.standard_normal((int(clothed.sum()), 1))
    folds = 1.0 - rng.uniform(0.05, 0.2) * np.clip(_smooth_field(rng, rest[clothed], 0.25), 0.0, 1.0)
    colors[clothed] *= folds[:, None]
    shoes = is_["foot_L"] | is_["foot_R"]
    colors[shoes] = random_color(rng, val=(0.05, 0.9)) * (
        1.0 + 0.04 * rng.standard_normal((int(shoes.sum()), 1))
    )
    if shoes.any():  # darker or lighter soles
        low = shoes & (rest[:, 1] < float(rest[shoes, 1].min()) + 0.015)
        colors[low] = random_color(rng, sat=(0.0, 0.2), val=(0.05, 0.95))
    # Hair: the top/back of the head above the eyes.
    head = is_["head"]
    hair_line = parts.eye_y + rng.uniform(0.02, 0.06)
    hair = head & (
        (rest[:, 1] > hair_line) | ((rest[:, 2] < parts.face_z - 0.04) & (rest[:, 1] > parts.eye_y - 0.1))
    )
    if rng.random() < 0.15:  # long hair down the back of the neck and the upper back
        hair |= (
            (is_["head"] | is_["torso"])
            & (rest[:, 2] < parts.face_z - 0.06)
            & (rest[:, 1] > parts.eye_y - rng.uniform(0.12, 0.3))
        )
    hair_color = random_color(rng, sat=(0.1, 0.7), val=(0.05, 0.7))
    if rng.random() < 0.9:  # streaks along the hair
        streak = _smooth_field(rng, rest[hair] * np.array([4.0, 0.4, 4.0]), 0.15)
        colors[hair] = hair_color[None] * (1.0 + 0.15 * streak[:, None])
    # Face: eyes, eyebrows, lips (labels from segment_body).
    if parts.face is not None:
        face = parts.face
        colors[face == FACE_SCLERA] = np.array([0.85, 0.83, 0.8]) * rng.uniform(0.85, 1.0)
        iris = [np.array([0.25, 0.15, 0.08]), np.array([0.3, 0.45, 0.6]), np.array([0.3, 0.4, 0.25])]
        colors[face == FACE_IRIS] = iris[int(rng.choice(3, p=[0.7, 0.2, 0.1]))] * rng.uniform(0.6, 1.2)
        colors[face == FACE_PUPIL] = 0.04
        colors[face == FACE_BROW] = hair_color * 0.8
        colors[face == FACE_LIPS] = skin * np.array([0.85, 0.6, 0.6]) * rng.uniform(0.8, 1.0)
    return np.clip(colors, 0.0, 1.0)


# ------------------------------------------------------------------------------------------------ occluders


@dataclass(frozen=True)
class Occluder:
    shape: str
    vertices: np.ndarray  # (V, 3) camera frame, metres
    faces: np.ndarray  # (F, 3)
    colors: np.ndarray  # (V, 3) RGB [0, 1]
    center: np.ndarray  # (3,) camera frame, metres
    size: float  # largest extent, metres


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def occluder_mesh(
    rng: np.random.Generator,
    size: float,
    center: np.ndarray,
    shape: str | None = None,
    *,
    color_rng: np.random.Generator | None = None,
) -> Occluder:
    """A random textured primitive of largest extent ~``size`` metres centred at ``center`` (camera frame).

    The texture draws from ``color_rng`` (default: ``rng``), the geometry from ``rng``."""
    import trimesh
    import trimesh.remesh

    shape = shape if shape is not None else OCCLUDER_SHAPES[int(rng.integers(len(OCCLUDER_SHAPES)))]
    a = rng.uniform(0.3, 1.0, 3)
    if shape == "box":
        mesh = trimesh.creation.box(extents=a)
    elif shape == "board":
        mesh = trimesh.creation.box(extents=[1.0, rng.uniform(0.4, 1.2), rng.uniform(0.03, 0.08)])
    elif shape == "cylinder":
        mesh = trimesh.creation.cylinder(radius=0.5 * a[0], height=1.0, sections=24)
    elif shape == "sphere":
        mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    elif shape == "blob":
        mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
        dirs = mesh.vertices / np.linalg.norm(mesh.vertices, axis=1, keepdims=True)
        freqs = rng.normal(0, 3.0, (3, 3))
        bumps = 1.0 + 0.25 * np.sin(dirs @ freqs.T + rng.uniform(0, 6.3, 3)).sum(axis=1) / 3.0
        mesh = trimesh.Trimesh(mesh.vertices * (bumps[:, None] * a[None]), mesh.faces, process=False)
    elif shape == "capsule":
        mesh = trimesh.creation.capsule(height=1.0, radius=0.25 * a[0] + 0.1, count=[16, 16])
    elif shape == "cone":
        mesh = trimesh.creation.cone(radius=0.5 * a[0], height=1.0, sections=24)
    else:
        raise ValueError(f"unknown occluder shape {shape!r}; known: {OCCLUDER_SHAPES}")
    vertices, faces = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
    vertices = vertices - 0.5 * (vertices.min(0) + vertices.max(0))
    vertices = vertices * (1.0 / max(float(np.ptp(vertices, axis=0).max()), 1e-9))  # largest extent 1
    # Subdivide so that per-vertex texture patterns are resolved.
    vertices, faces = trimesh.remesh.subdivide_to_size(vertices, faces, max_edge=0.08, max_iter=6)
    rot = _small_tilt(rng) if shape == "board" else _rotation(rng)  # boards roughly face the camera
    local = vertices @ rot.T
    color_rng = rng if color_rng is None else color_rng
    colors = pattern_colors(color_rng, local, random_color(color_rng), 1.0)
    world = local * size + np.asarray(center, np.float64)[None]
    return Occluder(shape, world, faces, colors, np.asarray(center, np.float64), float(size))


def _small_tilt(rng: np.random.Generator) -> np.ndarray:
    """Rotation of a board facing the camera: a yaw/pitch/roll of at most ~30 degrees."""
    ax, ay, az = np.deg2rad(rng.uniform(-30, 30, 3))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


# ------------------------------------------------------------------------------------------------ backgrounds


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """(H, W) smooth random field in [0, 1] (bilinear upsampling of a coarse grid)."""
    import cv2

    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def background(
    rng: np.random.Generator,
    width: int,
    height: int,
    focal: tuple[float, float],
    princpt: tuple[float, float],
    cam_rot: np.ndarray,
    cam_height: float,
) -> np.ndarray:
    """(H, W, 3) uint8 procedural background consistent with the camera.

    A textured ground plane in perspective (``cam_rot`` = world-to-camera rotation, world y down, ground at
    y = 0, camera ``cam_height`` above it) and, above the horizon, a wall / sky of gradients,
    blocks and noise.
    """
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    u, v = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    rays = np.stack([(u - princpt[0]) / focal[0], (v - princpt[1]) / focal[1], np.ones_like(u)], axis=-1)
    rays_w = rays @ cam_rot.astype(np.float32)  # camera -> world directions (R^T d for row vectors)
    down = rays_w[..., 1]
    ground = down > 1e-3
    lam = np.where(ground, cam_height / np.maximum(down, 1e-3), 0.0).astype(np.float32)
    gx, gz = lam * rays_w[..., 0], lam * rays_w[..., 2]

    upper_a, upper_b = random_color(rng), random_color(rng)
    t = (v / max(height - 1, 1))[..., None]
    img = (upper_a[None, None] * (1 - t) + upper_b[None, None] * t).astype(np.float32)
    if kind == "blocks":
        for _ in range(int(rng.integers(4, 14))):
            x0, x1 = np.sort(rng.integers(0, width, 2))
            y0 = int(rng.integers(0, height))
            img[: max(y0, 1), x0 : x1 + 1] = random_color(rng)
    elif kind == "room":
        for x in np.sort(rng.integers(0, width, int(rng.integers(1, 4)))):
            img[:, x : x + int(rng.integers(2, 12))] = random_color(rng, val=(0.2, 0.9))
    noise = _smooth_noise(rng, height, width, int(rng.integers(3, 12)))[..., None]
    img = img * (0.75 + 0.5 * noise * rng.uniform(0.2, 1.0))

    # Ground: tiles, stripes or noise in world coordinates (perspective-correct), fading with distance.
    g_a, g_b = random_color(rng, val=(0.2, 0.9)), random_color(rng, val=(0.1, 0.8))
    tile = rng.uniform(0.3, 1.5)
    style = int(rng.integers(3))
    if style == 0:
        mix = ((np.floor(gx / tile) + np.floor(gz / tile)) % 2)[..., None]
    elif style == 1:
        mix = (np.floor(gz / tile) % 2)[..., None]
    else:
        mix = _smooth_noise(rng, height, width, 8)[..., None]
    fade = np.clip(lam / 60.0, 0.0, 1.0)[..., None]
    ground_img = (g_a * (1 - mix) + g_b * mix) * (1 - 0.5 * fade) + 0.5 * fade * img
    img = np.where(ground[..., None], ground_img, img)
    img = img + rng.uniform(0.0, 0.03) * rng.standard_normal(img.shape, dtype=np.float32)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# ------------------------------------------------------------------------------------------------ lighting

LIGHTING_KINDS = ("sun", "overcast", "indoor", "low_sun")
_LIGHTING_WEIGHTS = (0.35, 0.25, 0.25, 0.15)
# Approximate sRGB colour of a black body (white balance of daylight ~6500 K), by temperature in kelvin.
_KELVIN = np.array([2000.0, 2500.0, 3000.0, 3500.0, 4000.0, 5000.0, 5500.0, 6500.0, 7500.0, 9000.0, 12000.0])
_KELVIN_RGB = np.array(
    [
        [1.00, 0.54, 0.17],
        [1.00, 0.63, 0.30],
        [1.00, 0.71, 0.42],
        [1.00, 0.77, 0.54],
        [1.00, 0.82, 0.64],
        [1.00, 0.89, 0.81],
        [1.00, 0.92, 0.87],
        [1.00, 0.97, 0.98],
        [0.93, 0.93, 1.00],
        [0.84, 0.88, 1.00],
        [0.76, 0.83, 1.00],
    ]
)
LUMA = np.array([0.2126, 0.7152, 0.0722])  # luminance of linear RGB


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.power(np.clip(c, 0.0, 1.0), 2.2)


def kelvin_to_rgb(kelvin: float) -> np.ndarray:
    """(3,) linear RGB of a light of colour temperature ``kelvin`` (2000-12000 K), luminance 1."""
    srgb = np.array([np.interp(kelvin, _KELVIN, _KELVIN_RGB[:, c]) for c in range(3)])
    lin = srgb_to_linear(srgb)
    return lin / float(lin @ LUMA)


@dataclass(frozen=True)
class Lighting:
    """Scene lighting, camera frame; colours are linear RGB radiances (1 = a white surface facing the light
    at full exposure)."""

    kind: str  # one of LIGHTING_KINDS
    key_dir: np.ndarray  # (3,) unit vector from the surface towards the key light (sun / lamp)
    key_rgb: np.ndarray  # (3,)
    fill_dir: np.ndarray  # (3,) a weaker second light
    fill_rgb: np.ndarray  # (3,)
    up: np.ndarray  # (3,) unit world up (against gravity) in the camera frame
    sky_rgb: np.ndarray  # (3,) ambient light from above (hemisphere)
    ground_rgb: np.ndarray  # (3,) ambient light from below

    def describe(self) -> dict[str, object]:
        """JSON-friendly summary for the dataset's ``images`` entry."""
        return {
            "kind": self.kind,
            "key_dir": self.key_dir,
            "key_rgb": self.key_rgb,
            "sky_rgb": self.sky_rgb,
            "ground_rgb": self.ground_rgb,
        }


def _light_direction(elevation: float, azimuth: float, cam_rot: np.ndarray) -> np.ndarray:
    """Camera-frame unit vector towards a light at ``elevation`` above the horizon and ``azimuth`` from
    the camera's back (0: the light is behind the camera, lighting what the camera sees; pi: backlight).
    World frame: y down, the camera looks along +z (tilted by its pitch)."""
    d_world = np.array(
        [np.sin(azimuth) * np.cos(elevation), -np.sin(elevation), -np.cos(azimuth) * np.cos(elevation)]
    )
    d = cam_rot @ d_world
    return d / np.linalg.norm(d)


def sample_lighting(
    rng: np.random.Generator, cam_rot: np.ndarray, background_rgb: np.ndarray | None = None
) -> Lighting:
    """A random lighting: sun, overcast sky, indoor lamps or a low (evening) sun, with a random direction,
    intensity and colour temperature. ``background_rgb`` ((3,) mean sRGB of the background, [0, 1]) tints
    the ambient light and sets the exposure, so that people are lit like the scene behind them.
    ``cam_rot`` = world-to-camera rotation."""
    kind = LIGHTING_KINDS[int(np.searchsorted(np.cumsum(_LIGHTING_WEIGHTS), rng.random()))]
    # Mostly lit from the camera's side, sometimes from the side or behind (rim light).
    azimuth = rng.normal(0.0, 0.9) if rng.random() < 0.75 else rng.uniform(-np.pi, np.pi)
    if kind == "sun":
        elev, key_k, key_i = rng.uniform(20, 70), rng.uniform(4800, 6200), rng.uniform(1.0, 1.8)
        sky_k, sky_i, ground_i = rng.uniform(8000, 12000), rng.uniform(0.25, 0.5), rng.uniform(0.1, 0.25)
    elif kind == "overcast":
        elev, key_k, key_i = rng.uniform(45, 85), rng.uniform(6000, 7500), rng.uniform(0.15, 0.5)
        sky_k, sky_i, ground_i = rng.uniform(6500, 9000), rng.uniform(0.7, 1.2), rng.uniform(0.2, 0.4)
    elif kind == "indoor":
        elev, key_k, key_i = rng.uniform(10, 60), rng.uniform(2700, 4500), rng.uniform(0.7, 1.4)
        sky_k, sky_i, ground_i = (
            key_k + rng.uniform(-300, 1500),
            rng.uniform(0.25, 0.55),
            rng.uniform(0.1, 0.3),
        )
    else:  # low_sun
        elev, key_k, key_i = rng.uniform(3, 15), rng.uniform(2200, 3300), rng.uniform(0.9, 1.6)
        sky_k, sky_i, ground_i = rng.uniform(7500, 12000), rng.uniform(0.2, 0.4), rng.uniform(0.08, 0.2)
    key_dir = _light_direction(np.deg2rad(elev), azimuth, cam_rot)
    fill_dir = _light_direction(
        np.deg2rad(rng.uniform(0, 40)), azimuth + rng.choice([-1, 1]) * rng.uniform(1.0, 2.5), cam_rot
    )
    fill_rgb = kelvin_to_rgb(rng.uniform(3000, 9000)) * rng.uniform(0.0, 0.35) * key_i
    sky = kelvin_to_rgb(sky_k) * sky_i
    ground = kelvin_to_rgb(rng.uniform(3000, 6000)) * ground_i
    gain = 1.0
    if background_rgb is not None:  # harmonise with the background: its tint and its brightness
        bg = srgb_to_linear(np.asarray(background_rgb, np.float64))
        lum = max(float(bg @ LUMA), 1e-3)
        tint = np.clip(bg / lum, 0.5, 2.0) ** 0.5
        sky, ground = sky * tint, ground * tint**1.5
        gain = float(np.clip((lum / 0.2) ** 0.35, 0.45, 1.3))
    gain *= rng.uniform(0.8, 1.2)  # exposure
    up = cam_rot @ np.array([0.0, -1.0, 0.0])
    return Lighting(
        kind,
        key_dir,
        kelvin_to_rgb(key_k) * key_i * gain,
        fill_dir,
        fill_rgb * gain,
        up,
        sky * gain,
        ground * gain,
    )


def shade_vertices(albedo: np.ndarray, normals: np.ndarray, light: Lighting) -> np.ndarray:
    """(V, 3) linear RGB radiance in [0, 1] of surfaces of sRGB colour ``albedo`` (V, 3) with unit
    ``normals`` (V, 3, camera frame): hemisphere ambient plus two directional lights with a soft (wrapped)
    Lambert term. Rendered with only an ambient light of 1, the renderer outputs it gamma-encoded."""
    wrap = 0.15
    up = 0.5 + 0.5 * (normals @ light.up)
    ambient = light.ground_rgb[None] + (light.sky_rgb - light.ground_rgb)[None] * up[:, None]
    key = np.clip((normals @ light.key_dir + wrap) / (1 + wrap), 0.0, None)
    fill = np.clip((normals @ light.fill_dir + wrap) / (1 + wrap), 0.0, None)
    radiance = ambient + key[:, None] * light.key_rgb[None] + fill[:, None] * light.fill_rgb[None]
    return np.clip(srgb_to_linear(albedo) * radiance, 0.0, 1.0)
