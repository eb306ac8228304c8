"""Geometry: rotations, the virtual camera, crops/boxes and the ONE module of coordinate-space conversions."""
