"""Temporal smoothing of per-frame predictions for videos.

What is smoothed: each tracked person's body *parameters* -- joint rotations (as 6D vectors,
re-orthonormalised by Gram-Schmidt after filtering, so the result is always a valid rotation), shape, and the
pelvis translation in the camera frame. The mesh and joints are then recomputed from the smoothed parameters
(:meth:`jotr.inference.predictor.JOTRPredictor.body_in_camera`), so they stay consistent with the body model.

Filters:

``one-euro``  One-Euro filter (Casiez et al., CHI 2012): a low-pass filter whose cut-off frequency
              rises with the signal's speed, ``f_c = min_cutoff + beta * |dx/dt|`` -- little lag on fast
              motion, strong smoothing of jitter when still. Defaults: min_cutoff 1 Hz, beta 0.5,
              d_cutoff 1 Hz.
``ema``       Exponential moving average ``y_t = a * x_t + (1 - a) * y_{t-1}`` with ``a = 0.5``.

Filtering is per track id, as given by the tracker (:mod:`jotr.inference.tracking`): each id has filters of
its own, so two people are never blended, and a new id (a new person, or one the tracker could not follow)
starts fresh filters from its first observation (no smoothing lag on appearance). A track seen again after a
gap continues its filters with the time elapsed since its last frame."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from jotr.errors import InputError
from jotr.geometry.rotations import rot6d_to_rotmat, rotmat_to_rot6d


class EMAFilter:
    """``y_t = alpha * x_t + (1 - alpha) * y_{t-1}`` on arrays of a fixed shape."""

    def __init__(self, alpha: float = 0.5) -> None:
        if not 0.0 < alpha <= 1.0:
            raise InputError(f"EMA alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self._y: np.ndarray | None = None

    def __call__(self, x: np.ndarray, dt: float = 1.0) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        self._y = x.copy() if self._y is None else self.alpha * x + (1.0 - self.alpha) * self._y
        return self._y.copy()


class OneEuroFilter:
    """One-Euro filter on arrays of a fixed shape (element-wise cut-off). ``dt`` in seconds."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise InputError("One-Euro filter needs min_cutoff > 0, d_cutoff > 0, beta >= 0")
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, dt: float = 1.0 / 30.0) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if dt <= 0:
            raise InputError(f"One-Euro filter: dt must be positive, got {dt}")
        if self._x is None:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.copy()
        dx = (x - self._x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1.0 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        a = self._alpha(cutoff, dt)
        self._x = a * x + (1.0 - a) * self._x
        return self._x.copy()


def make_filter(kind: str, **kwargs) -> EMAFilter | OneEuroFilter:
    if kind == "ema":
        return EMAFilter(**kwargs)
    if kind in ("one-euro", "one_euro", "oneeuro"):
        return OneEuroFilter(**kwargs)
    raise InputError(f"unknown smoothing filter {kind!r}; use 'one-euro', 'ema' or 'none'")


@dataclass
class _Track:
    filters: dict[str, EMAFilter | OneEuroFilter] = field(default_factory=dict)
    last_frame: int = 0


class ParameterSmoother:
    """Smooths the parameters of each track id over frames (see module doc).

    ``update(frame, track_ids, pose_rotmat, shape, translation)`` with P people in the frame (P distinct
    track ids) returns the smoothed ``(pose_rotmat (P, J, 3, 3), shape (P, S), translation (P, 3))``;
    ``forget(ids)`` drops the filters of tracks that ended."""

    def __init__(self, kind: str = "one-euro", fps: float = 30.0, **filter_kwargs) -> None:
        make_filter(kind, **filter_kwargs)  # validate early
        if fps <= 0 or not math.isfinite(fps):
            fps = 30.0
        self.kind, self.fps = kind, fps
        self.filter_kwargs = filter_kwargs
        self.tracks: dict[int, _Track] = {}

    def forget(self, track_ids) -> None:
        for k in track_ids:
            self.tracks.pop(int(k), None)

    def update(
        self,
        frame: int,
        track_ids: np.ndarray,
        pose_rotmat: np.ndarray,
        shape: np.ndarray,
        translation: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids = [int(k) for k in np.asarray(track_ids).reshape(-1)]
        if len(set(ids)) != len(ids):
            raise InputError(f"smoothing: frame {frame} lists a track id twice: {ids}")
        rot6d = rotmat_to_rot6d(torch.as_tensor(np.asarray(pose_rotmat), dtype=torch.float64)).numpy()
        out6d, out_shape, out_t = (
            np.empty_like(rot6d),
            np.empty_like(shape, dtype=np.float64),
            np.empty((len(ids), 3)),
        )
        for i, k in enumerate(ids):
            track = self.tracks.setdefault(k, _Track(last_frame=frame))
            dt = max(frame - track.last_frame, 1) / self.fps
            for key, value, dst in (
                ("pose", rot6d, out6d),
                ("shape", shape, out_shape),
                ("trans", translation, out_t),
            ):
                filt = track.filters.setdefault(key, make_filter(self.kind, **self.filter_kwargs))
                dst[i] = filt(np.asarray(value[i], dtype=np.float64), dt)
            track.last_frame = frame
        rotmat = rot6d_to_rotmat(torch.from_numpy(out6d)).numpy().astype(np.float32)
        return rotmat, out_shape.astype(np.float32), out_t.astype(np.float32)
