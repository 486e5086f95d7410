"""A restricted unpickler for user files that come as pickles (dataset annotations, legacy checkpoints).

Only the globals in ``allowed`` may be built; anything else (``os.system``, ``builtins.eval``, a class whose
``__reduce__`` runs code) raises ``UnsafePickleError`` naming the file and the global, before it can run.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "BUILTIN_CONTAINER_GLOBALS",
    "NUMPY_GLOBALS",
    "TORCH_TENSOR_GLOBALS",
    "UnsafePickleError",
    "restricted_load",
    "restricted_loads",
]


class UnsafePickleError(ValueError):
    """A pickle asked for a global outside the allow-list, or could not be read."""


NUMPY_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes pickled by Python 2 with protocol 2
    }
)

BUILTIN_CONTAINER_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice")}
)

TORCH_TENSOR_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_tensor"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch", "FloatStorage"),
        ("torch", "HalfStorage"),
        ("torch", "BFloat16Storage"),
        ("torch", "DoubleStorage"),
        ("torch", "LongStorage"),
        ("torch", "IntStorage"),
        ("torch", "ShortStorage"),
        ("torch", "CharStorage"),
        ("torch", "ByteStorage"),
        ("torch", "BoolStorage"),
        ("torch.storage", "UntypedStorage"),
        ("torch", "float32"),
        ("torch", "float16"),
        ("torch", "bfloat16"),
    }
    | BUILTIN_CONTAINER_GLOBALS
)


class _Restricted(pickle.Unpickler):
    def __init__(
        self,
        fh: IO[bytes],
        source: str,
        allowed: frozenset[tuple[str, str]],
        overrides: dict[tuple[str, str], Callable[..., Any]],
        encoding: str,
    ):
        super().__init__(fh, encoding=encoding)
        self.source, self.allowed, self.overrides = source, allowed, overrides

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.overrides:
            return self.overrides[(module, name)]
        if (module, name) in self.allowed:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self.source}: refusing to unpickle {module}.{name} (not in the allow-list)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            f"{self.source}: refusing a persistent id in the pickle ({type(pid).__name__})"
        )


def restricted_loads(
    data: bytes | IO[bytes],
    *,
    allowed: Iterable[tuple[str, str]] = NUMPY_GLOBALS,
    overrides: dict[tuple[str, str], Callable[..., Any]] | None = None,
    source: str = "<pickle>",
    encoding: str = "ASCII",
) -> Any:
    """Unpickle ``data`` allowing only ``allowed`` globals; ``overrides`` maps a global to a safe stand-in callable
    (e.g. a persistence reconstructor that returns the recorded state instead of running module source)."""
    import io

    fh = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    unpickler = _Restricted(fh, source, frozenset(allowed), dict(overrides or {}), encoding)
    try:
        return unpickler.load()
    except UnsafePickleError:
        raise
    except Exception as err:
        raise UnsafePickleError(f"{source}: corrupt pickle ({type(err).__name__}: {err})") from None


def restricted_load(
    path: str | os.PathLike,
    *,
    allowed: Iterable[tuple[str, str]] = NUMPY_GLOBALS,
    overrides: dict[tuple[str, str], Callable[..., Any]] | None = None,
    encoding: str = "ASCII",
) -> Any:
    """Unpickle the file ``path`` with ``restricted_loads``; a missing file is a FileNotFoundError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    with path.open("rb") as fh:
        return restricted_loads(fh, allowed=allowed, overrides=overrides, source=str(path), encoding=encoding)
