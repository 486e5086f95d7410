"""A restricted unpickler for the CIFAR python batches: only numpy arrays, dtypes, lists, dicts, bytes, str and
numbers may be built, so a malicious pickle (``os.system``, ``eval``, ...) is rejected before it can run code."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from curriculum_cl.errors import DatasetError, UnsafePickleError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how python 3 pickles bytes written by python 2 with protocol 2
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, fh: io.BufferedIOBase, source: Path):
        super().__init__(fh, encoding="bytes")
        self.source = source

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self.source}: refusing to unpickle {module}.{name} (only numpy arrays allowed)"
        )


def load_safe_pickle(path: str | Path) -> object:
    """Unpickle ``path`` allowing only numpy arrays and plain containers."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        with path.open("rb") as fh:
            return _RestrictedUnpickler(fh, path).load()
    except UnsafePickleError:
        raise
    except Exception as err:
        raise DatasetError(f"{path}: corrupt pickle ({type(err).__name__}: {err})") from None
