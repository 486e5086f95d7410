"""Command-line plumbing shared by the package CLIs: expected failures end as one line, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from visioncore.errors import NonFiniteLossError

# ConfigError, CheckpointError, dataset and video errors derive from ValueError; every file-system failure (missing
# file, a file where a folder is needed, an existing output, permissions) is an OSError.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, NonFiniteLossError)


def one_line(err: BaseException) -> str:
    """The first non-empty line of an error's message, with the path an OSError names (its type name if empty)."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def run_command(
    command: Callable[[Any], object], args: Any, expected: tuple[type[BaseException], ...] = EXPECTED_ERRORS
) -> int:
    """Run a CLI verb: 0 on success; an expected error prints `error: <first line>` to stderr and gives exit code 2."""
    try:
        command(args)
    except expected as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    return 0
