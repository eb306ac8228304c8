"""SMPL body model (user-supplied model files) on top of ``smplx.lbs``.

Files: an SMPL model ``.pkl`` (official files, with or without chumpy objects; chumpy is never imported)
or ``.npz`` (dense arrays with the same keys), or a folder holding ``SMPL_{NEUTRAL,MALE,FEMALE}.{pkl,npz}``
or the official names ``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl`` /
``basicModel_{m,f}_lbs_10_207_0_v1.0.0.pkl`` (also under a ``smpl/`` sub-folder, as smplx lays them out).

All body-model arrays are non-persistent buffers: ``state_dict()`` is empty, so the licensed SMPL data never
goes into a checkpoint, while ``.to(device)`` still moves them. No axis conversion: SMPL's canonical frame is
the project's (see :mod:`jotr.body.base`); datasets' camera-frame root poses apply directly.

Joint sets (regressors over ``[vertices; skeleton]``, see :class:`~jotr.body.base.BodyModel`):

* ``smpl24``: ``J_regressor`` applied to the posed mesh (as the official JOTR code does; not the kinematic
  joints, which are ``BodyOutput.skeleton``).
* ``jotr30``: smpl24 + nose, eyes, ears (SMPL vertices 331, 2802, 6262, 3489, 3990) + head top
  (row 3 of ``J_regressor_extra.npy`` when given, else SMPL vertex 411, the top of the skull).
* ``jotr15``: rows ``JOTR15_FROM_30`` of jotr30.
* ``h36m17``: ``J_regressor_h36m_correct.npy`` when given (paper protocol). Otherwise an approximation from
  SMPL joints and vertices (see ``H36M_APPROXIMATION``), with a logged warning: MPJPE/PA-MPJPE are then NOT
  comparable with published numbers.
* ``coco17``: nose/eyes/ears from the landmark vertices, limbs from the regressed SMPL joints (shoulders,
  elbows, wrists, hips, knees, ankles). SMPL's hip joints sit higher and closer together than COCO's
  annotated hips, so hips are approximate.

Bodies with another vertex count (e.g. :class:`jotr.body.toy.ToyBody`) must pass their own ``landmark_ids``.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from smplx.lbs import lbs
from torch import Tensor

from jotr.body.base import BodyModel, BodyOutput
from jotr.body.config import BodyConfig
from jotr.body.joint_sets import COCO17, JOTR15_FROM_30, SMPL24
from jotr.errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "SMPLBody",
    "SMPL_LANDMARK_IDS",
    "SMPL_NUM_VERTICES",
    "H36M_APPROXIMATION",
    "load_smpl_arrays",
    "resolve_smpl_model_file",
]

NUM_JOINTS = 24
NUM_POSE_BASIS = 9 * (NUM_JOINTS - 1)  # 207
SMPL_NUM_VERTICES = 6890
# Landmark vertex ids on the real SMPL mesh (jotr-reference §1.10); Head_top is used when no
# J_regressor_extra.npy is given.
SMPL_LANDMARK_IDS: dict[str, int] = {
    "Nose": 331,
    "L_Eye": 2802,
    "R_Eye": 6262,
    "L_Ear": 3489,
    "R_Ear": 3990,
    "Head_top": 411,
}
LANDMARK_NAMES = tuple(SMPL_LANDMARK_IDS)
# h36m17 without J_regressor_h36m_correct.npy: each H36M joint as (SMPL joints averaged) or a landmark vertex.
H36M_APPROXIMATION: tuple[tuple[str, tuple[int, ...] | str], ...] = (
    ("Pelvis", (0,)),
    ("R_Hip", (2,)),
    ("R_Knee", (5,)),
    ("R_Ankle", (8,)),
    ("L_Hip", (1,)),
    ("L_Knee", (4,)),
    ("L_Ankle", (7,)),
    ("Torso", (0, 12)),
    ("Neck", (12,)),
    ("Nose", "Nose"),
    ("Head", "Head_top"),
    ("L_Shoulder", (16,)),
    ("L_Elbow", (18,)),
    ("L_Wrist", (20,)),
    ("R_Shoulder", (17,)),
    ("R_Elbow", (19,)),
    ("R_Wrist", (21,)),
)
_COCO_FROM_SMPL = {
    "L_Shoulder": 16,
    "R_Shoulder": 17,
    "L_Elbow": 18,
    "R_Elbow": 19,
    "L_Wrist": 20,
    "R_Wrist": 21,
    "L_Hip": 1,
    "R_Hip": 2,
    "L_Knee": 4,
    "R_Knee": 5,
    "L_Ankle": 7,
    "R_Ankle": 8,
}
_COCO_ORDER = COCO17.names
# SMPL joints whose rotation target is not trusted (ankles, feet, wrists, hands), as the official code.
UNSUPERVISED_POSE_JOINTS = (7, 8, 10, 11, 20, 21, 22, 23)

_GENDER_FILES = {
    "neutral": ("SMPL_NEUTRAL.pkl", "SMPL_NEUTRAL.npz", "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"),
    "male": ("SMPL_MALE.pkl", "SMPL_MALE.npz", "basicModel_m_lbs_10_207_0_v1.0.0.pkl"),
    "female": ("SMPL_FEMALE.pkl", "SMPL_FEMALE.npz", "basicModel_f_lbs_10_207_0_v1.0.0.pkl"),
}
_REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


_WARNED: set[tuple[str, str]] = set()


def _warn_once(key: tuple[str, str], msg: str, *args: Any) -> None:
    """Log ``msg`` once per process and ``key`` (what, model file)."""
    if key not in _WARNED:
        _WARNED.add(key)
        logger.warning(msg, *args)


def _are_smpl_landmarks(marks: Mapping[str, int]) -> bool:
    """True when ``marks`` are SMPL's own landmark vertex ids (a real SMPL mesh, not a custom body)."""
    return all(marks.get(k) == v for k, v in SMPL_LANDMARK_IDS.items())


# ---------------------------------------------------------------------------------------------- file loading


class _ChumpyStandIn:
    """Takes the place of a chumpy object while unpickling an official SMPL file; keeps its state."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple):  # (dict, slots)
            state = state[0]
        self.state = state if isinstance(state, dict) else {}

    def to_numpy(self) -> np.ndarray | None:
        x = getattr(self, "state", {}).get("x")
        return None if x is None else np.asarray(x)


# Chumpy / scipy.sparse class names an SMPL file may hold (module names vary across versions, e.g.
# ``scipy.sparse.csc`` in the official Python 2 files, ``scipy.sparse._csc`` today).
_SPARSE_CLASSES = frozenset({"csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array"})
# Side-effect-free builtins that pickles use as globals: ``object`` (copyreg._reconstructor's base class),
# ``set`` / ``frozenset`` (chumpy objects' state), ``slice`` / ``complex`` / ``bytearray`` (data values).
_BUILTIN_NAMES = frozenset({"object", "set", "frozenset", "slice", "complex", "bytearray"})


def _numpy_globals() -> dict[str, Any]:
    """The numpy callables that rebuild arrays, dtypes and scalars (by name, for numpy 1.x and 2.x)."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    return {
        "ndarray": np.ndarray,
        "dtype": np.dtype,
        "_reconstruct": multiarray._reconstruct,
        "scalar": multiarray.scalar,
        "_frombuffer": numeric._frombuffer,
    }


# (module, name) of every numpy global an array pickle (protocols 0-5, numpy 1.x or 2.x) refers to.
_NUMPY_ALLOWED = {
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("numpy.core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy.core.multiarray", "scalar"): "scalar",
    ("numpy._core.multiarray", "scalar"): "scalar",
    ("numpy.core.numeric", "_frombuffer"): "_frombuffer",
    ("numpy._core.numeric", "_frombuffer"): "_frombuffer",
}


class _SMPLUnpickler(pickle.Unpickler):
    """Unpickler for SMPL model files. It resolves exactly these globals and refuses every other one:

    * numpy array reconstruction: ``ndarray``, ``dtype``, ``multiarray._reconstruct``, ``multiarray.scalar``,
      ``numeric._frombuffer`` (under ``numpy.core`` or ``numpy._core``);
    * ``scipy.sparse`` csc/csr/coo matrices (``J_regressor``);
    * any ``chumpy.*`` class, replaced by an inert :class:`_ChumpyStandIn` (chumpy is never imported);
    * ``copyreg._reconstructor`` (how Python 2 pickled those objects), ``_codecs.encode`` (bytes written by
      Python 3 at protocol <= 2) and the builtins in ``_BUILTIN_NAMES``.

    No other numpy or scipy function is reachable (``numpy.testing`` helpers, ``numpy.load``,
    ``scipy.sparse.save_npz`` ... can run code or touch files), so a crafted file cannot execute anything."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyStandIn
        if (module, name) in _NUMPY_ALLOWED:
            return _numpy_globals()[_NUMPY_ALLOWED[module, name]]
        if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name in _SPARSE_CLASSES:
            import scipy.sparse

            cls = getattr(scipy.sparse, name, None)
            if isinstance(cls, type):
                return cls
        if module in ("copyreg", "copy_reg") and name == "_reconstructor":
            import copyreg

            return copyreg._reconstructor
        if module == "_codecs" and name == "encode":
            import codecs

            return codecs.encode
        if module in ("builtins", "__builtin__") and name in _BUILTIN_NAMES:
            import builtins

            return getattr(builtins, name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in an SMPL model file (refused)")


def _as_array(value: Any, key: str, source: str) -> np.ndarray:
    if isinstance(value, _ChumpyStandIn):
        arr = value.to_numpy()
        if arr is None:
            raise InputError(
                f"{source}: key {key!r} is a derived chumpy expression that cannot be read without chumpy; "
                "convert the file once to .npz with chumpy installed (np.savez with np.asarray of each value)"
            )
        return arr
    if hasattr(value, "toarray"):  # scipy.sparse
        return np.asarray(value.toarray())
    return np.asarray(value)


def resolve_smpl_model_file(path: str | Path, gender: str = "neutral") -> Path:
    """The model file for ``gender`` from a file or folder path (see the module docstring for the names)."""
    path = Path(path).expanduser()
    if gender not in _GENDER_FILES:
        raise InputError(f"SMPL gender must be one of {sorted(_GENDER_FILES)}, got {gender!r}")
    if path.is_dir():
        for folder in (path, path / "smpl"):
            for name in _GENDER_FILES[gender]:
                if (folder / name).is_file():
                    return folder / name
        raise InputError(
            f"SMPL model folder {path} holds no {gender} model; "
            f"expected one of {', '.join(_GENDER_FILES[gender])}"
        )
    if not path.exists():
        raise InputError(f"SMPL model file {path} does not exist")
    if path.suffix.lower() not in (".pkl", ".npz"):
        raise InputError(
            f"SMPL model file {path} must be a .pkl or .npz file (got {path.suffix or 'no suffix'!r})"
        )
    return path


def load_smpl_arrays(path: str | Path) -> dict[str, Any]:
    """Raw key -> value mapping of an SMPL ``.pkl`` (official, with chumpy stand-ins) or ``.npz`` file."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files if k in _REQUIRED_KEYS}
        except Exception as exc:  # noqa: BLE001 - OSError, ValueError, BadZipFile, EOFError ...
            raise InputError(f"cannot read SMPL model file {path}: {type(exc).__name__}: {exc}") from exc
    if path.suffix.lower() == ".pkl":
        try:
            with open(path, "rb") as fh:
                data = _SMPLUnpickler(fh, encoding="latin1").load()
        except Exception as exc:  # noqa: BLE001 - a crafted or corrupt pickle can fail in any way
            raise InputError(f"cannot read SMPL model file {path}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(data, dict):
            raise InputError(f"SMPL model file {path} must hold a dict of arrays, got {type(data).__name__}")
        return data
    raise InputError(f"SMPL model file {path} must be a .pkl or .npz file")


def _validate(raw: Mapping[str, Any], source: str, num_betas: int) -> dict[str, np.ndarray]:
    missing = [k for k in _REQUIRED_KEYS if k not in raw]
    if missing:
        raise InputError(
            f"{source}: missing key(s) {missing}; an SMPL model file needs {list(_REQUIRED_KEYS)}"
        )
    a = {k: _as_array(raw[k], k, source) for k in _REQUIRED_KEYS}
    v = a["v_template"]
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 1:
        raise InputError(f"{source}: key 'v_template' must be (V, 3), got {v.shape}")
    V = v.shape[0]
    expected = {
        "posedirs": (V, 3, NUM_POSE_BASIS),
        "J_regressor": (NUM_JOINTS, V),
        "weights": (V, NUM_JOINTS),
        "kintree_table": (2, NUM_JOINTS),
    }
    for key, shape in expected.items():
        if a[key].shape != shape:
            raise InputError(f"{source}: key {key!r} must have shape {shape}, got {a[key].shape}")
    kt = a["kintree_table"]
    if not np.issubdtype(kt.dtype, np.number) or not np.isfinite(kt).all():
        raise InputError(f"{source}: key 'kintree_table' must hold finite numbers, got dtype {kt.dtype}")
    sd = a["shapedirs"]
    if sd.ndim != 3 or sd.shape[:2] != (V, 3) or sd.shape[2] < num_betas:
        raise InputError(f"{source}: key 'shapedirs' must be ({V}, 3, >= {num_betas}), got {sd.shape}")
    f = a["f"]
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise InputError(f"{source}: key 'f' must be (F, 3) integer faces, got {f.shape} {f.dtype}")
    if f.size and (f.min() < 0 or f.max() >= V):
        raise InputError(f"{source}: key 'f' indexes vertices outside [0, {V})")
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        if not np.issubdtype(a[key].dtype, np.floating) and not np.issubdtype(a[key].dtype, np.integer):
            raise InputError(f"{source}: key {key!r} must be numeric, got dtype {a[key].dtype}")
        if not np.isfinite(a[key]).all():
            raise InputError(f"{source}: key {key!r} contains NaN or inf")
    a["shapedirs"] = sd[:, :, :num_betas]
    return a


def _load_regressor(path: str | Path, num_vertices: int, min_rows: int, what: str) -> np.ndarray:
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{what} regressor file {path} does not exist")
    if path.suffix.lower() != ".npy":
        raise InputError(f"{what} regressor file {path} must be a .npy file")
    try:
        reg = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {what} regressor file {path}: {exc}") from exc
    if reg.ndim != 2 or reg.shape[0] < min_rows or reg.shape[1] != num_vertices:
        raise InputError(
            f"{what} regressor file {path} must be "
            f"({'>= ' if min_rows != 17 else ''}{min_rows}, {num_vertices}) "
            f"for this body model, got {reg.shape}"
        )
    if not np.isfinite(reg).all():
        raise InputError(f"{what} regressor file {path} contains NaN or inf")
    return reg.astype(np.float64)


# ------------------------------------------------------------------------------------------------ the model


class SMPLBody(BodyModel):
    """SMPL as a :class:`~jotr.body.base.BodyModel`: pose (B, 24, 3, 3) + betas (B, S) -> mesh + joints.

    Build with :meth:`from_config`, :meth:`from_file` or :meth:`from_arrays` (arrays with SMPL's file keys).
    """

    name = "smpl"
    num_skeleton_joints = NUM_JOINTS
    num_pose_joints = NUM_JOINTS
    pose_joint_names = SMPL24.names

    def __init__(
        self,
        arrays: Mapping[str, Any],
        *,
        num_betas: int = 10,
        gender: str = "neutral",
        landmark_ids: Mapping[str, int] | None = None,
        j_regressor_h36m: np.ndarray | None = None,
        j_regressor_extra: np.ndarray | None = None,
        source: str = "SMPL arrays",
    ) -> None:
        super().__init__()
        a = _validate(arrays, source, num_betas)
        V = a["v_template"].shape[0]
        self.gender = gender
        self.source = source
        self.num_shape = int(num_betas)
        self._num_vertices = V
        parents = [int(p) for p in a["kintree_table"][0].astype(np.int64)]
        parents[0] = -1  # stored as uint32(-1) in the official files
        if any(not (0 <= p < j) for j, p in enumerate(parents) if j > 0):
            raise InputError(
                f"{source}: key 'kintree_table' is not a kinematic tree with parents before children"
            )
        self.parents = tuple(parents)

        def buf(name: str, value: np.ndarray, dtype=torch.float32) -> None:
            self.register_buffer(
                name, torch.as_tensor(np.ascontiguousarray(value), dtype=dtype), persistent=False
            )

        buf("v_template", a["v_template"])  # (V, 3) metres, canonical frame
        buf("shapedirs", a["shapedirs"])  # (V, 3, S)
        buf("posedirs", a["posedirs"].reshape(V * 3, NUM_POSE_BASIS).T)  # (207, V*3), smplx's layout
        buf("J_regressor", a["J_regressor"])  # (24, V)
        buf("lbs_weights", a["weights"])  # (V, 24)
        buf("parents_index", np.asarray(self.parents), torch.int64)  # (24,)
        buf("_faces", a["f"].astype(np.int64), torch.int64)  # (F, 3)

        marks = self._landmarks(landmark_ids, V, source)
        self.landmark_ids = marks
        self._register_joint_sets(a["J_regressor"], marks, j_regressor_h36m, j_regressor_extra, source)

    # -------------------------------------------------------------------------------------- constructors

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any], **kwargs: Any) -> SMPLBody:
        """From a mapping with SMPL's file keys (numpy arrays, sparse J_regressor); kwargs as ``__init__``."""
        return cls(arrays, **kwargs)

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        gender: str = "neutral",
        num_betas: int = 10,
        j_regressor_h36m: str | Path | None = None,
        j_regressor_extra: str | Path | None = None,
    ) -> SMPLBody:
        """From a model file or folder (``gender`` picks the file in a folder) + optional regressor files."""
        file = resolve_smpl_model_file(path, gender)
        arrays = _validate(load_smpl_arrays(file), str(file), num_betas)
        nv = arrays["v_template"].shape[0]
        h36m = _load_regressor(j_regressor_h36m, nv, 17, "H36M") if j_regressor_h36m else None
        extra = _load_regressor(j_regressor_extra, nv, 4, "extra-joint") if j_regressor_extra else None
        if h36m is not None and h36m.shape[0] != 17:
            raise InputError(f"H36M regressor file {j_regressor_h36m} must have 17 rows, got {h36m.shape[0]}")
        return cls(
            arrays,
            num_betas=num_betas,
            gender=gender,
            j_regressor_h36m=h36m,
            j_regressor_extra=extra,
            source=str(file),
        )

    @classmethod
    def from_config(cls, cfg: BodyConfig, gender: str | None = None) -> SMPLBody:
        """From ``cfg.smpl_model_path`` (+ optional regressor files); ``gender`` overrides ``cfg.gender``."""
        if not cfg.smpl_model_path:
            raise InputError(
                "body.smpl_model_path is not set: point it at an SMPL model file (.pkl/.npz) or a folder "
                "holding "
                "SMPL_NEUTRAL/MALE/FEMALE files"
            )
        return cls.from_file(
            cfg.smpl_model_path,
            gender=gender or cfg.gender,
            j_regressor_h36m=cfg.smpl_j_regressor_h36m,
            j_regressor_extra=cfg.smpl_j_regressor_extra,
        )

    # -------------------------------------------------------------------------------------- joint sets

    @staticmethod
    def _landmarks(landmark_ids: Mapping[str, int] | None, V: int, source: str) -> dict[str, int]:
        if landmark_ids is None:
            if V != SMPL_NUM_VERTICES:
                raise InputError(
                    f"{source}: the model has {V} vertices, not SMPL's {SMPL_NUM_VERTICES}, so SMPL's "
                    "landmark "
                    f"vertex ids do not apply; pass landmark_ids for {list(LANDMARK_NAMES)}"
                )
            landmark_ids = SMPL_LANDMARK_IDS
        missing = [n for n in LANDMARK_NAMES if n not in landmark_ids]
        if missing:
            raise InputError(f"{source}: landmark_ids lacks {missing}")
        marks = {n: int(landmark_ids[n]) for n in LANDMARK_NAMES}
        bad = {n: i for n, i in marks.items() if not 0 <= i < V}
        if bad:
            raise InputError(f"{source}: landmark vertex ids {bad} are outside [0, {V})")
        return marks

    def _register_joint_sets(self, J_regressor, marks, h36m, extra, source) -> None:
        V = self._num_vertices
        cols = V + NUM_JOINTS

        def vertex(name: str) -> np.ndarray:
            row = np.zeros(cols)
            row[marks[name]] = 1.0
            return row

        jr = np.zeros((NUM_JOINTS, cols))
        jr[:, :V] = J_regressor  # regressed from the posed mesh, skeleton columns unused

        if extra is not None:
            if extra.ndim != 2 or extra.shape[0] < 4 or extra.shape[1] != V:
                raise InputError(f"{source}: J_regressor_extra must be (>= 4, {V}), got {extra.shape}")
            head_top = np.concatenate([extra[3], np.zeros(NUM_JOINTS)])
        else:
            head_top = vertex("Head_top")
            if V == SMPL_NUM_VERTICES and _are_smpl_landmarks(marks):
                _warn_once(
                    ("head_top", source),
                    "%s: no body.smpl_j_regressor_extra (J_regressor_extra.npy) given; the jotr30 head-top "
                    "joint falls back to SMPL vertex %d, not the official regressed head top (networks "
                    "trained with the official joints, e.g. converted official checkpoints, see a shifted "
                    "head-top input)",
                    source,
                    marks["Head_top"],
                )
        jotr30 = np.concatenate([jr, np.stack([vertex(n) for n in LANDMARK_NAMES[:5]]), head_top[None]])

        if h36m is not None:
            if h36m.shape != (17, V):
                raise InputError(f"{source}: J_regressor_h36m must be (17, {V}), got {h36m.shape}")
            h36m17 = np.concatenate([h36m, np.zeros((17, NUM_JOINTS))], axis=1)
        else:
            self._h36m_approximated = True  # warned on first use (joints), not at load
            rows = []
            for _, spec in H36M_APPROXIMATION:
                rows.append(vertex(spec) if isinstance(spec, str) else jr[list(spec)].mean(axis=0))
            h36m17 = np.stack(rows)

        coco17 = np.stack([vertex(n) if n in marks else jr[_COCO_FROM_SMPL[n]] for n in _COCO_ORDER])

        for name, reg in (
            ("smpl24", jr),
            ("jotr30", jotr30),
            ("jotr15", jotr30[list(JOTR15_FROM_30)]),
            ("h36m17", h36m17),
            ("coco17", coco17),
        ):
            self.register_joint_regressor(name, torch.as_tensor(reg, dtype=torch.float32))

    def joints(self, out: BodyOutput, set_name: str) -> Tensor:
        """(B, K, 3) joints of a named set; the first use of an approximated ``h36m17`` logs a warning."""
        if set_name == "h36m17" and getattr(self, "_h36m_approximated", False):
            _warn_once(
                ("h36m17", self.source),
                "%s: no J_regressor_h36m_correct.npy given (body.smpl_j_regressor_h36m); h36m17 joints are "
                "approximated from SMPL joints and vertices, so MPJPE/PA-MPJPE are NOT the paper protocol",
                self.source,
            )
        return super().joints(out, set_name)

    # -------------------------------------------------------------------------------------- forward

    def pose_supervision_mask(self) -> Tensor:
        """(24,) 0 for ankles, feet, wrists and hands (joints 7, 8, 10, 11, 20-23), 1 elsewhere."""
        mask = torch.ones(NUM_JOINTS, device=self.v_template.device)
        mask[list(UNSUPERVISED_POSE_JOINTS)] = 0.0
        return mask

    def forward(self, pose_rotmat: Tensor, shape: Tensor) -> BodyOutput:
        """(B, 24, 3, 3) local rotations (root first) and (B, num_betas) betas -> :class:`BodyOutput`.

        Vertices (B, V, 3) and skeleton (B, 24, 3, kinematic joints) in metres, rotated by the root rotation,
        model origin (no translation).
        """
        self.check_inputs(pose_rotmat, shape)
        if not (torch.isfinite(pose_rotmat).all() and torch.isfinite(shape).all()):
            raise InputError(f"{self.name}: pose or shape contains NaN or inf")
        dtype = pose_rotmat.dtype
        if not dtype.is_floating_point:
            raise InputError(f"{self.name}: pose must be a floating-point tensor, got {dtype}")
        vertices, skeleton = lbs(
            betas=shape.to(dtype),
            pose=pose_rotmat.contiguous(),
            v_template=self.v_template.to(dtype),
            shapedirs=self.shapedirs.to(dtype),
            posedirs=self.posedirs.to(dtype),
            J_regressor=self.J_regressor.to(dtype),
            parents=self.parents_index,
            lbs_weights=self.lbs_weights.to(dtype),
            pose2rot=False,
        )
        return BodyOutput(vertices=vertices, skeleton=skeleton)
