"""The package version, in a module of its own so that modules can read it without importing ``jotr``."""

__version__ = "0.1.0"
