"""A seeded procedural renderer of coloured shapes: images and videos with instance masks, boxes and labels.

The paper packages build their toy data sets on it: multi-object scenes for object discovery (slot attention),
coloured shapes moving across frames for text-to-video ("a red square moving right") and small classification
sets. Everything is pure numpy; a 128x128 scene with four objects renders in about a millisecond.

Conventions
-----------
- Coordinates are continuous pixels, ``(x, y)`` with ``x`` to the right and ``y`` downwards; pixel ``(row i,
  col j)`` covers ``[j, j+1) x [i, i+1)`` and is sampled at its centre ``(j + 0.5, i + 0.5)``. A box
  ``(x0, y0, x1, y1)`` therefore spans pixels ``x0 <= j < x1``, ``y0 <= i < y1`` (torchvision's convention).
- ``angle`` is in degrees; since ``y`` points down, a positive angle turns the shape clockwise on screen.
- ``size`` (pixels) sets each shape's scale, and every shape is centred on its centroid:

  ============  ==============================================  ====================
  shape         geometry at angle 0                             area
  ============  ==============================================  ====================
  circle        diameter ``size``                               ``pi size^2 / 4``
  square        side ``size``                                   ``size^2``
  triangle      equilateral, side ``size``, apex up             ``sqrt(3)/4 size^2``
  rectangle     ``size`` wide, ``0.6 size`` tall                ``0.6 size^2``
  ellipse       axes ``size`` (x) and ``0.6 size`` (y)          ``0.15 pi size^2``
  diamond       diagonals ``size``                              ``size^2 / 2``
  star          five points, outer radius ``size/2``, inner     ``5/8 sin(36deg)
                radius ``size/4``, a point up                   size^2``
  hexagon       circumradius ``size/2``, flat top               ``3 sqrt(3)/8 size^2``
  ============  ==============================================  ====================

  :func:`shape_area` returns these areas.
- Colours are RGB ``uint8`` triples or names from :data:`COLORS`. Random backgrounds keep every channel in
  ``[20, 135]`` while every named colour has a channel of at least 180, so objects always stand out.
- Instance masks are ``int32`` maps: 0 is background and ``i + 1`` is ``objects[i]``. Objects are painted in
  list order, later ones on top, so an occluded pixel belongs to the last object covering it.

API
---
- ``SHAPES``, ``COLORS``; ``shape_area(shape, size)``.
- ``ObjectSpec(shape, color, center, size, angle=0, velocity=(0, 0), angular_velocity=0, size_velocity=0)``.
- ``draw_shape_mask(shape, center, size, angle, height, width, *, antialias=False)``: a bool mask, or with
  ``antialias`` a float32 coverage map in ``[0, 1]`` (4x4 supersampling).
- ``render_objects(height, width, objects, background=(0, 0, 0), *, antialias=False) -> Scene``.
- ``random_objects(rng, num_objects, height, width, *, shapes, colors, size_range, min_visible, max_velocity,
  rotate, max_tries) -> list[ObjectSpec]``.
- ``random_background(rng, height, width, kind="gradient"|"solid"|"noise") -> uint8 [H, W, 3]``.
- ``render_scene(height, width, *, num_objects, shapes, colors, size_range, min_visible, background, antialias,
  rng) -> Scene``.
- ``render_video(num_frames, height, width, objects, background=(0, 0, 0), *, border="bounce"|"clamp"|"free",
  antialias=False) -> VideoScene``.
- ``describe(obj) -> str`` ("a red square moving right") and ``color_name(color) -> str``.

Determinism: every random choice comes from the ``numpy.random.Generator`` passed in (an ``int`` seed is accepted
too), drawn in a fixed order, so the same seed gives the same scene.

Example::

    rng = np.random.default_rng(0)
    scene = render_scene(128, 128, num_objects=4, rng=rng)
    objs = random_objects(rng, 2, 64, 64, max_velocity=2.0)
    video = render_video(16, 64, 64, objs)
    prompts = [describe(o) for o in objs]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

__all__ = [
    "COLORS",
    "SHAPES",
    "ObjectSpec",
    "Scene",
    "VideoScene",
    "color_name",
    "describe",
    "draw_shape_mask",
    "random_background",
    "random_objects",
    "render_objects",
    "render_scene",
    "render_video",
    "shape_area",
]

SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "rectangle",
    "ellipse",
    "diamond",
    "star",
    "hexagon",
)
"""Shape names; a scene's ``labels`` index this tuple."""

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 200, 50),
    "blue": (40, 90, 245),
    "yellow": (245, 225, 30),
    "cyan": (30, 215, 225),
    "magenta": (225, 40, 205),
    "orange": (250, 145, 20),
    "purple": (140, 50, 200),
    "white": (245, 245, 245),
}
"""Named RGB colours; each has a channel >= 180 so it contrasts with any random background."""

_ASPECT = 0.6  # height / width of rectangle and ellipse
_STAR_INNER = 0.5  # inner / outer radius of the star
_AA_SAMPLES = 4  # supersampling per axis when antialiasing
_BG_LOW, _BG_HIGH = 20.0, 135.0  # channel range of random backgrounds


def _regular(n: int, radius: float, start_deg: float) -> np.ndarray:
    a = np.deg2rad(start_deg + 360.0 * np.arange(n) / n)
    return np.stack([radius * np.cos(a), radius * np.sin(a)], axis=1)


def _star() -> np.ndarray:
    outer = _regular(5, 1.0, -90.0)
    inner = _regular(5, _STAR_INNER, -90.0 + 36.0)
    return np.stack([outer, inner], axis=1).reshape(10, 2)


# Polygon vertices in units of size / 2 (a circle of diameter `size` has radius 1), y down.
_POLYGONS: dict[str, np.ndarray] = {
    "square": np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]),
    "rectangle": np.array([[-1.0, -_ASPECT], [1.0, -_ASPECT], [1.0, _ASPECT], [-1.0, _ASPECT]]),
    "diamond": np.array([[0.0, -1.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]),
    "triangle": _regular(3, 2.0 / math.sqrt(3.0), -90.0),  # side 2 (= size)
    "star": _star(),
    "hexagon": _regular(6, 1.0, 0.0),
}
_POLYGON_LISTS: dict[str, list[tuple[float, float]]] = {
    k: [tuple(p) for p in v.tolist()] for k, v in _POLYGONS.items()
}
_ELLIPSES: dict[str, tuple[float, float]] = {"circle": (1.0, 1.0), "ellipse": (1.0, _ASPECT)}


def _check_shape(shape: str) -> None:
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _rgb(color: tuple[int, int, int] | str) -> tuple[int, int, int]:
    if isinstance(color, str):
        if color not in COLORS:
            raise ValueError(f"unknown colour {color!r}; expected one of {tuple(COLORS)} or an RGB triple")
        return COLORS[color]
    rgb = tuple(int(c) for c in color)
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise ValueError(f"colour must be a name or an RGB triple in [0, 255], got {color!r}")
    return rgb  # type: ignore[return-value]


def shape_area(shape: str, size: float) -> float:
    """The analytic area in pixels^2 of ``shape`` at ``size`` (see the module docstring's table)."""
    _check_shape(shape)
    half = size / 2.0
    if shape in _ELLIPSES:
        a, b = _ELLIPSES[shape]
        return math.pi * a * b * half * half
    x, y = _POLYGONS[shape].T
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) * half * half


def _vertices(
    shape: str, center: tuple[float, float], size: float, angle: float
) -> list[tuple[float, float]]:
    """A polygon's vertices in image pixels (plain Python: cheaper than numpy for a handful of points)."""
    half = size / 2.0
    c, s = math.cos(math.radians(angle)) * half, math.sin(math.radians(angle)) * half
    cx, cy = center
    return [(cx + u * c - v * s, cy + u * s + v * c) for u, v in _POLYGON_LISTS[shape]]


def _half_extent(shape: str, size: float, angle: float) -> tuple[float, float]:
    """Half width and half height of the axis-aligned box around the rotated shape (pixels)."""
    if shape in _ELLIPSES:
        a, b = _ELLIPSES[shape]
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        return size / 2.0 * math.hypot(a * c, b * s), size / 2.0 * math.hypot(a * s, b * c)
    pts = _vertices(shape, (0.0, 0.0), size, angle)
    return max(abs(x) for x, _ in pts), max(abs(y) for _, y in pts)


def _crossings(
    shape: str, center: tuple[float, float], size: float, angle: float, ys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where the horizontal lines ``y = ys`` cross the shape's outline: ``(row index, x)`` pairs.

    Scanning a row from the left, a point is inside when an odd number of crossings lie at or before it."""
    cx, cy = center
    if shape in _ELLIPSES:
        a, b = _ELLIPSES[shape]
        half = size / 2.0
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        ia, ib = 1.0 / (a * half) ** 2, 1.0 / (b * half) ** 2
        # (u/A)^2 + (v/B)^2 <= 1 with u = dx c + dy s, v = -dx s + dy c, as a quadratic p dx^2 + q dx + r <= 0
        p = c * c * ia + s * s * ib
        dy = ys - cy
        q = (2.0 * c * s * (ia - ib)) * dy
        disc = q * q - 4.0 * p * ((s * s * ia + c * c * ib) * dy * dy - 1.0)
        rows = np.flatnonzero(disc > 0)
        q, root = q[rows], np.sqrt(disc[rows])
        return np.concatenate([rows, rows]), cx + np.concatenate([-q - root, root - q]) / (2.0 * p)
    pts = _vertices(shape, center, size, angle)
    edges = [(p1, p2) for p1, p2 in zip(pts, pts[1:] + pts[:1]) if p1[1] != p2[1]]  # horizontals never cross
    y1 = np.array([p1[1] for p1, _ in edges])
    y2 = np.array([p2[1] for _, p2 in edges])
    slope = np.array([(p2[0] - p1[0]) / (p2[1] - p1[1]) for p1, p2 in edges])
    offset = np.array([p1[0] for p1, _ in edges]) - y1 * slope  # x = offset + y * slope
    yy = ys[:, None]
    rows, edge = np.nonzero((y1 <= yy) != (y2 <= yy))  # half-open rule: a shared vertex is counted once
    return rows, offset[edge] + ys[rows] * slope[edge]


def _patch(
    shape: str,
    center: tuple[float, float],
    size: float,
    angle: float,
    height: int,
    width: int,
    samples: int,
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Rasterise a shape inside its bounding box: ``(region, mask)``, mask bool (samples 1) or float32 coverage.

    Scanline fill: per sample row, each outline crossing toggles the first sample at or right of it, and a
    running parity marks the inside samples. Samples sit at ``(k + 0.5) / samples`` inside each pixel."""
    _check_shape(shape)
    if not size > 0:
        raise ValueError(f"size must be positive, got {size}")
    center = (float(center[0]), float(center[1]))
    ex, ey = _half_extent(shape, size, angle)
    x0, x1 = max(math.floor(center[0] - ex), 0), min(math.ceil(center[0] + ex), width)
    y0, y1 = max(math.floor(center[1] - ey), 0), min(math.ceil(center[1] + ey), height)
    if x1 <= x0 or y1 <= y0:
        return None
    rows, cols = (y1 - y0) * samples, (x1 - x0) * samples
    ys = y0 + (np.arange(rows) + 0.5) / samples
    row, xc = _crossings(shape, center, size, angle, ys)
    # Index of the first sample at or right of each crossing; column `cols` is a spare that keeps each row's
    # toggle count even, so one running sum over the flattened rows never leaks parity into the next row.
    first = np.clip(np.ceil((xc - x0) * samples - 0.5), 0, cols).astype(np.intp)
    toggles = np.bincount(row * (cols + 1) + first, minlength=rows * (cols + 1))
    parity = (np.cumsum(toggles) & 1).reshape(rows, cols + 1)[:, :cols]
    if samples == 1:
        return (slice(y0, y1), slice(x0, x1)), parity.astype(bool)
    cover = parity.reshape(y1 - y0, samples, x1 - x0, samples).mean(axis=(1, 3), dtype=np.float32)
    return (slice(y0, y1), slice(x0, x1)), cover


def draw_shape_mask(
    shape: str,
    center: tuple[float, float],
    size: float,
    angle: float,
    height: int,
    width: int,
    *,
    antialias: bool = False,
) -> np.ndarray:
    """Rasterise one shape on an empty ``height x width`` canvas.

    Returns a bool ``[H, W]`` mask (pixel centres inside the shape), or with ``antialias`` a float32 ``[H, W]``
    coverage map in ``[0, 1]`` from 4x4 supersampling. Parts outside the canvas are cut off.
    """
    patch = _patch(shape, center, size, angle, height, width, _AA_SAMPLES if antialias else 1)
    out = np.zeros((height, width), dtype=np.float32 if antialias else bool)
    if patch is not None:
        out[patch[0]] = patch[1]
    return out


@dataclass
class ObjectSpec:
    """One object: ``shape`` (in :data:`SHAPES`), ``color`` (name in :data:`COLORS` or RGB), ``center`` ``(x, y)``
    and ``size`` in pixels, ``angle`` in degrees. For videos, per frame: ``velocity`` ``(vx, vy)`` pixels,
    ``angular_velocity`` degrees and ``size_velocity`` pixels (the size never drops below 1)."""

    shape: str
    color: tuple[int, int, int] | str
    center: tuple[float, float]
    size: float
    angle: float = 0.0
    velocity: tuple[float, float] = (0.0, 0.0)
    angular_velocity: float = 0.0
    size_velocity: float = 0.0

    def __post_init__(self) -> None:
        _check_shape(self.shape)
        _rgb(self.color)
        if not self.size > 0:
            raise ValueError(f"size must be positive, got {self.size}")

    @property
    def rgb(self) -> tuple[int, int, int]:
        return _rgb(self.color)

    @property
    def label(self) -> int:
        """Index of the shape in :data:`SHAPES`."""
        return SHAPES.index(self.shape)


@dataclass
class Scene:
    """A rendered image.

    ``image`` uint8 ``[H, W, 3]``; ``instance_mask`` int32 ``[H, W]`` (0 background, ``i + 1`` = ``objects[i]``).
    The per-object arrays cover the K *visible* objects (at least one pixel) in painter's order:
    ``boxes`` float32 ``[K, 4]`` ``(x0, y0, x1, y1)`` of the visible mask (x1, y1 exclusive), ``labels`` int64
    ``[K]`` (index in :data:`SHAPES`), ``colors`` (name or RGB, as given), ``instance_ids`` int32 ``[K]`` (the
    object's value in ``instance_mask``). ``objects`` lists every spec, hidden ones included.
    """

    image: np.ndarray
    instance_mask: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    colors: list[str | tuple[int, int, int]]
    instance_ids: np.ndarray
    objects: list[ObjectSpec] = field(default_factory=list)

    @property
    def shape_names(self) -> list[str]:
        return [SHAPES[i] for i in self.labels]


@dataclass
class VideoScene:
    """A rendered clip of T frames with K objects (all of them, visible or not).

    ``frames`` uint8 ``[T, H, W, 3]``; ``masks`` int32 ``[T, H, W]`` (``i + 1`` = ``objects[i]``); ``tracks``
    float32 ``[T, K, 2]`` the ``(x, y)`` centres; ``boxes`` float32 ``[T, K, 4]`` of the visible masks, NaN where
    an object is hidden or out of frame; ``labels`` int64 ``[K]``; ``colors`` (name or RGB, as given);
    ``objects`` the initial specs.
    """

    frames: np.ndarray
    masks: np.ndarray
    tracks: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    colors: list[str | tuple[int, int, int]]
    objects: list[ObjectSpec] = field(default_factory=list)


def _background_array(background, height: int, width: int) -> np.ndarray:
    if isinstance(background, np.ndarray) and background.ndim == 3:
        if background.shape != (height, width, 3):
            raise ValueError(f"background must be [{height}, {width}, 3], got {list(background.shape)}")
        return np.ascontiguousarray(background, dtype=np.uint8)
    return _solid(np.array(_rgb(background), dtype=np.uint8), height, width)


def _solid(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """A contiguous ``[H, W, 3]`` fill (tiling is much faster than copying a broadcast view)."""
    return np.tile(np.tile(rgb, width), height).reshape(height, width, 3)


def _interp_matrix(n: int, g: int) -> np.ndarray:
    """``[n, g]`` weights that linearly interpolate ``g`` evenly spaced knots at ``n`` evenly spaced points."""
    f = np.linspace(0.0, g - 1, n)
    i0 = np.minimum(f.astype(np.intp), g - 2)
    out = np.zeros((n, g))
    out[np.arange(n), i0] = 1.0 - (f - i0)
    out[np.arange(n), i0 + 1] = f - i0
    return out


def _composite(
    height: int, width: int, objects: Sequence[ObjectSpec], background: np.ndarray, antialias: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Paint objects in order; returns image, instance mask, visible flags [K] and boxes [K, 4] (NaN if hidden)."""
    image = background.astype(np.float32) if antialias else background.copy()
    instance = np.zeros((height, width), dtype=np.int32)
    regions: list[tuple[slice, slice] | None] = []
    for k, obj in enumerate(objects):
        patch = _patch(
            obj.shape, obj.center, obj.size, obj.angle, height, width, _AA_SAMPLES if antialias else 1
        )
        regions.append(None if patch is None else patch[0])
        if patch is None:
            continue
        region, cover = patch
        rgb = np.array(obj.rgb, dtype=np.float32 if antialias else np.uint8)
        if antialias:
            view = image[region]
            view += (rgb - view) * cover[..., None]
            mask = cover >= 0.5
        else:
            mask = cover
            view = image[region]
            for ch in range(3):  # one channel at a time is faster than a [h, w, 3] boolean assignment
                view[..., ch][mask] = rgb[ch]
        instance[region][mask] = k + 1
    if antialias:
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)

    boxes = np.full((len(objects), 4), np.nan, dtype=np.float32)
    for k, region in enumerate(regions):
        if region is None:
            continue
        own = instance[region] == k + 1
        rows, cols = np.flatnonzero(own.any(axis=1)), np.flatnonzero(own.any(axis=0))
        if rows.size:
            ys, xs = region
            boxes[k] = (
                xs.start + cols[0],
                ys.start + rows[0],
                xs.start + cols[-1] + 1,
                ys.start + rows[-1] + 1,
            )
    visible = ~np.isnan(boxes[:, 0])
    return image, instance, visible, boxes


def render_objects(
    height: int,
    width: int,
    objects: Sequence[ObjectSpec],
    background: tuple[int, int, int] | str | np.ndarray = (0, 0, 0),
    *,
    antialias: bool = False,
) -> Scene:
    """Render ``objects`` in painter's order (later on top) over ``background``: an RGB triple, a colour name or
    a uint8 ``[H, W, 3]`` array (see :func:`random_background`). With ``antialias`` the edges are blended by
    4x4-supersampled coverage and a pixel joins an object's mask when its coverage is at least 0.5; without it,
    every mask pixel has exactly the object's colour."""
    objects = list(objects)
    bg = _background_array(background, height, width)
    image, instance, visible, boxes = _composite(height, width, objects, bg, antialias)
    ids = np.flatnonzero(visible)
    return Scene(
        image=image,
        instance_mask=instance,
        boxes=boxes[ids],
        labels=np.array([objects[i].label for i in ids], dtype=np.int64),
        colors=[objects[i].color for i in ids],
        instance_ids=(ids + 1).astype(np.int32),
        objects=objects,
    )


def random_objects(
    rng: np.random.Generator | int,
    num_objects: int,
    height: int,
    width: int,
    *,
    shapes: Sequence[str] = SHAPES,
    colors: Sequence[str | tuple[int, int, int]] | None = None,
    size_range: tuple[float, float] = (0.15, 0.35),
    min_visible: float = 0.5,
    max_velocity: float = 0.0,
    rotate: bool = True,
    max_tries: int = 50,
) -> list[ObjectSpec]:
    """Draw ``num_objects`` random specs, in painter's order.

    Each object gets a shape from ``shapes`` and a colour from ``colors`` (default: every name in :data:`COLORS`)
    uniformly, a size uniform in ``size_range`` times ``min(height, width)``, a uniform angle when ``rotate``, a
    centre that keeps the whole shape in the image (when it fits) and a velocity of uniform direction and speed in
    ``[0.5, 1] * max_velocity`` pixels per frame (``(0, 0)`` when ``max_velocity`` is 0; the layout does not depend
    on it). Placement is resampled, up to ``max_tries`` times per object, until every object so far keeps at least
    ``min_visible`` of its pixels visible (visible pixels / pixels it covers alone); when no try succeeds the best
    one is kept. Only the first frame of a video is checked.
    """
    rng = np.random.default_rng(rng)
    for s in shapes:
        _check_shape(s)
    if not shapes:
        raise ValueError("shapes must not be empty")
    palette = list(COLORS) if colors is None else list(colors)
    if not palette:
        raise ValueError("colors must not be empty")
    for c in palette:
        _rgb(c)
    lo, hi = size_range
    if not 0 < lo <= hi:
        raise ValueError(f"size_range must satisfy 0 < low <= high, got {size_range}")
    base = min(height, width)

    instance = np.zeros((height, width), dtype=np.int32)
    full = np.zeros(0, dtype=np.int64)  # pixels each placed object covers alone
    shown = np.zeros(0, dtype=np.int64)  # pixels each placed object still shows
    objects: list[ObjectSpec] = []
    for k in range(num_objects):
        best = None
        for _ in range(max(max_tries, 1)):
            shape = shapes[int(rng.integers(len(shapes)))]
            color = palette[int(rng.integers(len(palette)))]
            size = float(rng.uniform(lo, hi)) * base
            angle = float(rng.uniform(0.0, 360.0)) if rotate else 0.0
            ex, ey = _half_extent(shape, size, angle)
            cx = float(rng.uniform(ex, width - ex)) if 2 * ex < width else width / 2.0
            cy = float(rng.uniform(ey, height - ey)) if 2 * ey < height else height / 2.0
            speed = float(rng.uniform(0.5, 1.0)) * max_velocity
            heading = float(rng.uniform(0.0, 2.0 * math.pi))
            spec = ObjectSpec(
                shape, color, (cx, cy), size, angle, (speed * math.cos(heading), speed * math.sin(heading))
            )
            patch = _patch(shape, (cx, cy), size, angle, height, width, 1)
            if patch is None:
                continue
            region, mask = patch
            own = int(mask.sum())
            if own == 0:
                continue
            covered = np.bincount(instance[region][mask], minlength=k + 1)[1:]
            left = shown - covered
            score = float((left / full).min()) if k else 1.0
            if best is None or score > best[0]:
                best = (score, spec, region, mask, own, left)
            if score >= min_visible:
                break
        if best is None:  # degenerate sizes that never touch the canvas
            raise ValueError(f"could not place object {k} inside a {height}x{width} image")
        _, spec, region, mask, own, left = best
        instance[region][mask] = k + 1
        full = np.append(full, own)
        shown = np.append(left, own)
        objects.append(spec)
    return objects


def random_background(
    rng: np.random.Generator | int,
    height: int,
    width: int,
    kind: Literal["gradient", "solid", "noise"] = "gradient",
) -> np.ndarray:
    """A random uint8 ``[H, W, 3]`` background, every channel in ``[20, 135]``.

    ``solid``: one colour; ``gradient``: a linear blend between two colours along a random direction; ``noise``:
    smooth low-frequency colour noise (a random 3x3 to 5x5 grid of colours, bilinearly upsampled).
    """
    rng = np.random.default_rng(rng)

    def colours(*shape: int) -> np.ndarray:
        return rng.uniform(_BG_LOW, _BG_HIGH, size=(*shape, 3))

    if kind == "solid":
        return _solid(np.rint(colours()).astype(np.uint8), height, width)
    if kind == "gradient":
        c0, c1 = colours().astype(np.float32), colours().astype(np.float32)
        theta = rng.uniform(0.0, 2.0 * math.pi)
        cx, cy = np.float32(math.cos(theta)), np.float32(math.sin(theta))
        t = np.arange(width, dtype=np.float32) * cx + np.arange(height, dtype=np.float32)[:, None] * cy
        t_min = min(0.0, (width - 1) * cx) + min(0.0, (height - 1) * cy)
        t_max = max(0.0, (width - 1) * cx) + max(0.0, (height - 1) * cy)
        t = (t - np.float32(t_min)) / np.float32(max(t_max - t_min, 1e-9))
        img = c0 + (c1 - c0) * t[..., None]
    elif kind == "noise":
        g = int(rng.integers(3, 6))
        grid = colours(g, g)  # [gy, gx, 3]
        rows = np.tensordot(_interp_matrix(height, g), grid, axes=(1, 0))  # [H, gx, 3]
        img = np.einsum("hgc,wg->hwc", rows, _interp_matrix(width, g), optimize=True)
    else:
        raise ValueError(f"unknown background kind {kind!r}; expected 'gradient', 'solid' or 'noise'")
    return (img + 0.5).astype(np.uint8)  # values lie in [20, 135]: truncation rounds


_BACKGROUND_KINDS = ("solid", "gradient", "noise")


def render_scene(
    height: int,
    width: int,
    *,
    num_objects: int = 3,
    shapes: Sequence[str] = SHAPES,
    colors: Sequence[str | tuple[int, int, int]] | None = None,
    size_range: tuple[float, float] = (0.15, 0.35),
    min_visible: float = 0.5,
    background: str | tuple[int, int, int] | np.ndarray = "random",
    antialias: bool = False,
    rng: np.random.Generator | int,
) -> Scene:
    """A random scene: :func:`random_objects` then :func:`render_objects`.

    ``background``: ``"random"`` (a random kind of :func:`random_background`), ``"solid"``, ``"gradient"``,
    ``"noise"``, ``"black"``, a colour name, an RGB triple or a uint8 ``[H, W, 3]`` array. The objects are drawn
    from ``rng`` before the background.
    """
    rng = np.random.default_rng(rng)
    objects = random_objects(
        rng,
        num_objects,
        height,
        width,
        shapes=shapes,
        colors=colors,
        size_range=size_range,
        min_visible=min_visible,
    )
    if isinstance(background, str) and background in (*_BACKGROUND_KINDS, "random"):
        kind = background
        if kind == "random":
            kind = _BACKGROUND_KINDS[int(rng.integers(len(_BACKGROUND_KINDS)))]
        background = random_background(rng, height, width, kind)  # type: ignore[arg-type]
    elif isinstance(background, str) and background == "black":
        background = (0, 0, 0)
    return render_objects(height, width, objects, background, antialias=antialias)


def _trajectory(obj: ObjectSpec, num_frames: int, height: int, width: int, border: str) -> list[ObjectSpec]:
    """Per-frame specs of one object; frame 0 is ``obj`` itself."""
    pos = [float(obj.center[0]), float(obj.center[1])]
    vel = [float(obj.velocity[0]), float(obj.velocity[1])]
    size, angle = float(obj.size), float(obj.angle)
    states = []
    for t in range(num_frames):
        if t:
            size = max(size + obj.size_velocity, 1.0)
            angle += obj.angular_velocity
            prev = list(pos)
            pos = [pos[0] + vel[0], pos[1] + vel[1]]
            if border != "free":
                for axis, (half, extent) in enumerate(
                    zip(_half_extent(obj.shape, size, angle), (width, height))
                ):
                    lo, hi = half, extent - half
                    if lo > hi:  # larger than the frame: no wall to hit
                        continue
                    if border == "clamp":
                        pos[axis] = min(max(pos[axis], lo), hi)
                    elif pos[axis] < lo and vel[axis] < 0:
                        vel[axis] = -vel[axis]
                        if prev[axis] >= lo:  # mirror the overshoot back inside
                            pos[axis] = min(2 * lo - pos[axis], hi)
                    elif pos[axis] > hi and vel[axis] > 0:
                        vel[axis] = -vel[axis]
                        if prev[axis] <= hi:
                            pos[axis] = max(2 * hi - pos[axis], lo)
        states.append(
            replace(obj, center=(pos[0], pos[1]), size=size, angle=angle, velocity=(vel[0], vel[1]))
        )
    return states


def render_video(
    num_frames: int,
    height: int,
    width: int,
    objects: Sequence[ObjectSpec],
    background: tuple[int, int, int] | str | np.ndarray = (0, 0, 0),
    *,
    border: Literal["bounce", "clamp", "free"] = "bounce",
    antialias: bool = False,
) -> VideoScene:
    """Render ``objects`` moving over ``num_frames`` frames (frame 0 is the specs as given).

    Each frame every object moves by its ``velocity``, turns by ``angular_velocity`` and grows by
    ``size_velocity``. At the frame's edges (where the shape's bounding box would leave the frame) ``border``
    decides: ``"bounce"`` mirrors the overshoot and reverses that velocity component, ``"clamp"`` stops the centre
    at the edge, ``"free"`` lets the object leave the frame. ``background`` is as in :func:`render_objects`, or a
    per-frame uint8 ``[T, H, W, 3]`` array.
    """
    if border not in ("bounce", "clamp", "free"):
        raise ValueError(f"unknown border {border!r}; expected 'bounce', 'clamp' or 'free'")
    objects = list(objects)
    per_frame_bg = isinstance(background, np.ndarray) and background.ndim == 4
    if per_frame_bg and background.shape != (num_frames, height, width, 3):
        raise ValueError(
            f"background must be [{num_frames}, {height}, {width}, 3], got {list(background.shape)}"
        )
    states = [_trajectory(o, num_frames, height, width, border) for o in objects]
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    masks = np.empty((num_frames, height, width), dtype=np.int32)
    tracks = np.zeros((num_frames, len(objects), 2), dtype=np.float32)
    boxes = np.full((num_frames, len(objects), 4), np.nan, dtype=np.float32)
    static_bg = None if per_frame_bg else _background_array(background, height, width)
    for t in range(num_frames):
        frame_objects = [s[t] for s in states]
        bg = _background_array(background[t], height, width) if per_frame_bg else static_bg
        frames[t], masks[t], _, boxes[t] = _composite(height, width, frame_objects, bg, antialias)
        if objects:
            tracks[t] = [o.center for o in frame_objects]
    return VideoScene(
        frames=frames,
        masks=masks,
        tracks=tracks,
        boxes=boxes,
        labels=np.array([o.label for o in objects], dtype=np.int64),
        colors=[o.color for o in objects],
        objects=objects,
    )


def color_name(color: tuple[int, int, int] | str) -> str:
    """The name in :data:`COLORS` nearest (Euclidean RGB) to ``color``; names pass through."""
    rgb = np.array(_rgb(color), dtype=np.float64)
    if isinstance(color, str):
        return color
    names = list(COLORS)
    dists = [float(np.sum((np.array(COLORS[n]) - rgb) ** 2)) for n in names]
    return names[int(np.argmin(dists))]


_DIRECTIONS = (
    "right",
    "down and right",
    "down",
    "down and left",
    "left",
    "up and left",
    "up",
    "up and right",
)


def describe(obj: ObjectSpec, *, min_speed: float = 1e-6) -> str:
    """A caption such as ``"a red square moving right"`` or ``"a blue circle"`` (slower than ``min_speed``).

    The direction is the nearest of eight (``"up and right"`` etc.; up is towards row 0)."""
    name = color_name(obj.color)
    article = "an" if name[0] in "aeiou" else "a"
    text = f"{article} {name} {obj.shape}"
    vx, vy = obj.velocity
    if math.hypot(vx, vy) < min_speed:
        return text
    sector = round(math.degrees(math.atan2(vy, vx)) / 45.0) % 8
    return f"{text} moving {_DIRECTIONS[sector]}"
