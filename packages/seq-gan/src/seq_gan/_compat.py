"""Atomic writes from ``visioncore.files`` (a local stand-in until that module lands on main)."""

from __future__ import annotations

try:  # pragma: no cover - depends on the visioncore version
    from visioncore.files import atomic_path, atomic_write_json, atomic_write_text
except ImportError:  # pragma: no cover
    import contextlib
    import json
    import os
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

    @contextlib.contextmanager
    def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp{os.getpid()}{final.suffix}")
        try:
            yield tmp
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def atomic_write_text(path: str | os.PathLike, text: str) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(text)

    def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
        atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


__all__ = ["atomic_path", "atomic_write_json", "atomic_write_text"]
