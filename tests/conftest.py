"""Shared test fixtures (keep small and stable; every engineer's tests use them).

* ``anny_cache_env``: the Anny cache folder, by jotr's one rule (``$ANNY_CACHE_DIR``, else
  ``~/.cache/jotr/anny``: :func:`jotr.body.anny_cache.default_cache_dir`), which the set-up fills.
* ``smpl_model_dir``: a folder with procedural SMPL files ``SMPL_{NEUTRAL,MALE,FEMALE}.{pkl,npz}`` (6890
  vertices, SMPL's keys and landmark vertex ids), ``J_regressor_h36m_correct.npy`` and
  ``J_regressor_extra.npy``.
* ``smpl_body``: :class:`jotr.body.smpl.SMPLBody` (neutral) from that folder, with both regressor files.
* ``toy_body``: :class:`jotr.body.toy.ToyBody` (600 vertices, same SMPL protocol; fast).
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


# A tiny JOTR network (seconds to build and train) for engine / CLI tests on the toy body model.
TINY_MODEL = dict(
    backbone="resnet18",
    input_size=64,
    heatmap_size=16,
    heatmap_sigma=1.0,
    d_model=32,
    nhead=2,
    ffn_dim_2d=64,
    ffn_dim_3d=64,
    ffn_dim_dec=64,
    dec_layers=2,
    enc_layers_2d=1,
    enc_layers_3d=1,
)


def toy_demo_checkpoint(path: Path, model: dict | None = None) -> Path:
    """A random-weight checkpoint of the toy body (``model``: ModelConfig overrides, default the small
    network) whose camera keeps the meshes in view, for the demo/video tests."""
    import torch

    from jotr.config import JOTRConfig, merge_config
    from jotr.engine.checkpoint import save_checkpoint
    from jotr.models import build_model
    from jotr.models.config import ModelConfig

    torch.manual_seed(0)
    base = JOTRConfig(model=ModelConfig.small()) if model is None else JOTRConfig()
    cfg = merge_config(base, {"body": {"kind": "toy"}, **({"model": model} if model is not None else {})})
    net = build_model(cfg, pretrained=False).eval()
    with torch.no_grad():  # a camera that keeps the random-weight meshes in view
        for p in net.cam_head.parameters():
            p.zero_()
        net.cam_head.layers[0].bias[2] = 1.9
    return save_checkpoint(path, model=net, cfg=cfg, step=0, rng=False, commit="test")


@pytest.fixture(scope="session")
def anny_cache_env() -> Path:
    from jotr.body.anny_cache import default_cache_dir

    path = default_cache_dir()
    assert path.is_dir(), f"no Anny cache at {path}: run `make setup` (or python -m jotr.body.anny_cache)"
    return path


@pytest.fixture(scope="session")
def smpl_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import numpy as np

    from jotr.body.toy import write_smpl_model_folder

    return write_smpl_model_folder(tmp_path_factory.mktemp("smpl_model"), float_dtype=np.float32)


@pytest.fixture(scope="session")
def smpl_body(smpl_model_dir: Path):
    from jotr.body.smpl import SMPLBody

    return SMPLBody.from_file(
        smpl_model_dir,
        gender="neutral",
        j_regressor_h36m=smpl_model_dir / "J_regressor_h36m_correct.npy",
        j_regressor_extra=smpl_model_dir / "J_regressor_extra.npy",
    )


@pytest.fixture(scope="session")
def toy_body():
    from jotr.body.toy import ToyBody

    return ToyBody()
