"""curriculum-cl."""

__version__ = "0.1.0"
