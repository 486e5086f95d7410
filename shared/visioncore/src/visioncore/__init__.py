"""visioncore: the thin shared core of the vision paper packages."""

__version__ = "0.1.0"
