"""jotr: occluded 3D human mesh recovery with JOTR (ICCV 2023)."""

from jotr._version import __version__

__all__ = ["__version__", "load_result"]


def __getattr__(name: str):
    # jotr.load_result without importing the inference stack at ``import jotr``
    if name == "load_result":
        from jotr.inference.result_format import load_result

        return load_result
    raise AttributeError(f"module 'jotr' has no attribute {name!r}")
