"""``--device`` and ``--dtype`` for every CLI verb that runs a model, resolved the same way in every package."""

from __future__ import annotations

import argparse
import ctypes
import platform
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch stays out of the CLI's import time
    import torch

__all__ = [
    "DTYPES",
    "MIXED_PRECISION",
    "add_device_args",
    "resolve_device",
    "resolve_dtype",
    "retain_freed_host_memory",
]

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


# glibc mallopt parameters (malloc.h) and the largest mmap threshold 64-bit glibc accepts (HEAP_MAX_SIZE / 2)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MAX_MMAP_THRESHOLD = 32 * 2**20
_host_memory_retained = False


def retain_freed_host_memory() -> bool:
    """Make glibc's malloc keep freed host memory for reuse instead of handing it back to the kernel.

    By default glibc serves blocks above its mmap threshold with fresh mmap'd pages and returns freed heap tops to the
    kernel, so each new CPU activation of a training step is page-faulted (and zeroed by the kernel) again: on small
    CPU models that is a measurable share of the step (mist-videoqa's repro step: 900-2,300 page faults, roughly 5-10%
    of its CPU time; with this, under 100). Raising the mmap threshold to glibc's maximum (32 MiB) and disabling trimming
    lets malloc reuse those blocks, as jemalloc or tcmalloc would. The process keeps its peak memory until it exits.
    Process-wide and idempotent; returns False (and changes nothing) where the C library is not glibc.
    """
    global _host_memory_retained
    if _host_memory_retained:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MAX_MMAP_THRESHOLD))
    ok = bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)) and ok
    _host_memory_retained = ok
    return ok
