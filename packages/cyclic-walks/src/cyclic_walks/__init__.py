"""cyclic-walks."""

__version__ = "0.1.0"
