"""The REAL shipped model (``src/jotr/weights/jotr_anny_small.safetensors``): it is in the package, loads
strictly with the Anny body, stays under the size limit and reproduces the stored reference prediction
(``tests/data/shipped_model_reference.npz``, written by ``scripts/export_shipped_model.py`` from that file).

No skip when the file is missing: a checkout without its model is broken (``make demo`` needs it)."""

from __future__ import annotations

import fnmatch
import sys
from pathlib import Path

import numpy as np
import pytest

from jotr.weights import (
    MAX_SHIPPED_BYTES,
    SHIPPED_MODEL_NAME,
    default_shipped_path,
    file_sha256,
    read_shipped_file,
)
from jotr.weights.reference import compare_to_reference

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "shipped_model_reference.npz"


def test_shipped_file_is_package_data():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        pytest.importorskip("tomli")
        import tomli as tomllib
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["jotr"]
    assert any(fnmatch.fnmatch(f"weights/{SHIPPED_MODEL_NAME}", p) for p in patterns)
    assert default_shipped_path() == ROOT / "src" / "jotr" / "weights" / SHIPPED_MODEL_NAME


def test_shipped_model_reproduces_reference():
    shipped_path = default_shipped_path()
    assert shipped_path.is_file(), (
        f"the shipped model {shipped_path} is missing: make it with `python scripts/export_shipped_model.py "
        "CKPT` (docs/model_card.md) and commit it with tests/data/shipped_model_reference.npz"
    )
    from jotr.inference.predictor import JOTRPredictor

    assert shipped_path.stat().st_size <= MAX_SHIPPED_BYTES
    read_shipped_file(shipped_path)  # format, version and config metadata are there
    assert REFERENCE.is_file(), f"{REFERENCE} is missing (scripts/export_shipped_model.py writes it)"
    stored = np.load(REFERENCE)
    assert str(stored["weights_sha256"]) == file_sha256(shipped_path), (
        "the shipped model changed but its reference did not: rerun scripts/export_shipped_model.py"
    )
    predictor = JOTRPredictor.from_pretrained(device="cpu")
    assert predictor.cfg.body.kind == "anny"
    diffs = compare_to_reference(predictor, REFERENCE)  # raises with the fields beyond tolerance
    assert set(diffs) == {
        "pose_rotmat",
        "shape",
        "cam_t_crop",
        "translation",
        "joints",
        "joints_img",
        "vertices",
    }
