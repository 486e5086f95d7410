"""Atomic file writes (visioncore.files; a local stand-in until that module is on main)."""

from __future__ import annotations

try:
    from visioncore.files import atomic_path, atomic_write_json, atomic_write_text
except ImportError:  # pragma: no cover - removed once visioncore.files has landed
    import json
    import os
    from collections.abc import Iterator
    from contextlib import contextmanager
    from pathlib import Path
    from typing import Any

    @contextmanager
    def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def atomic_write_text(path: str | os.PathLike, text: str) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(text)

    def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
        atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


__all__ = ["atomic_path", "atomic_write_json", "atomic_write_text"]
