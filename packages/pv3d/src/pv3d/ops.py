"""StyleGAN2/EG3D low-level ops in pure PyTorch (no CUDA build, no silent fallback).

``upfirdn2d`` (upsample, pad, FIR filter, downsample), its wrappers ``upsample2d`` / ``downsample2d`` / ``filter2d``,
``bias_act``, ``modulated_conv2d`` (StyleGAN2 Sec. 2.2: modulation, demodulation, grouped conv) and
``filtered_resize``. ``set_backend("compile")`` routes ``upfirdn2d`` and ``modulated_conv2d`` through
``torch.compile``; where that fails the ops log one line and stay on the reference path.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "bias_act",
    "downsample2d",
    "filter2d",
    "filtered_resize",
    "get_backend",
    "modulated_conv2d",
    "set_backend",
    "setup_filter",
    "upfirdn2d",
    "upsample2d",
]

log = logging.getLogger(__name__)

_ACT_GAIN = {"linear": 1.0, "lrelu": math.sqrt(2.0), "relu": math.sqrt(2.0)}


def setup_filter(f: Sequence[float] | torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """A 2-D FIR filter (outer product of a 1-D one), normalised to unit sum: [1,3,3,1] -> 4x4 / 64."""
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim == 1:
        f = torch.outer(f, f)
    if f.ndim != 2:
        raise ValueError(f"filter must be 1-D or 2-D, got shape {tuple(f.shape)}")
    return f / f.sum() if normalize else f


def _pads(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        return padding, padding, padding, padding
    px0, px1, py0, py1 = padding
    return int(px0), int(px1), int(py0), int(py1)


def _upfirdn2d_ref(
    x: torch.Tensor,
    f: torch.Tensor,
    up: int,
    down: int,
    padding: tuple[int, int, int, int],
    flip: bool,
    gain: float,
) -> torch.Tensor:
    n, c, h, w = x.shape
    if up > 1:  # zero insertion
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    px0, px1, py0, py1 = padding
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    f = (f * gain).to(x.dtype)
    if not flip:  # upfirdn2d is a true convolution; conv2d correlates
        f = f.flip([0, 1])
    weight = f[None, None].repeat(c, 1, 1, 1)
    x = F.conv2d(x, weight, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


def _modulated_conv2d_ref(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    up: int,
    down: int,
    padding: int,
    resample_filter: torch.Tensor | None,
    demodulate: bool,
) -> torch.Tensor:
    b, c, h, w_ = x.shape
    out_c, in_c, kh, kw = weight.shape
    w = weight[None] * styles[:, None, :, None, None]  # [B, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()[:, :, None, None, None]
    x = x.reshape(1, b * c, h, w_)
    w = w.reshape(b * out_c, in_c, kh, kw).to(x.dtype)
    x = _conv2d_resample(x, w, resample_filter, up=up, down=down, padding=padding, groups=b)
    return x.reshape(b, out_c, x.shape[2], x.shape[3])


_BACKEND = "reference"
_COMPILED: dict[str, Callable] = {}


def set_backend(name: str) -> str:
    """Select ``"reference"`` or ``"compile"`` (torch.compile of the two hot ops); returns the active backend.

    The compiled functions are built lazily; if compiling fails at the first call, one line is logged and the
    reference ops are used from then on (never a build step, never a silent switch).
    """
    global _BACKEND
    if name not in ("reference", "compile"):
        raise ValueError(f"unknown ops backend {name!r} (choose reference or compile)")
    if name == "compile" and not _COMPILED:
        try:
            _COMPILED["upfirdn2d"] = torch.compile(_upfirdn2d_ref, dynamic=False)
            _COMPILED["modconv"] = torch.compile(_modulated_conv2d_ref, dynamic=False)
        except Exception as err:  # torch.compile itself unavailable on this platform
            log.warning(
                "pv3d.ops: torch.compile unavailable (%s); using the reference ops", str(err).split("\n")[0]
            )
            return _BACKEND
    _BACKEND = name
    return _BACKEND


def get_backend() -> str:
    """The active ops backend name."""
    return _BACKEND


def _dispatch(key: str, ref: Callable, *args):
    global _BACKEND
    if _BACKEND == "compile":
        try:
            return _COMPILED[key](*args)
        except Exception as err:  # inductor missing a compiler, unsupported dtype, ...
            log.warning(
                "pv3d.ops: compiled %s failed (%s); using the reference ops", key, str(err).split("\n")[0]
            )
            _BACKEND = "reference"
    return ref(*args)


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample by zero insertion, pad ([x0, x1, y0, y1], negative crops), convolve with the 2-D FIR ``f``, stride."""
    if f is None:
        f = torch.ones(1, 1, device=x.device)
    return _dispatch(
        "upfirdn2d", _upfirdn2d_ref, x, f.to(x.device), up, down, _pads(padding), flip_filter, gain
    )


def upsample2d(
    x: torch.Tensor, f: torch.Tensor, up: int = 2, padding: int | Sequence[int] = 0, gain: float = 1.0
) -> torch.Tensor:
    """Upsample by ``up`` with FIR ``f``; output size ``up * H`` (gain up^2 keeps the mean)."""
    px0, px1, py0, py1 = _pads(padding)
    fh, fw = f.shape
    pad = [px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2]
    return upfirdn2d(x, f, up=up, padding=pad, gain=gain * up * up)


def downsample2d(
    x: torch.Tensor, f: torch.Tensor, down: int = 2, padding: int | Sequence[int] = 0
) -> torch.Tensor:
    """Low-pass with FIR ``f`` then keep every ``down``-th pixel; output size ``H / down``."""
    px0, px1, py0, py1 = _pads(padding)
    fh, fw = f.shape
    pad = [
        px0 + (fw - down + 1) // 2,
        px1 + (fw - down) // 2,
        py0 + (fh - down + 1) // 2,
        py1 + (fh - down) // 2,
    ]
    return upfirdn2d(x, f, down=down, padding=pad)


def filter2d(x: torch.Tensor, f: torch.Tensor, padding: int | Sequence[int] = 0) -> torch.Tensor:
    """Filter with ``f`` at the same resolution (an even filter pads [fw // 2, (fw - 1) // 2])."""
    px0, px1, py0, py1 = _pads(padding)
    fh, fw = f.shape
    return upfirdn2d(x, f, padding=[px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2])


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    act: str = "linear",
    gain: float | None = None,
    clamp: float | None = None,
    alpha: float = 0.2,
) -> torch.Tensor:
    """x + b (over dim 1), then linear / lrelu(alpha) / relu, times ``gain`` (default sqrt 2 for lrelu), clamped."""
    if act not in _ACT_GAIN:
        raise ValueError(f"unknown activation {act!r}")
    if b is not None:
        x = x + b.to(x.dtype).reshape([1, -1] + [1] * (x.ndim - 2))
    if act == "lrelu":
        x = F.leaky_relu(x, alpha)
    elif act == "relu":
        x = F.relu(x)
    gain = _ACT_GAIN[act] if gain is None else gain
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def _conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    groups: int = 1,
) -> torch.Tensor:
    """Conv with optional 2x FIR resampling: FIR-upsample then conv, or FIR low-pass then strided conv.

    Linear and shift-invariant, so equal to StyleGAN2's transposed-conv-then-filter order away from the borders.
    """
    if up > 1:
        x = upsample2d(x, f, up=up)
    if down > 1:
        x = filter2d(x, f)
    return F.conv2d(x, w, stride=down, padding=padding, groups=groups)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
) -> torch.Tensor:
    """StyleGAN2 modulated conv (Eq. 1-3): w' = w * s, w'' = w' / sqrt(sum w'^2 + 1e-8); one grouped conv per batch."""
    if x.shape[0] != styles.shape[0] or styles.shape[1] != weight.shape[1]:
        raise ValueError(
            f"styles {tuple(styles.shape)} do not fit input {tuple(x.shape)} / weight {tuple(weight.shape)}"
        )
    x = _dispatch(
        "modconv", _modulated_conv2d_ref, x, weight, styles, up, down, padding, resample_filter, demodulate
    )
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


def filtered_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear resize to ``size`` x ``size`` (EG3D's filtered resizing of the raw image)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    # antialiased interpolation has no reduced-precision CPU kernel: resize in fp32, return the input's dtype
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return y.to(x.dtype)
