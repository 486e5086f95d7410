"""tune-a-video."""

__version__ = "0.1.0"
