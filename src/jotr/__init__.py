"""jotr: occluded 3D human mesh recovery with JOTR (ICCV 2023)."""

__version__ = "0.1.0"
