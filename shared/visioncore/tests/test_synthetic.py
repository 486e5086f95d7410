"""Tests of visioncore.synthetic: geometry, compositing, randomness and motion."""

import math

import numpy as np
import pytest

from visioncore.synthetic import (
    COLORS,
    SHAPES,
    ObjectSpec,
    color_name,
    describe,
    draw_shape_mask,
    random_background,
    random_objects,
    render_objects,
    render_scene,
    render_video,
    shape_area,
)

# Closed forms written out independently of the module's shoelace areas.
ANALYTIC_AREA = {
    "circle": lambda s: math.pi * s * s / 4,
    "square": lambda s: s * s,
    "triangle": lambda s: math.sqrt(3) / 4 * s * s,
    "rectangle": lambda s: 0.6 * s * s,
    "ellipse": lambda s: math.pi * (s / 2) * (0.3 * s),
    "diamond": lambda s: s * s / 2,
    "star": lambda s: 10 * 0.5 * (s / 2) * (s / 4) * math.sin(math.radians(36)),
    "hexagon": lambda s: 3 * math.sqrt(3) / 2 * (s / 2) ** 2,
}


def mask_centroid(mask):
    ys, xs = np.nonzero(mask)
    return xs.mean() + 0.5, ys.mean() + 0.5  # pixel centres


def test_shapes_and_colors_catalogue():
    assert set(ANALYTIC_AREA) == set(SHAPES)
    assert {"red", "green", "blue", "yellow", "cyan", "magenta", "orange", "purple", "white"} <= set(COLORS)
    # every named colour has a channel >= 180: it always contrasts with a random background ([20, 135])
    assert all(max(rgb) >= 180 for rgb in COLORS.values())


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("angle", [0.0, 23.0])
def test_mask_area_and_centroid_match_geometry(shape, angle):
    size, center = 48.0, (40.2, 37.9)
    expected = ANALYTIC_AREA[shape](size)
    assert shape_area(shape, size) == pytest.approx(expected, rel=1e-9)
    mask = draw_shape_mask(shape, center, size, angle, 80, 80)
    assert mask.dtype == bool and mask.shape == (80, 80)
    assert mask.sum() == pytest.approx(expected, rel=0.03)  # pixel quantisation of the outline
    cover = draw_shape_mask(shape, center, size, angle, 80, 80, antialias=True)
    assert cover.dtype == np.float32 and cover.min() >= 0.0 and cover.max() <= 1.0
    assert float(cover.sum()) == pytest.approx(expected, rel=0.005)
    tol = 0.5 if angle == 0 else 0.25  # axis-aligned edges snap to whole pixels
    cx, cy = mask_centroid(mask)
    assert cx == pytest.approx(center[0], abs=tol) and cy == pytest.approx(center[1], abs=tol)


def test_rotation_turns_the_shape():
    # a square turned by 45 degrees is a diamond whose diagonals are sqrt(2) times the side
    turned = draw_shape_mask("square", (32.2, 31.7), 30, 45.0, 64, 64)
    diamond = draw_shape_mask("diamond", (32.2, 31.7), 30 * math.sqrt(2), 0.0, 64, 64)
    iou = (turned & diamond).sum() / (turned | diamond).sum()
    assert iou > 0.98
    # a rectangle is wide at angle 0 and tall at 90 (positive angles turn clockwise on screen)
    wide = draw_shape_mask("rectangle", (32, 32), 40, 0.0, 64, 64)
    tall = draw_shape_mask("rectangle", (32, 32), 40, 90.0, 64, 64)
    assert np.ptp(np.nonzero(wide)[1]) > np.ptp(np.nonzero(wide)[0]) + 10
    assert np.array_equal(tall, wide.T)
    # the triangle's apex points up (towards row 0) at angle 0 and down at 180
    up = draw_shape_mask("triangle", (32, 32), 40, 0.0, 64, 64)
    down = draw_shape_mask("triangle", (32, 32), 40, 180.0, 64, 64)
    assert up[:32].sum() < up[32:].sum() and down[:32].sum() > down[32:].sum()


def test_shape_is_clipped_at_the_canvas_edge():
    mask = draw_shape_mask("square", (0.0, 10.0), 10, 0.0, 20, 20)
    assert mask.sum() == 50  # the left half is off the canvas
    assert not draw_shape_mask("circle", (-50.0, -50.0), 10, 0.0, 20, 20).any()


def test_mask_pixels_have_the_object_colour_and_background_is_untouched():
    objects = [
        ObjectSpec("circle", "red", (20, 20), 20),
        ObjectSpec("star", (10, 200, 90), (44, 40), 26, angle=10),
        ObjectSpec("hexagon", "white", (20, 46), 18),
    ]
    scene = render_objects(64, 64, objects, background=(5, 6, 7))
    assert scene.image.dtype == np.uint8 and scene.image.shape == (64, 64, 3)
    assert scene.instance_mask.dtype == np.int32 and set(np.unique(scene.instance_mask)) == {0, 1, 2, 3}
    for k, obj in enumerate(objects):
        pixels = scene.image[scene.instance_mask == k + 1]
        assert len(pixels) > 0 and (pixels == obj.rgb).all()
    assert (scene.image[scene.instance_mask == 0] == (5, 6, 7)).all()
    assert scene.colors == ["red", (10, 200, 90), "white"]


def test_occlusion_follows_painter_order():
    a = ObjectSpec("square", "red", (24, 32), 24)
    b = ObjectSpec("circle", "blue", (36, 32), 24)
    overlap = draw_shape_mask(a.shape, a.center, a.size, 0, 64, 64) & draw_shape_mask(
        b.shape, b.center, b.size, 0, 64, 64
    )
    assert overlap.sum() > 50
    ab = render_objects(64, 64, [a, b])
    ba = render_objects(64, 64, [b, a])
    assert (ab.instance_mask[overlap] == 2).all() and (ab.image[overlap] == COLORS["blue"]).all()
    assert (ba.instance_mask[overlap] == 2).all() and (ba.image[overlap] == COLORS["red"]).all()
    # a fully covered object is dropped from the per-object arrays but keeps its place in `objects`
    hidden = ObjectSpec("circle", "green", (32, 32), 8)
    cover = ObjectSpec("square", "yellow", (32, 32), 30)
    scene = render_objects(64, 64, [hidden, cover])
    assert not (scene.instance_mask == 1).any()
    assert scene.instance_ids.tolist() == [2] and scene.labels.tolist() == [SHAPES.index("square")]
    assert scene.colors == ["yellow"] and len(scene.objects) == 2


def test_boxes_labels_and_ids_match_the_masks():
    for seed in range(5):
        scene = render_scene(96, 80, num_objects=4, min_visible=0.3, rng=seed)
        assert scene.boxes.dtype == np.float32 and scene.labels.dtype == np.int64
        assert len(scene.boxes) == len(scene.labels) == len(scene.colors) == len(scene.instance_ids)
        shown = [scene.objects[k - 1] for k in scene.instance_ids]
        assert scene.labels.tolist() == [SHAPES.index(o.shape) for o in shown]
        assert scene.shape_names == [o.shape for o in shown]
        for box, k in zip(scene.boxes, scene.instance_ids):
            ys, xs = np.nonzero(scene.instance_mask == k)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    only_stars = render_scene(64, 64, num_objects=3, shapes=("star",), rng=0)
    assert (only_stars.labels == SHAPES.index("star")).all()


def test_render_scene_is_deterministic_per_seed():
    a = render_scene(64, 64, num_objects=4, rng=np.random.default_rng(7))
    b = render_scene(64, 64, num_objects=4, rng=np.random.default_rng(7))
    c = render_scene(64, 64, num_objects=4, rng=np.random.default_rng(8))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.instance_mask, b.instance_mask)
    assert np.array_equal(a.boxes, b.boxes) and a.colors == b.colors
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.instance_mask, c.instance_mask)
    # an int seed is the same as a generator seeded with it
    assert np.array_equal(
        render_scene(64, 64, rng=3).image, render_scene(64, 64, rng=np.random.default_rng(3)).image
    )


def test_random_objects_respect_min_visible_and_choices():
    palette = ["red", "cyan"]
    for seed in range(10):
        objects = random_objects(seed, 5, 64, 64, colors=palette, size_range=(0.2, 0.4), min_visible=0.6)
        assert len(objects) == 5
        assert {o.color for o in objects} <= set(palette)
        scene = render_objects(64, 64, objects)
        for k, obj in enumerate(objects):
            alone = draw_shape_mask(obj.shape, obj.center, obj.size, obj.angle, 64, 64).sum()
            visible = (scene.instance_mask == k + 1).sum()
            assert visible >= 0.6 * alone
            assert 0.2 * 64 <= obj.size <= 0.4 * 64
            assert alone == pytest.approx(shape_area(obj.shape, obj.size), rel=0.1)  # placed inside the image
    # without the constraint the same crowded settings do hide some objects a lot
    worst = 1.0
    for seed in range(10):
        objects = random_objects(seed, 5, 64, 64, size_range=(0.2, 0.4), min_visible=0.0)
        scene = render_objects(64, 64, objects)
        for k, obj in enumerate(objects):
            alone = draw_shape_mask(obj.shape, obj.center, obj.size, obj.angle, 64, 64).sum()
            worst = min(worst, (scene.instance_mask == k + 1).sum() / alone)
    assert worst < 0.6


def test_random_velocity_does_not_change_the_layout():
    still = random_objects(4, 3, 64, 64)
    moving = random_objects(4, 3, 64, 64, max_velocity=2.0)
    assert [o.center for o in still] == [o.center for o in moving]
    assert all(o.velocity == (0.0, 0.0) for o in still)
    assert all(1.0 - 1e-9 <= math.hypot(*o.velocity) <= 2.0 + 1e-9 for o in moving)


@pytest.mark.parametrize("kind", ["solid", "gradient", "noise"])
def test_random_background(kind):
    bg = random_background(np.random.default_rng(0), 48, 64, kind)
    assert bg.dtype == np.uint8 and bg.shape == (48, 64, 3)
    assert bg.min() >= 20 and bg.max() <= 135
    assert np.array_equal(bg, random_background(np.random.default_rng(0), 48, 64, kind))
    assert not np.array_equal(bg, random_background(np.random.default_rng(1), 48, 64, kind))
    steps = np.abs(np.diff(bg.astype(int), axis=0)).max(), np.abs(np.diff(bg.astype(int), axis=1)).max()
    assert max(steps) <= 12  # low-frequency: at most ~(135 - 20) / 12 pixels between knots per pixel
    if kind == "solid":
        assert (bg == bg[0, 0]).all()
    else:
        assert np.ptp(bg.reshape(-1, 3), axis=0).max() > 10


def test_antialias_blends_edges_only():
    obj = ObjectSpec("circle", "white", (16.3, 15.8), 20)
    hard = render_objects(32, 32, [obj])
    soft = render_objects(32, 32, [obj], antialias=True)
    inter = (hard.instance_mask == 1) & (soft.instance_mask == 1)
    union = (hard.instance_mask == 1) | (soft.instance_mask == 1)
    assert inter.sum() / union.sum() > 0.95
    values = np.unique(soft.image[..., 0])
    assert len(values) > 5  # intermediate edge values exist
    assert len(np.unique(hard.image[..., 0])) == 2
    center = draw_shape_mask("circle", obj.center, obj.size - 4, 0, 32, 32)  # well inside the edge
    assert (soft.image[center] == COLORS["white"]).all()


def test_video_motion_follows_velocity():
    obj = ObjectSpec("circle", "red", (20.0, 30.0), 14, velocity=(2.5, -1.0))
    video = render_video(8, 64, 64, [obj], background=(0, 0, 0))
    assert video.frames.shape == (8, 64, 64, 3) and video.masks.shape == (8, 64, 64)
    assert video.tracks.shape == (8, 1, 2) and video.boxes.shape == (8, 1, 4)
    expected = np.array([[20.0 + 2.5 * t, 30.0 - 1.0 * t] for t in range(8)])
    np.testing.assert_allclose(video.tracks[:, 0], expected, atol=1e-5)
    centroids = np.array([mask_centroid(m == 1) for m in video.masks])
    np.testing.assert_allclose(centroids, expected, atol=0.25)
    np.testing.assert_allclose(np.diff(centroids, axis=0), np.tile([2.5, -1.0], (7, 1)), atol=0.4)
    assert (video.frames[video.masks == 1] == COLORS["red"]).all()
    assert video.labels.tolist() == [SHAPES.index("circle")] and video.colors == ["red"]


def test_video_bounces_off_the_border():
    r = 5.0
    obj = ObjectSpec("circle", "cyan", (64 - r - 4.0, 20.0), 2 * r, velocity=(3.0, 0.0))
    video = render_video(6, 40, 64, [obj])
    xs = video.tracks[:, 0, 0]
    hi = 64 - r
    # 55 -> 58 -> 61 would overshoot 59 by 2, so it is mirrored to 57 and moves left from then on
    np.testing.assert_allclose(xs, [55, 58, 2 * hi - 61, 2 * hi - 64, 2 * hi - 67, 2 * hi - 70], atol=1e-5)
    assert np.all(np.diff(xs)[:1] > 0) and np.all(np.diff(xs)[1:] < 0)
    # the object never leaves the frame: its full area stays visible
    areas = (video.masks == 1).sum(axis=(1, 2))
    assert areas.min() >= 0.95 * shape_area("circle", 2 * r)
    centroids = np.array([mask_centroid(m == 1)[0] for m in video.masks])
    assert np.argmax(centroids) == 1 and centroids[-1] < centroids[1] - 5

    clamped = render_video(6, 40, 64, [obj], border="clamp").tracks[:, 0, 0]
    np.testing.assert_allclose(clamped, [55, 58, hi, hi, hi, hi], atol=1e-5)
    free = render_video(8, 40, 64, [obj], border="free")
    np.testing.assert_allclose(free.tracks[:, 0, 0], 55 + 3 * np.arange(8), atol=1e-5)
    assert (free.masks[-1] == 0).all() and np.isnan(free.boxes[-1, 0]).all()
    assert not np.isnan(free.boxes[0, 0]).any()


def test_video_rotation_and_growth():
    spinner = ObjectSpec("square", "orange", (32, 32), 20, angular_velocity=9.0, size_velocity=2.0)
    video = render_video(6, 64, 64, [spinner])
    for t in range(6):
        size, angle = 20 + 2 * t, 9.0 * t
        assert np.array_equal(video.masks[t] == 1, draw_shape_mask("square", (32, 32), size, angle, 64, 64))
        assert (video.masks[t] == 1).sum() == pytest.approx(size * size, rel=0.03)
    widths = video.boxes[:, 0, 2] - video.boxes[:, 0, 0]
    assert np.all(np.diff(widths) > 0)  # grows and turns towards 45 degrees


def test_video_occlusion_follows_painter_order():
    still = ObjectSpec("square", "orange", (32, 32), 24)
    slider = ObjectSpec("circle", "purple", (8, 32), 12, velocity=(4.0, 0.0))
    video = render_video(8, 64, 64, [still, slider])
    square = draw_shape_mask("square", (32, 32), 24, 0, 64, 64)
    for t in range(8):
        circle = draw_shape_mask("circle", (8 + 4 * t, 32), 12, 0, 64, 64)
        assert np.array_equal(video.masks[t] == 2, circle)
        assert np.array_equal(video.masks[t] == 1, square & ~circle)
        assert (video.frames[t][circle] == COLORS["purple"]).all()
    assert (square & draw_shape_mask("circle", (28, 32), 12, 0, 64, 64)).sum() > 50  # they do overlap


def test_video_accepts_per_frame_background():
    bg = np.stack([random_background(t, 32, 32, "noise") for t in range(3)])
    video = render_video(3, 32, 32, [ObjectSpec("triangle", "yellow", (16, 16), 10)], background=bg)
    for t in range(3):
        assert np.array_equal(video.frames[t][video.masks[t] == 0], bg[t][video.masks[t] == 0])


def test_describe_and_color_name():
    assert (
        describe(ObjectSpec("square", "red", (10, 10), 8, velocity=(2.0, 0.0))) == "a red square moving right"
    )
    assert (
        describe(ObjectSpec("circle", "blue", (10, 10), 8, velocity=(0.0, -1.0))) == "a blue circle moving up"
    )
    assert describe(ObjectSpec("star", "orange", (10, 10), 8, velocity=(-1.0, 1.0))) == (
        "an orange star moving down and left"
    )
    assert describe(ObjectSpec("ellipse", "green", (10, 10), 8)) == "a green ellipse"
    assert color_name((250, 10, 20)) == "red" and color_name("cyan") == "cyan"


def test_invalid_input_raises():
    with pytest.raises(ValueError, match="pentagon"):
        ObjectSpec("pentagon", "red", (0, 0), 5)
    with pytest.raises(ValueError, match="teal"):
        ObjectSpec("circle", "teal", (0, 0), 5)
    with pytest.raises(ValueError, match="size"):
        draw_shape_mask("circle", (0, 0), 0.0, 0, 8, 8)
    with pytest.raises(ValueError, match="kind"):
        random_background(0, 8, 8, "plaid")
    with pytest.raises(ValueError, match="border"):
        render_video(2, 8, 8, [], border="wrap")
    with pytest.raises(ValueError, match="background"):
        render_objects(8, 8, [], background=np.zeros((4, 4, 3), np.uint8))
