"""Procedural faces whose parts agree: the synthetic stand-in for FaceForensics++ (`deepfake-mae make-synthetic`).

Every identity has its own geometry, skin and feature colours. A real video shows one identity under ONE expression
shared by all parts (0 smile: crescent eyes, arched brows, wide nostrils, U mouth; 1 frown: slit eyes, lowered inner
brows, nose wrinkles, inverted-U mouth; 2 surprise: round open eyes, high brows, narrow nostrils, open O mouth), with
a mildly varying intensity and a small head motion. A fake swaps ONE part (mouth, eyes+brows or nose) for the same
identity's part rendered under another expression (same tone, same motion) through a feathered box, so only the
disagreement between parts gives it away; "NullSwap" swaps a part for one of the SAME expression (a control).
Landmarks (68 iBUG points) are identity-level: they span each part's box for every expression, so a part mask never
reveals the expression.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from deepfake_mae.data.layout import COMPRESSION

NUM_EXPRESSIONS = 3
SWAP_METHODS = {"MouthSwap": 2, "EyeSwap": 0, "NoseSwap": 1, "NullSwap": 2}  # method -> swapped part index
SUPERSAMPLE = 4  # draw at 4x and downsample with area averaging (anti-aliasing)


@dataclass
class Identity:
    skin: np.ndarray  # RGB 0..255
    background: np.ndarray
    dark: np.ndarray  # eyes / brows
    lips: np.ndarray
    cx: float
    cy: float
    face_ax: float
    face_ay: float
    eye_dx: float
    eye_y: float
    eye_hw: float
    brow_gap: float
    nose_y: float
    nose_w: float
    mouth_y: float
    mouth_hw: float


def random_identity(rng: np.random.Generator) -> Identity:
    """Geometry in fractions of the image side; colours as RGB."""
    r = rng.uniform(150, 240)
    skin = np.array([r, r * rng.uniform(0.68, 0.85), r * rng.uniform(0.52, 0.72)])
    cy = 0.5 + rng.uniform(-0.02, 0.02)
    return Identity(
        skin=skin,
        background=rng.uniform(20, 120, 3),
        dark=rng.uniform(10, 60, 3),
        lips=np.array([rng.uniform(120, 200), rng.uniform(30, 70), rng.uniform(40, 80)]),
        cx=0.5 + rng.uniform(-0.02, 0.02),
        cy=cy,
        face_ax=rng.uniform(0.38, 0.44),
        face_ay=rng.uniform(0.44, 0.48),
        eye_dx=rng.uniform(0.16, 0.19),
        eye_y=cy - rng.uniform(0.10, 0.13),
        eye_hw=rng.uniform(0.085, 0.1),
        brow_gap=rng.uniform(0.085, 0.1),
        nose_y=cy + rng.uniform(0.06, 0.09),
        nose_w=rng.uniform(0.06, 0.075),
        mouth_y=cy + rng.uniform(0.25, 0.28),
        mouth_hw=rng.uniform(0.12, 0.15),
    )


def part_boxes_of(ident: Identity) -> np.ndarray:
    """(3, 4) boxes (x0, y0, x1, y1) in fractions: eyes+brows, nose, mouth; they contain every expression's drawing."""
    hw = ident.eye_hw
    eyes = [
        ident.cx - ident.eye_dx - hw - 0.02,
        ident.eye_y - ident.brow_gap - 0.9 * hw - 0.02,
        ident.cx + ident.eye_dx + hw + 0.02,
        ident.eye_y + 0.95 * hw + 0.01,
    ]
    nose = [
        ident.cx - 1.0 * ident.nose_w - 0.02,
        eyes[3] + 0.01,
        ident.cx + 1.0 * ident.nose_w + 0.02,
        ident.nose_y + 0.04,
    ]
    mh = ident.mouth_hw
    mouth = [
        ident.cx - mh - 0.03,
        ident.mouth_y - 0.55 * mh - 0.02,
        ident.cx + mh + 0.03,
        ident.mouth_y + 0.6 * mh + 0.02,
    ]
    return np.array([eyes, nose, mouth], dtype=np.float64)


def landmarks_of(ident: Identity) -> np.ndarray:
    """(68, 2) iBUG-ordered points (fractions) whose part groups span exactly `part_boxes_of(ident)`."""
    eyes, nose, mouth = part_boxes_of(ident)
    pts = np.zeros((68, 2))
    ang = np.linspace(math.pi, 0, 17)  # jaw: lower half of the face ellipse, image-left to image-right
    pts[0:17] = np.stack(
        [ident.cx - ident.face_ax * np.cos(ang), ident.cy + ident.face_ay * np.sin(ang) * 0.95], 1
    )
    pts[17:27] = np.stack(
        [np.linspace(eyes[0], eyes[2], 10), np.full(10, eyes[1])], 1
    )  # brows on the top edge
    for k, side in enumerate((-1, 1)):  # eyes: 6-point ellipses touching the box's sides and bottom
        ex = ident.cx + side * ident.eye_dx
        t = np.linspace(0, 2 * math.pi, 7)[:-1]
        half = (eyes[2] - eyes[0]) / 2 - ident.eye_dx
        xs = ex + half * np.cos(t)
        ys = (ident.eye_y + eyes[3]) / 2 + (eyes[3] - ident.eye_y) / 2 * np.sin(t)
        pts[36 + 6 * k : 42 + 6 * k] = np.stack([xs, ys], 1)
    pts[27:31] = np.stack([np.full(4, ident.cx), np.linspace(nose[1], nose[3], 4)], 1)
    pts[31:36] = np.stack([np.linspace(nose[0], nose[2], 5), np.full(5, nose[3])], 1)
    mx, my = (mouth[0] + mouth[2]) / 2, (mouth[1] + mouth[3]) / 2
    rx, ry = (mouth[2] - mouth[0]) / 2, (mouth[3] - mouth[1]) / 2
    for first, count, scale in (
        (48, 12, 1.0),
        (60, 8, 0.6),
    ):  # outer / inner lip rings; 48, 54 (60, 64) = corners
        t = math.pi + 2 * math.pi * np.arange(count) / count
        pts[first : first + count] = np.stack([mx + rx * scale * np.cos(t), my + ry * scale * np.sin(t)], 1)
    return pts


def _pt(x: float, y: float, scale: float) -> tuple[int, int]:
    return int(round(x * scale * 16)), int(round(y * scale * 16))  # cv2 shift=4 sub-pixel coordinates


def _ellipse(img, c, axes, scale, angle, a0, a1, color, thickness):
    ax = (max(1, int(round(axes[0] * scale * 16))), max(1, int(round(axes[1] * scale * 16))))
    th = -1 if thickness < 0 else max(1, int(round(thickness * scale)))
    cv2.ellipse(img, _pt(*c, scale), ax, angle, a0, a1, color, th, cv2.LINE_AA, 4)


def _draw_eyes(img, ident: Identity, expr: int, a: float, s: float) -> None:
    hw, dark = ident.eye_hw, tuple(float(v) for v in ident.dark)
    for side in (-1, 1):
        ex, ey = ident.cx + side * ident.eye_dx, ident.eye_y
        by = ey - ident.brow_gap
        if expr == 0:  # crescent eyes, gently arched brows
            _ellipse(img, (ex, ey + 0.35 * hw), (hw * 0.9, hw * 0.7 * a), s, 0, 180, 360, dark, 0.05)
            _ellipse(img, (ex, by + 0.2 * hw), (hw, 0.35 * hw), s, 0, 180, 360, dark, 0.04)
        elif expr == 1:  # slits, brows lowered towards the nose
            _ellipse(img, (ex, ey), (hw * 0.95, hw * 0.16), s, 0, 0, 360, dark, -1)
            inner, outer = ex - side * hw, ex + side * hw
            cv2.line(
                img,
                _pt(outer, by - 0.2 * hw, s),
                _pt(inner, by + 0.45 * hw * a, s),
                dark,
                max(1, int(0.05 * s)),
                cv2.LINE_AA,
                4,
            )
        else:  # round open eyes with pupils, high brows
            _ellipse(img, (ex, ey), (hw * 0.85, hw * 0.85 * a), s, 0, 0, 360, (245.0, 245.0, 240.0), -1)
            _ellipse(img, (ex, ey), (hw * 0.42, hw * 0.42), s, 0, 0, 360, dark, -1)
            _ellipse(img, (ex, by - 0.2 * hw * a), (hw, 0.55 * hw), s, 0, 180, 360, dark, 0.04)


def _draw_nose(img, ident: Identity, expr: int, a: float, s: float) -> None:
    shade = tuple(float(v) for v in ident.skin * 0.45)
    nw, ny = ident.nose_w, ident.nose_y
    if expr == 0:  # wide flared nostrils
        for side in (-1, 1):
            _ellipse(
                img, (ident.cx + side * 0.75 * nw, ny), (0.3 * nw, 0.22 * nw * a), s, 0, 0, 360, shade, -1
            )
    elif expr == 1:  # wrinkled bridge
        for side in (-1, 1):
            x = ident.cx + side * 0.5 * nw
            cv2.line(
                img,
                _pt(x, ny - 0.09, s),
                _pt(x + side * 0.3 * nw, ny - 0.02, s),
                shade,
                max(1, int(0.035 * s)),
                cv2.LINE_AA,
                4,
            )
    else:  # narrow nostrils, long bridge line
        cv2.line(
            img,
            _pt(ident.cx, ny - 0.09, s),
            _pt(ident.cx, ny, s),
            shade,
            max(1, int(0.03 * s)),
            cv2.LINE_AA,
            4,
        )
        for side in (-1, 1):
            _ellipse(
                img, (ident.cx + side * 0.3 * nw, ny + 0.01), (0.15 * nw, 0.15 * nw), s, 0, 0, 360, shade, -1
            )


def _draw_mouth(img, ident: Identity, expr: int, a: float, s: float) -> None:
    mh, my, lips = ident.mouth_hw, ident.mouth_y, tuple(float(v) for v in ident.lips)
    if expr == 0:  # smile (U)
        _ellipse(img, (ident.cx, my - 0.25 * mh), (mh, 0.6 * mh * a), s, 0, 0, 180, lips, 0.06)
    elif expr == 1:  # frown (inverted U)
        _ellipse(img, (ident.cx, my + 0.35 * mh), (mh * 0.9, 0.55 * mh * a), s, 0, 180, 360, lips, 0.06)
    else:  # open O
        _ellipse(img, (ident.cx, my), (0.5 * mh, 0.55 * mh * a), s, 0, 0, 360, (40.0, 10.0, 15.0), -1)
        _ellipse(img, (ident.cx, my), (0.5 * mh, 0.55 * mh * a), s, 0, 0, 360, lips, 0.04)


def render_face(
    ident: Identity, parts_expr: tuple[int, int, int], intensity: float, shift: tuple[float, float], size: int
) -> np.ndarray:
    """One frame, uint8 (size, size, 3) RGB; parts_expr = expression of (eyes+brows, nose, mouth)."""
    s = size * SUPERSAMPLE
    img = np.empty((s, s, 3), np.float32)
    img[:] = ident.background
    # Shift the whole face by translating the drawing canvas (sub-pixel, via an affine warp after drawing).
    _ellipse(
        img,
        (ident.cx, ident.cy),
        (ident.face_ax, ident.face_ay),
        s,
        0,
        0,
        360,
        tuple(float(v) for v in ident.skin),
        -1,
    )
    _draw_eyes(img, ident, parts_expr[0], intensity, s)
    _draw_nose(img, ident, parts_expr[1], intensity, s)
    _draw_mouth(img, ident, parts_expr[2], intensity, s)
    small = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    if shift != (0.0, 0.0):
        m = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
        small = cv2.warpAffine(
            small, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    return small


def _feather_mask(box: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """Box (pixels) -> soft (size, size) weight: 1 inside, Gaussian-feathered seam outside the box edge."""
    m = np.zeros((size, size), np.float32)
    x0, y0, x1, y1 = box
    m[
        max(0, int(math.floor(y0))) : int(math.ceil(y1)) + 1,
        max(0, int(math.floor(x0))) : int(math.ceil(x1)) + 1,
    ] = 1
    blurred = cv2.GaussianBlur(m, (0, 0), sigma)
    return np.maximum(m, np.clip(blurred * 2, 0, 1))  # keep the box fully swapped, feather only outward


@dataclass
class SyntheticVideo:
    frames: np.ndarray  # (T, H, W, 3) uint8
    landmarks: np.ndarray  # (T, 68, 2) float32 pixels


class FaceVideoGenerator:
    """Renders the real video of an identity and its part-swapped fakes (all share motion and intensity)."""

    def __init__(self, size: int = 32, num_frames: int = 8, noise: float = 2.0):
        self.size, self.num_frames, self.noise = size, num_frames, noise

    def _motion(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        t = np.arange(self.num_frames)
        scale = self.size / 32
        shifts = np.stack([np.cumsum(rng.normal(0, 0.3, self.num_frames)) for _ in range(2)], 1) * scale
        shifts = np.clip(shifts - shifts.mean(0), -1.2 * scale, 1.2 * scale)
        intensity = rng.uniform(0.7, 1.0) + 0.08 * np.sin(
            2 * math.pi * t / max(2, self.num_frames) + rng.uniform(0, 6)
        )
        return shifts, np.clip(intensity, 0.55, 1.0)

    def _render(self, ident, exprs, shifts, intensity, rng) -> np.ndarray:
        out = []
        for k in range(self.num_frames):
            frame = render_face(
                ident, exprs, float(intensity[k]), (float(shifts[k, 0]), float(shifts[k, 1])), self.size
            )
            out.append(frame + rng.normal(0, self.noise, frame.shape).astype(np.float32))
        return np.stack(out)

    def identity_videos(
        self, rng: np.random.Generator, methods: tuple[str, ...]
    ) -> dict[str, SyntheticVideo]:
        """{"Real": ..., method: ...} for one identity; each fake is the real video with one part swapped."""
        ident = random_identity(rng)
        expr = int(rng.integers(NUM_EXPRESSIONS))
        shifts, intensity = self._motion(rng)
        base_pts = landmarks_of(ident) * self.size
        landmarks = (base_pts[None] + shifts[:, None, :]).astype(np.float32)
        real = self._render(ident, (expr, expr, expr), shifts, intensity, rng)
        videos = {"Real": SyntheticVideo(_to_uint8(real), landmarks)}
        boxes_px = part_boxes_of(ident) * self.size
        for method in methods:
            part = SWAP_METHODS[method]
            other = (
                expr
                if method == "NullSwap"
                else int((expr + rng.integers(1, NUM_EXPRESSIONS)) % NUM_EXPRESSIONS)
            )
            # The donor: same identity and motion, another expression (or another intensity for the null swap).
            donor_intensity = np.clip(intensity + rng.uniform(-0.15, 0.15), 0.55, 1.0)
            donor = self._render(ident, (other, other, other), shifts, donor_intensity, rng)
            fake = np.empty_like(real)
            for k in range(self.num_frames):
                box = boxes_px[part] + np.array([shifts[k, 0], shifts[k, 1]] * 2)
                w = _feather_mask(box, self.size, sigma=0.5 * self.size / 32)[..., None]
                fake[k] = real[k] * (1 - w) + donor[k] * w
            videos[method] = SyntheticVideo(_to_uint8(fake), landmarks)
        return videos


def uncropped(frames: np.ndarray) -> np.ndarray:
    """(T, S, S, 3) face crops -> (T, 2S, 2S, 3) frames with the face at offset (S/2, S/2) on a grey background."""
    t, size = frames.shape[:2]
    canvas = np.full((t, 2 * size, 2 * size, 3), 96, np.uint8)
    canvas[:, size // 2 : size // 2 + size, size // 2 : size // 2 + size] = frames
    return canvas


def _to_uint8(frames: np.ndarray) -> np.ndarray:
    return np.clip(np.round(frames), 0, 255).astype(np.uint8)


def make_synthetic(
    out: str | Path,
    num_pairs: dict[str, int] | None = None,
    size: int = 32,
    num_frames: int = 8,
    methods: tuple[str, ...] = ("MouthSwap", "EyeSwap", "NoseSwap", "NullSwap"),
    seed: int = 0,
    raw_videos: bool = True,
) -> Path:
    """Write a synthetic FF++-layout dataset: `{Real,<methods>}/c23/{cropped_faces/*.avi (FFV1), landmarks/*.npy}`,
    `splits/{train,val,test}.json` as [target, source] id pairs (fakes named target_source, FF++ style).

    With `raw_videos`, `videos/*.mp4` hold the uncropped "source" video as FF++ ships it: the face pasted at a fixed
    offset into a 2x larger grey frame, H.264 (c23-like lossy). The crops and landmarks are the ground truth for
    these; the procedural drawings are not meant for a face detector."""
    from visioncore.video import write_video

    out = Path(out)
    num_pairs = num_pairs or {"train": 8, "val": 2, "test": 4}
    gen = FaceVideoGenerator(size=size, num_frames=num_frames)
    rng = np.random.default_rng(seed)
    next_id = 0
    (out / "splits").mkdir(parents=True, exist_ok=True)
    for folder in ("Real", *methods):
        for sub in ("cropped_faces", "landmarks", *(("videos",) if raw_videos else ())):
            (out / folder / COMPRESSION / sub).mkdir(parents=True, exist_ok=True)
    for split, count in num_pairs.items():
        pairs = []
        for _ in range(count):
            a, b = f"{next_id:03d}", f"{next_id + 1:03d}"
            next_id += 2
            pairs.append([a, b])
            for target, source in ((a, b), (b, a)):
                videos = gen.identity_videos(rng, methods)
                for folder, video in videos.items():
                    name = target if folder == "Real" else f"{target}_{source}"
                    base = out / folder / COMPRESSION
                    write_video(base / "cropped_faces" / f"{name}.avi", video.frames, fps=25, codec="ffv1")
                    np.save(base / "landmarks" / f"{name}.npy", video.landmarks)
                    if raw_videos:
                        write_video(base / "videos" / f"{name}.mp4", uncropped(video.frames), fps=25)
        (out / "splits" / f"{split}.json").write_text(json.dumps(pairs))
    return out
