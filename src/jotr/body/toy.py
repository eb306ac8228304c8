"""A procedural, licence-free body model in SMPL's file format, for tests and examples.

The body is a set of capsules (one per SMPL joint) around a T-pose skeleton in SMPL's canonical frame: metres,
Y up, facing +Z, the body's left at +X, pelvis at the origin, about 1.71 m tall. Every capsule is a closed,
consistently oriented triangle mesh made of vertex rings around its bone; a ring sits exactly on the joint
that owns the capsule, and ``J_regressor`` averages that ring, so the regressed rest joints are exactly the
skeleton.

* :func:`make_smpl_like_arrays` gives the arrays of an SMPL model file (same keys, shapes and conventions).
  With the default 6890 vertices, the face landmarks sit at SMPL's vertex ids (nose 331, eyes 2802/6262,
  ears 3489/3990, head top 411), so the SMPL code paths select anatomically correct points.
* :func:`write_smpl_model` writes it as a file that ``smplx`` and :class:`jotr.body.smpl.SMPLBody` load
  (``.pkl``: a plain pickle of numpy arrays and a scipy.sparse ``J_regressor``, no chumpy; or ``.npz``).
* :func:`write_regressor_files` writes ``J_regressor_h36m_correct.npy`` and ``J_regressor_extra.npy``
  (the official files' layouts) that regress the matching anatomical places of the procedural body.
* :class:`ToyBody` is the same body with few vertices (default 600) for fast tests.

Content is deterministic for a seed (the seed drives the pose correctives and any betas beyond the tenth).
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse

from jotr.body.smpl import LANDMARK_NAMES, SMPL_LANDMARK_IDS, SMPL_NUM_VERTICES, SMPLBody
from jotr.utils.io import atomic_write_bytes

__all__ = [
    "SMPL_PARENTS",
    "LANDMARK_NAMES",
    "SMPL_LANDMARK_IDS",
    "make_smpl_like_arrays",
    "procedural_landmark_ids",
    "write_smpl_model",
    "write_regressor_files",
    "write_smpl_model_folder",
    "ToyBody",
]

SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
NUM_JOINTS = 24
NUM_POSE_BASIS = 9 * (NUM_JOINTS - 1)  # 207
# SMPL files store the root's parent as uint32(-1).
_KINTREE_ROOT = np.uint32(0xFFFFFFFF)


# T-pose joints of the left side and the centre line, metres, pelvis at the origin (right = mirrored x).
_JOINTS_LEFT_AND_CENTRE = {
    0: (0.0, 0.0, 0.0),
    1: (0.07, -0.09, -0.01),
    3: (0.0, 0.11, -0.03),
    4: (0.10, -0.47, 0.0),
    6: (0.0, 0.25, -0.02),
    7: (0.09, -0.87, -0.04),
    9: (0.0, 0.31, 0.0),
    10: (0.11, -0.93, 0.08),
    12: (0.0, 0.51, -0.04),
    13: (0.08, 0.42, -0.02),
    15: (0.0, 0.58, 0.01),
    16: (0.18, 0.45, -0.03),
    18: (0.44, 0.43, -0.05),
    20: (0.69, 0.44, -0.05),
    22: (0.78, 0.43, -0.06),
}
_LEFT_TO_RIGHT = {1: 2, 4: 5, 7: 8, 10: 11, 13: 14, 16: 17, 18: 19, 20: 21, 22: 23}
_CENTRE = (0, 3, 6, 9, 12, 15)


def _rest_joints() -> np.ndarray:
    """(24, 3) T-pose joints, canonical frame."""
    joints = np.zeros((NUM_JOINTS, 3))
    for j, p in _JOINTS_LEFT_AND_CENTRE.items():
        joints[j] = p
    for left, right in _LEFT_TO_RIGHT.items():
        joints[right] = joints[left] * (-1.0, 1.0, 1.0)
    return joints


@dataclass(frozen=True)
class _Segment:
    owner: int  # joint whose rotation moves the capsule (its ring at s = 0 sits on this joint)
    end: tuple[float, float, float]  # axis end point, metres
    rx: float  # half-width along the frame's u axis
    rz: float  # half-width along w = d x u
    cap: float  # length of the rounded caps beyond both ends


def _segments(joints: np.ndarray) -> list[_Segment]:
    """Capsules of the centre line and the left side; the right side is mirrored from the left."""

    def seg(owner, end, rx, rz=None, cap=None):
        rz = rx if rz is None else rz
        cap = 0.5 * (rx + rz) if cap is None else cap
        return _Segment(owner, tuple(float(v) for v in end), rx, rz, cap)

    J = joints
    return [
        seg(0, J[3], 0.15, 0.10, 0.11),  # lower torso; the bottom cap covers the hips
        seg(3, J[6], 0.14, 0.10, 0.05),
        seg(6, J[9], 0.15, 0.10, 0.05),
        seg(9, J[12], 0.16, 0.095, 0.05),  # chest
        seg(12, J[15], 0.05, 0.05, 0.04),  # neck
        seg(15, J[15] + (0.0, 0.075, 0.0), 0.08, 0.095, 0.085),  # head: top of the skull at y = 0.74
        seg(1, J[4], 0.075),  # thigh
        seg(4, J[7], 0.05),  # shin
        seg(7, J[10], 0.04),  # foot
        seg(10, J[10] + (0.0, -0.005, 0.07), 0.045, 0.02, 0.03),  # toes
        seg(13, J[16], 0.05),  # collar
        seg(16, J[18], 0.045),  # upper arm
        seg(18, J[20], 0.037),  # forearm
        seg(20, J[22], 0.045, 0.015, 0.02),  # palm (flat: thin along y)
        seg(22, J[22] + (0.08, 0.0, 0.0), 0.04, 0.012, 0.02),  # fingers
    ]


def _frame(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (u, w) with (u, w, d) right-handed; u prefers the body's x axis, else z."""
    ref = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    u = ref - ref.dot(d) * d
    u /= np.linalg.norm(u)
    return u, np.cross(d, u)


def _ring_stations(length: float, cap: float, rho: float) -> tuple[np.ndarray, np.ndarray]:
    """Axial positions s of the rings (including exactly 0 and ``length``) and their radius factors."""
    n_cap = max(0, int(round(rho * cap * np.pi / 2)) - 1)
    n_body = max(0, int(round(rho * length)) - 1)
    ang = np.linspace(0.0, np.pi / 2, n_cap + 2)[1:-1]  # strictly inside the cap
    cap_s = cap * np.cos(ang)  # distance beyond the end, decreasing towards the joint ring
    cap_f = np.sin(ang)
    body = np.linspace(0.0, length, n_body + 2)
    s = np.concatenate([-cap_s, body, length + cap_s[::-1]])
    f = np.concatenate([cap_f, np.ones_like(body), cap_f[::-1]])
    return s, f


def _stitch(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int, int]]:
    """Triangles between two rings (vertex ids, same angular start, b further along the axis); outward."""
    n, m = len(a), len(b)
    tris, i, j = [], 0, 0
    while i < n or j < m:
        if j >= m or (i < n and (i + 1) / n <= (j + 1) / m):
            tris.append((a[i], a[(i + 1) % n], b[j % m]))
            i += 1
        else:
            tris.append((a[i % n], b[(j + 1) % m], b[j]))
            j += 1
    return tris


@dataclass
class _Mesh:
    vertices: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3)
    owner: np.ndarray  # (V,) joint owning the vertex's capsule
    s_rel: np.ndarray  # (V,) axial position / capsule radius (< 0: inside the parent's region)
    centre: np.ndarray  # (V, 3) point on the capsule axis at the vertex's station
    joint_rings: dict[int, np.ndarray]  # joint -> vertex ids of its ring at s = 0


def _build_capsule(seg: _Segment, start: np.ndarray, counts: list[int], stations, offset: int):
    s, f = stations
    end = np.asarray(seg.end)
    d = end - start
    length = float(np.linalg.norm(d))
    d = d / length
    u, w = _frame(d)
    verts, centres, svals, rings = [], [], [], []
    # bottom pole
    verts.append(start - seg.cap * d)
    centres.append(start - seg.cap * d)
    svals.append(-seg.cap)
    idx = offset + 1
    for si, fi, n in zip(s, f, counts):
        theta = 2 * np.pi * np.arange(n) / n
        c = start + si * d
        ring = c + fi * (seg.rx * np.cos(theta)[:, None] * u + seg.rz * np.sin(theta)[:, None] * w)
        verts.extend(ring)
        centres.extend([c] * n)
        svals.extend([si] * n)
        rings.append(np.arange(idx, idx + n))
        idx += n
    verts.append(end + seg.cap * d)
    centres.append(end + seg.cap * d)
    svals.append(length + seg.cap)
    top = idx
    faces = [(offset, int(r1), int(r0)) for r0, r1 in zip(rings[0], np.roll(rings[0], -1))]
    for a, b in zip(rings[:-1], rings[1:]):
        faces.extend(_stitch(a, b))
    faces.extend((int(r0), int(r1), top) for r0, r1 in zip(rings[-1], np.roll(rings[-1], -1)))
    joint_ring = rings[int(np.flatnonzero(np.asarray(s) == 0.0)[0])]
    radius = 0.5 * (seg.rx + seg.rz)
    return np.asarray(verts), np.asarray(faces), np.asarray(centres), np.asarray(svals) / radius, joint_ring


def _plan(segments, joints, rho):
    """Ring stations and per-ring vertex counts of every segment at density ``rho`` (vertices per metre)."""
    plan = []
    for seg in segments:
        length = float(np.linalg.norm(np.asarray(seg.end) - joints[seg.owner]))
        stations = _ring_stations(length, seg.cap, rho)
        per = 2 * np.pi * np.sqrt(0.5 * (seg.rx**2 + seg.rz**2))
        if seg.owner in _CENTRE:  # a multiple of 4: vertices on the mirror plane, front and back
            around = 4 * max(2, int(round(rho * per / 4)))
        else:
            around = max(6, int(round(rho * per)))
        plan.append((stations, [around] * len(stations[0])))
    return plan


def _plan_size(segments, plan) -> int:
    total = 0
    for seg, (_, counts) in zip(segments, plan):
        k = 2 + sum(counts)
        total += k if seg.owner in _CENTRE else 2 * k
    return total


def _build_mesh(num_vertices: int) -> _Mesh:
    joints = _rest_joints()
    segments = _segments(joints)
    if _plan_size(segments, _plan(segments, joints, 0.0)) > num_vertices:
        raise ValueError(
            f"num_vertices={num_vertices} is too small for the procedural body "
            f"(minimum {_plan_size(segments, _plan(segments, joints, 0.0))})"
        )
    lo, hi = 0.0, 1.0
    while _plan_size(segments, _plan(segments, joints, hi)) <= num_vertices:
        hi *= 2
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if _plan_size(segments, _plan(segments, joints, mid)) <= num_vertices:
            lo = mid
        else:
            hi = mid
    plan = _plan(segments, joints, lo)
    remainder = num_vertices - _plan_size(segments, plan)
    # Spread the remainder over the rings, keeping the mesh symmetric: +2 on a centre ring (even counts are
    # mirror-symmetric), +1 on each ring of a mirrored pair. An odd total leaves one asymmetric ring.
    slots = [(i, r) for i in range(len(segments)) for r in range(len(plan[i][1]))]
    k = 0
    while remainder >= 2:
        i, r = slots[k % len(slots)]
        plan[i][1][r] += 2 if segments[i].owner in _CENTRE else 1
        remainder -= 2
        k += 1
    if remainder:
        plan[0][1][0] += 1

    verts, faces, owner, s_rel, centres, rings = [], [], [], [], [], {}
    offset = 0
    mirror = np.array([-1.0, 1.0, 1.0])
    for seg, (stations, counts) in zip(segments, plan):
        copies = [(seg.owner, False)]
        if seg.owner not in _CENTRE:
            copies.append((_LEFT_TO_RIGHT[seg.owner], True))
        for joint, flip in copies:
            # The right capsule is the left one mirrored (reversed winding keeps normals outward),
            # so the mesh is exactly left/right symmetric.
            v, f, c, sr, ring = _build_capsule(seg, joints[seg.owner], counts, stations, offset)
            if flip:
                v, f, c = v * mirror, f[:, ::-1], c * mirror
            verts.append(v)
            faces.append(f)
            centres.append(c)
            s_rel.append(sr)
            owner.append(np.full(len(v), joint))
            rings[joint] = ring
            offset += len(v)
    mesh = _Mesh(
        vertices=np.concatenate(verts),
        faces=np.concatenate(faces).astype(np.int64),
        owner=np.concatenate(owner),
        s_rel=np.concatenate(s_rel),
        centre=np.concatenate(centres),
        joint_rings=rings,
    )
    assert len(mesh.vertices) == num_vertices
    return mesh


def _landmark_targets(joints: np.ndarray) -> dict[str, np.ndarray]:
    """Anatomical target points of the face landmarks on the procedural head."""
    h = joints[15]
    return {
        "Nose": h + (0.0, 0.05, 0.11),
        "L_Eye": h + (0.032, 0.085, 0.11),
        "R_Eye": h + (-0.032, 0.085, 0.11),
        "L_Ear": h + (0.09, 0.06, 0.0),
        "R_Ear": h + (-0.09, 0.06, 0.0),
        "Head_top": h + (0.0, 0.2, 0.0),
    }


def _nearest_head_vertices(vertices: np.ndarray, owner: np.ndarray, joints: np.ndarray) -> dict[str, int]:
    """Distinct head vertices nearest to the landmark targets; mid-line landmarks on the mirror plane when it
    holds vertices, right landmarks the mirror images of the left ones."""
    head = np.flatnonzero(owner == 15)
    x = vertices[head, 0]
    eps = 1e-9
    out: dict[str, int] = {}

    def nearest(p, candidates):
        free = candidates[~np.isin(head[candidates], list(out.values()))]
        if len(free) == 0:
            raise ValueError("the procedural head has too few vertices for distinct landmarks")
        return int(head[free[np.argmin(np.linalg.norm(vertices[head[free]] - p, axis=1))]])

    everything = np.arange(len(head))
    mid = np.flatnonzero(np.abs(x) < eps)
    left = np.flatnonzero(x > eps)
    targets = _landmark_targets(joints)
    for name in ("Nose", "Head_top"):
        out[name] = nearest(targets[name], mid if len(mid) else everything)
    for name in ("L_Eye", "L_Ear"):
        out[name] = nearest(targets[name], left)
        out["R_" + name[2:]] = nearest(vertices[out[name]] * (-1.0, 1.0, 1.0), everything)
    return {name: out[name] for name in LANDMARK_NAMES}


def procedural_landmark_ids(arrays: dict[str, np.ndarray]) -> dict[str, int]:
    """Vertex ids of nose, eyes, ears and head top on a procedural body (any vertex count)."""
    v = np.asarray(arrays["v_template"])
    weights = np.asarray(arrays["weights"])
    owner = np.argmax(weights, axis=1)
    # Blended cap vertices of the head capsule have weight 0.5; ties resolve to the lower joint id (the neck),
    # so take every vertex with any head weight.
    owner = np.where(weights[:, 15] > 0, 15, owner)
    return _nearest_head_vertices(v, owner, _rest_joints())


def _permute_landmarks(mesh: _Mesh, joints: np.ndarray) -> _Mesh:
    """Reorder vertices so that the landmarks sit at SMPL's vertex ids (6890-vertex bodies only)."""
    found = _nearest_head_vertices(mesh.vertices, mesh.owner, joints)
    if len(set(found.values())) != len(found):
        raise AssertionError(f"procedural landmarks collide: {found}")
    perm = np.arange(len(mesh.vertices))  # perm[new] = old
    for name, target in SMPL_LANDMARK_IDS.items():
        src = int(np.flatnonzero(perm == found[name])[0])
        perm[[src, target]] = perm[[target, src]]
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(len(perm))
    return _Mesh(
        vertices=mesh.vertices[perm],
        faces=inverse[mesh.faces],
        owner=mesh.owner[perm],
        s_rel=mesh.s_rel[perm],
        centre=mesh.centre[perm],
        joint_rings={j: inverse[r] for j, r in mesh.joint_rings.items()},
    )


def _shape_directions(
    mesh: _Mesh, joints: np.ndarray, num_betas: int, rng: np.random.Generator
) -> np.ndarray:
    """(V, 3, num_betas) linear shape directions (per unit beta)."""
    v, c, own = mesh.vertices, mesh.centre, mesh.owner
    V = len(v)
    radial = v - c
    legs = np.isin(own, (1, 2, 4, 5, 7, 8, 10, 11))
    arms = np.isin(own, (13, 14, 16, 17, 18, 19, 20, 21, 22, 23))
    beyond_shoulder = arms & (np.abs(v[:, 0]) > joints[16, 0])
    upper = v[:, 1] > joints[6, 1]
    head_neck = np.isin(own, (12, 15))
    hip_y = joints[1, 1]
    side = np.sign(v[:, 0])
    dirs = np.zeros((V, 3, 10))
    dirs[:, :, 0] = 0.03 * v  # overall size (height ~ +5 cm per unit)
    dirs[:, :, 1] = 0.12 * radial  # girth
    dirs[legs, 1, 2] = 0.05 * np.minimum(v[legs, 1] - hip_y, 0.0)  # leg length
    dirs[beyond_shoulder, 0, 3] = 0.06 * (
        v[beyond_shoulder, 0] - side[beyond_shoulder] * joints[16, 0]
    )  # arms
    dirs[arms, 0, 4] = 0.02 * side[arms]  # shoulder width
    dirs[upper, 1, 5] = 0.03  # torso length (everything above the mid spine moves up)
    belly = np.isin(own, (0, 3, 6))
    dirs[belly, 2, 6] = 0.25 * np.maximum(radial[belly, 2], 0.0)  # belly (front only)
    head = own == 15
    dirs[head, :, 7] = 0.08 * (v[head] - joints[15])  # head size
    dirs[legs, 0, 8] = 0.015 * side[legs]  # hip width
    dirs[head_neck | upper & (v[:, 1] > joints[12, 1]), 1, 9] = 0.02  # neck length
    if num_betas <= 10:
        return dirs[:, :, :num_betas]
    extra = dirs @ (0.3 * rng.standard_normal((10, num_betas - 10)))  # further, smaller mixtures
    return np.concatenate([dirs, extra], axis=2)


# Gendered variants of the procedural body: fixed betas added to the template (size, girth, leg length, arm
# length, shoulder width, torso length, belly, head size, hip width, neck length).
GENDER_BETAS = {
    "neutral": (0.0,) * 10,
    "male": (1.0, 0.4, 0.5, 0.5, 1.0, 0.5, 0.0, 0.3, -0.5, 0.3),
    "female": (-1.0, -0.3, 0.0, -0.3, -1.0, -0.3, 0.0, -0.3, 1.0, 0.0),
}


def make_smpl_like_arrays(
    num_vertices: int = 6890, num_betas: int = 10, seed: int = 0, *, gender: str = "neutral"
) -> dict[str, np.ndarray]:
    """Arrays of an SMPL model file for the procedural body.

    Keys and shapes (as in the real files): ``v_template`` (V, 3), ``shapedirs`` (V, 3, num_betas),
    ``posedirs`` (V, 3, 207), ``J_regressor`` (24, V) dense, ``weights`` (V, 24), ``kintree_table`` (2, 24)
    uint32 with SMPL's parents (root = 0xFFFFFFFF), ``f`` (F, 3) uint32 faces. All float arrays are float64.
    ``gender`` adds fixed betas (``GENDER_BETAS``) to the template: male is larger, female smaller.
    """
    if num_betas < 1:
        raise ValueError(f"num_betas must be >= 1, got {num_betas}")
    if gender not in GENDER_BETAS:
        raise ValueError(f"gender must be one of {sorted(GENDER_BETAS)}, got {gender!r}")
    rng = np.random.default_rng(seed)
    joints = _rest_joints()
    mesh = _build_mesh(int(num_vertices))
    if num_vertices == SMPL_NUM_VERTICES:
        mesh = _permute_landmarks(mesh, joints)
    V = len(mesh.vertices)

    # Skinning: each capsule follows its joint; the part at and below the joint ring blends 50/50 with the
    # parent, ramping to the joint alone over one capsule radius.
    weights = np.zeros((V, NUM_JOINTS))
    alpha = 0.5 + 0.5 * np.clip(mesh.s_rel, 0.0, 1.0) ** 2 * (3 - 2 * np.clip(mesh.s_rel, 0.0, 1.0))
    parent = np.array([SMPL_PARENTS[j] for j in mesh.owner])
    root = parent < 0
    weights[np.arange(V), mesh.owner] = np.where(root, 1.0, alpha)
    weights[np.arange(V)[~root], parent[~root]] += 1.0 - alpha[~root]

    J_regressor = np.zeros((NUM_JOINTS, V))
    for j, ring in mesh.joint_rings.items():
        J_regressor[j, ring] = 1.0 / len(ring)

    # Pose correctives: small (a few mm for a 90 degree bend), on the vertices each joint moves.
    posedirs = np.zeros((V, 3, NUM_POSE_BASIS))
    for j in range(1, NUM_JOINTS):
        mask = np.clip(weights[:, j] + weights[:, SMPL_PARENTS[j]], 0.0, 1.0)
        block = 0.002 * rng.standard_normal((V, 3, 9)) * mask[:, None, None]
        posedirs[:, :, 9 * (j - 1) : 9 * j] = block

    kintree = np.zeros((2, NUM_JOINTS), dtype=np.uint32)
    kintree[0] = [_KINTREE_ROOT if p < 0 else p for p in SMPL_PARENTS]
    kintree[1] = np.arange(NUM_JOINTS)
    shapedirs = _shape_directions(mesh, joints, max(num_betas, 10), rng)
    v_template = mesh.vertices + shapedirs[:, :, :10] @ np.asarray(GENDER_BETAS[gender])
    return {
        "v_template": v_template,
        "shapedirs": shapedirs[:, :, :num_betas],
        "posedirs": posedirs,
        "J_regressor": J_regressor,
        "weights": weights,
        "kintree_table": kintree,
        "f": mesh.faces.astype(np.uint32),
    }


def write_smpl_model(
    path: str | Path,
    arrays: dict[str, np.ndarray] | None = None,
    fmt: str | None = None,
    *,
    num_vertices: int = 6890,
    num_betas: int = 10,
    seed: int = 0,
    gender: str = "neutral",
) -> Path:
    """Write an SMPL model file (atomically). ``fmt`` is "pkl" or "npz" (default: from the suffix).

    ``.pkl`` is a plain pickle of numpy arrays with ``J_regressor`` as ``scipy.sparse.csc_matrix`` (like the
    official files, minus chumpy), loadable by ``smplx.SMPL(model_path=...)``. ``.npz`` holds dense arrays.
    Without ``arrays``: the procedural body of ``make_smpl_like_arrays`` with the keyword arguments.
    """
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".")
    if fmt not in ("pkl", "npz"):
        raise ValueError(f"fmt must be 'pkl' or 'npz', got {fmt!r} for {path}")
    if arrays is None:
        arrays = make_smpl_like_arrays(num_vertices, num_betas, seed, gender=gender)
    if fmt == "pkl":
        data = dict(arrays)
        data["J_regressor"] = scipy.sparse.csc_matrix(np.asarray(arrays["J_regressor"]))
        data["bs_style"] = "lbs"
        data["bs_type"] = "lrotmin"
        payload = pickle.dumps(data, protocol=2)
    else:
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
        payload = buf.getvalue()
    atomic_write_bytes(path, payload)
    return path


def _extra_and_h36m_rows(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    V = len(arrays["v_template"])
    jr = np.asarray(arrays["J_regressor"])
    marks = SMPL_LANDMARK_IDS if V == SMPL_NUM_VERTICES else procedural_landmark_ids(arrays)

    def vertex(name):
        row = np.zeros(V)
        row[marks[name]] = 1.0
        return row

    # h36m17 (names in jotr.body.joint_sets.H36M17)
    h36m = np.stack(
        [
            jr[0],
            jr[2],
            jr[5],
            jr[8],
            jr[1],
            jr[4],
            jr[7],
            0.5 * (jr[0] + jr[12]),
            jr[12],
            vertex("Nose"),
            vertex("Head_top"),
            jr[16],
            jr[18],
            jr[20],
            jr[17],
            jr[19],
            jr[21],
        ]
    )
    # J_regressor_extra rows as the official file: R_Hip, L_Hip, Neck (LSP), Head top (LSP), Pelvis (MPII),
    # Thorax (MPII), Spine (H36M), Jaw (H36M), Head (H36M).
    extra = np.stack(
        [
            jr[2],
            jr[1],
            jr[12],
            vertex("Head_top"),
            jr[0],
            0.5 * (jr[9] + jr[12]),
            jr[6],
            0.5 * (jr[15] + vertex("Nose")),
            0.5 * (jr[15] + vertex("Head_top")),
        ]
    )
    return h36m, extra


def write_regressor_files(
    folder: str | Path, num_vertices: int = 6890, arrays: dict[str, np.ndarray] | None = None
) -> tuple[Path, Path]:
    """Write ``J_regressor_h36m_correct.npy`` (17, V) and ``J_regressor_extra.npy`` (9, V; row 3 = head top)
    for the procedural body (``arrays`` or the default one with ``num_vertices``). Returns both paths."""

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if arrays is None:
        arrays = make_smpl_like_arrays(num_vertices)
    h36m, extra = _extra_and_h36m_rows(arrays)
    paths = []
    for name, arr in (("J_regressor_h36m_correct.npy", h36m), ("J_regressor_extra.npy", extra)):
        buf = io.BytesIO()
        np.save(buf, arr.astype(np.float64))
        atomic_write_bytes(folder / name, buf.getvalue())
        paths.append(folder / name)
    return paths[0], paths[1]


def write_smpl_model_folder(
    folder: str | Path,
    formats: tuple[str, ...] = ("pkl", "npz"),
    num_vertices: int = 6890,
    float_dtype: type = np.float64,
) -> Path:
    """A folder as users lay out their SMPL files: ``SMPL_{NEUTRAL,MALE,FEMALE}.{pkl,npz}`` (procedural
    genders) plus ``J_regressor_h36m_correct.npy`` and ``J_regressor_extra.npy``. Returns the folder.

    ``float_dtype=np.float32`` halves the files (~20 MB each; the official files are float64)."""
    folder = Path(folder)
    for gender in ("neutral", "male", "female"):
        arrays = make_smpl_like_arrays(num_vertices, gender=gender)
        arrays = {k: v.astype(float_dtype) if v.dtype.kind == "f" else v for k, v in arrays.items()}
        for fmt in formats:
            write_smpl_model(folder / f"SMPL_{gender.upper()}.{fmt}", arrays, fmt)
    write_regressor_files(folder, num_vertices, make_smpl_like_arrays(num_vertices))
    return folder


class ToyBody(SMPLBody):
    """The procedural body with few vertices, as an SMPL-protocol :class:`~jotr.body.base.BodyModel` ("toy").

    Same joints, parents, pose/shape sizes and joint sets as :class:`~jotr.body.smpl.SMPLBody`; the landmark
    vertices are found on its own mesh, and h36m17 uses the procedural regressor (no approximation warning).
    """

    name = "toy"

    def __init__(self, num_vertices: int = 600, num_betas: int = 10, seed: int = 0) -> None:
        arrays = make_smpl_like_arrays(num_vertices, num_betas, seed)
        h36m, extra = _extra_and_h36m_rows(arrays)
        super().__init__(
            arrays,
            num_betas=num_betas,
            landmark_ids=procedural_landmark_ids(arrays),
            j_regressor_h36m=h36m,
            j_regressor_extra=extra,
            source=f"procedural toy body ({num_vertices} vertices, seed {seed})",
        )
