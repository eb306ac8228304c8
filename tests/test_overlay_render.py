"""Readable renders (jotr.viz.overlay): opaque shaded meshes in the person's colour with a dark outline, a
side view with a ground plane and the camera marker, and a side framing that stays fixed over a video."""

from __future__ import annotations

import numpy as np
import pytest

from jotr.viz.overlay import OUTLINE_RGB, MeshVisualizer, person_color, person_hex

renderer_mod = pytest.importorskip("jotr.viz.renderer")
_OK, _WHY = renderer_mod.rendering_available()
pytestmark = pytest.mark.skipif(not _OK, reason=f"offscreen rendering unavailable: {_WHY}")

W, H = 160, 120
FOCAL, PRINCPT = (150.0, 150.0), (80.0, 60.0)


def _figure(x: float, z: float):
    """A 0.4 x 1.7 x 0.3 m box standing on y = 0.9 (camera y points down), centred at (x, z)."""
    import trimesh

    box = trimesh.creation.box(extents=(0.4, 1.7, 0.3))
    return np.asarray(box.vertices) + [x, 0.9 - 0.85, z], np.asarray(box.faces)


def test_overlay_is_opaque_coloured_and_outlined():
    image = np.full((H, W, 3), 128, np.uint8)
    with MeshVisualizer() as vis:
        ov = vis.render(image, [_figure(-0.4, 4.0), _figure(0.5, 5.0)], FOCAL, PRINCPT)
    for i in (0, 1):
        region = (ov.instance == i) & ~np.isin(ov.image, OUTLINE_RGB).all(-1)
        pixels = ov.image[region].astype(float)
        assert len(pixels) > 50
        # opaque: no trace of the grey background; the hue is the person's colour (shaded: scaled)
        colour = person_color(i)
        cos = pixels @ colour / (np.linalg.norm(pixels, axis=1) * np.linalg.norm(colour))
        assert np.median(cos) > 0.97
    border = (ov.instance >= 0) & (
        (np.roll(ov.instance, 1, 0) != ov.instance) | (np.roll(ov.instance, 1, 1) != ov.instance)
    )
    assert (ov.image[border] == OUTLINE_RGB).all(-1).mean() > 0.9
    assert person_hex(0) == "#" + "".join(f"{round(255 * c):02x}" for c in person_color(0))


def test_side_view_has_ground_and_camera_and_a_fixed_framing():
    image = np.zeros((H, W, 3), np.uint8)
    with MeshVisualizer() as vis:
        first = vis.render(image, [_figure(0.0, 4.0)], FOCAL, PRINCPT)
        moved = vis.render(image, [_figure(0.3, 4.6)], FOCAL, PRINCPT, side_view=first.side_view)
        reframed = vis.render(image, [_figure(0.3, 4.6)], FOCAL, PRINCPT)
        empty = vis.render(image, [], FOCAL, PRINCPT, side_view=first.side_view)
    view = first.side_view

    def pixel(p_cam):  # where a camera-frame point lands in the side image
        x, y, z = (np.asarray(p_cam, float) - view.position) @ view.rotation.T
        return int(round(y / z * FOCAL[1] + H / 2)), int(round(x / z * FOCAL[0] + W / 2))

    marker = pixel([0.0, 0.0, 0.25])  # inside the camera marker's pyramid
    x0, x1, z0, z1 = view.extent
    ground = pixel([(x0 + x1) / 2, view.ground_y, z0 + 0.75])  # ground between the camera and the person
    for img in (first.side, empty.side):
        assert img[marker].max() < 150 and np.ptp(img[marker]) < 10  # dark grey marker
        assert 120 < img[ground].min() and img[ground].max() < 245 and np.ptp(img[ground]) < 10  # light grey
    # fixed framing: the person moved, the camera marker and the ground stayed where they were
    assert moved.side_view is view
    np.testing.assert_array_equal(moved.side[marker], first.side[marker])
    assert (first.side != moved.side).any()
    assert not np.allclose(reframed.side_view.position, view.position)  # else: framed on the moved person
