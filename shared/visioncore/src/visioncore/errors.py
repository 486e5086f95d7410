"""Error types shared by the CLIs and the training helpers (kept free of heavy imports)."""

from __future__ import annotations

__all__ = ["NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss; the message names the step, the loss and the last good checkpoint."""
