"""``--device`` and ``--dtype`` for every CLI verb that runs a model, resolved the same way in every package."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch stays out of the CLI's import time
    import torch

__all__ = ["DTYPES", "MIXED_PRECISION", "add_device_args", "resolve_device", "resolve_dtype"]

DTYPES = ("fp32", "fp16", "bf16")
# accelerate's ``mixed_precision`` values a training config may name (fp8 needs hardware we do not test on)
MIXED_PRECISION = ("no", "fp16", "bf16")


def add_device_args(parser: argparse.ArgumentParser, *, dtypes: tuple[str, ...] = DTYPES) -> None:
    """Add ``--device`` (default: CUDA when available, else CPU) and ``--dtype`` (default fp32)."""
    parser.add_argument(
        "--device", default=None, help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda if available)"
    )
    parser.add_argument(
        "--dtype", default="fp32", choices=dtypes, help="precision of the model and its inputs"
    )


def resolve_device(name: str | None) -> torch.device:
    """``None`` -> ``cuda`` when available, else ``cpu``; an unknown or absent device is a one-line ValueError."""
    import torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device {name!r}: {str(err).splitlines()[0]}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name!r}: CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name!r}: MPS is not available on this machine")
    return device


def resolve_dtype(name: str) -> torch.dtype:
    """``fp32``/``fp16``/``bf16`` -> the torch dtype."""
    import torch

    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if name not in table:
        raise ValueError(f"--dtype {name!r}: expected one of {', '.join(table)}")
    return table[name]
