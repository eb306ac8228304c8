"""Offscreen renderer: camera-frame convention, projection agreement, depth, instances, alone depth,
errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jotr.errors import InputError
from jotr.geometry.camera import project_points

renderer_mod = pytest.importorskip("jotr.viz.renderer")
_OK, _WHY = renderer_mod.rendering_available()
pytestmark = pytest.mark.skipif(not _OK, reason=f"offscreen rendering unavailable: {_WHY}")

W, H = 160, 120
FOCAL, PRINCPT = (150.0, 160.0), (70.0, 65.0)


@pytest.fixture(scope="module")
def renderer():
    r = renderer_mod.Renderer(W, H)
    yield r
    r.close()


def _quad(z: float, x0: float, x1: float, y0: float, y1: float):
    """A camera-facing rectangle at depth z (camera frame: x right, y down)."""
    v = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])
    f = np.array([[0, 1, 2], [0, 2, 3]])
    return v, f


def test_projection_and_depth_match_pinhole(renderer):
    v, f = _quad(2.0, -0.3, 0.2, -0.1, 0.25)
    res = renderer.render([(v, f, (255, 0, 0))], FOCAL, PRINCPT)
    uv = project_points(torch.tensor(v), FOCAL, PRINCPT).numpy()
    mask = res.instance == 0
    rows, cols = np.nonzero(mask)
    # Pixel centres at integer coordinates: the covered pixel range equals the projected range within a pixel.
    assert abs(cols.min() - uv[:, 0].min()) <= 1.0 and abs(cols.max() - uv[:, 0].max()) <= 1.0
    assert abs(rows.min() - uv[:, 1].min()) <= 1.0 and abs(rows.max() - uv[:, 1].max()) <= 1.0
    # y down: the quad spans more rows below the principal point than above it.
    assert rows.max() - PRINCPT[1] > PRINCPT[1] - rows.min()
    np.testing.assert_allclose(res.depth[mask], 2.0, atol=2e-3)
    assert np.all(res.depth[~mask] == 0) and np.all(res.instance[~mask] == -1)
    assert res.color.dtype == np.uint8 and res.color.shape == (H, W, 3)
    assert res.color[mask][:, 0].mean() > 100 and res.color[mask][:, 1:].max() < 60  # red
    assert np.all(res.color[~mask] == 0)


def test_instances_occlusion_background_and_alone(renderer):
    near = _quad(1.5, -0.2, 0.1, -0.2, 0.1)
    far = _quad(3.0, -0.5, 0.5, -0.4, 0.4)
    colours = np.tile([0.0, 1.0, 0.0], (4, 1))  # per-vertex colours
    bg = np.full((H, W, 3), 200, np.uint8)
    res = renderer.render(
        [(far[0], far[1], colours), (near[0], near[1], (0.0, 0.0, 1.0))], FOCAL, PRINCPT, bg=bg, alone=[0, 1]
    )
    assert set(np.unique(res.instance)) == {-1, 0, 1}
    np.testing.assert_allclose(res.depth[res.instance == 1], 1.5, atol=2e-3)
    np.testing.assert_allclose(res.depth[res.instance == 0], 3.0, atol=5e-3)
    assert np.all(res.color[res.instance == -1] == 200)
    alone_far = res.alone_depth[0]
    # The far quad alone covers the pixels hidden by the near one, and only its own pixels.
    assert ((alone_far > 0) & (res.instance == 1)).sum() == (res.instance == 1).sum()
    assert np.array_equal(res.alone_depth[1] > 0, res.instance == 1)
    np.testing.assert_allclose(renderer.render_depth([far], FOCAL, PRINCPT), alone_far, atol=1e-5)
    # Visibility rule used by the generator: visible pixels / pixels alone.
    frac = (res.instance == 0).sum() / (alone_far > 0).sum()
    assert 0.5 < frac < 1.0


def test_empty_scene_and_errors(renderer):
    res = renderer.render([], FOCAL, PRINCPT)
    assert np.all(res.instance == -1) and np.all(res.depth == 0)
    v, f = _quad(2.0, -0.1, 0.1, -0.1, 0.1)
    with pytest.raises(InputError, match="vertices"):
        renderer.render([(v[:, :2], f, (1, 0, 0))], FOCAL, PRINCPT)
    with pytest.raises(InputError, match="faces"):
        renderer.render([(v, f + 10, (1, 0, 0))], FOCAL, PRINCPT)
    with pytest.raises(InputError, match="bg"):
        renderer.render([(v, f, (1, 0, 0))], FOCAL, PRINCPT, bg=np.zeros((10, 10, 3), np.uint8))
