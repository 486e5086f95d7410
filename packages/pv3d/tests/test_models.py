"""Generator and discriminators: motion path, determinism, layouts, save/load, shipped configs."""

import pytest
import torch
from pv3d.cameras import canonical_camera, pose_vector
from pv3d.config import get_config
from pv3d.models import (
    ImageDiscriminator,
    TriPlaneGenerator,
    VideoDiscriminator,
    build_discriminators,
    build_generator,
    video_input,
)

from visioncore.config import ConfigError, config_names


@pytest.fixture(scope="module")
def tiny_g():
    torch.manual_seed(0)
    g = build_generator("tiny")
    with torch.no_grad():  # a visible motion branch: untrained noise strengths are 0, biases small
        for block in (g.synthesis.b4, g.synthesis.b8):
            block.motion.conv.weight.mul_(3)
    return g.eval()


def _inputs(b=2, t=(0.0, 0.5, 1.0)):
    g = torch.Generator().manual_seed(1)
    z, zm = torch.randn(b, 16, generator=g), torch.randn(b, 16, generator=g)
    return z, zm, torch.tensor([t] * b), pose_vector(torch.linspace(-0.2, 0.2, b))


def _jitter(cfg):
    return torch.rand(
        cfg.render_resolution**2, cfg.n_coarse + cfg.n_fine, generator=torch.Generator().manual_seed(3)
    )


def _run(g, z, zm, t, c, **kw):
    fixed = torch.Generator().manual_seed(7)
    return g(z, zm, t, c, noise_mode="const", generator=fixed, jitter=_jitter(g.config), **kw)


def test_generator_outputs_and_const_noise_determinism(tiny_g):
    z, zm, t, c = _inputs()
    with torch.no_grad():
        a, b = _run(tiny_g, z, zm, t, c), _run(tiny_g, z, zm, t, c)
    assert a["image"].shape == (2, 3, 3, 32, 32) and a["image_raw"].shape == (2, 3, 3, 16, 16)
    assert a["image_depth"].shape == (2, 3, 1, 16, 16) and a["weights_sum"].shape == (2, 3, 1, 16, 16)
    for key in a:
        assert torch.equal(a[key], b[key])
    # frames at different t differ; the depth stays inside the ray range
    assert (a["image"][:, 0] - a["image"][:, 2]).abs().mean() > 1e-3
    assert a["image_depth"].min() >= 2.25 and a["image_depth"].max() <= 3.3


def test_motion_enters_as_z_motion_times_t(tiny_g):
    z, zm, t, c = _inputs()
    with torch.no_grad():
        a = _run(tiny_g, z, zm, t, c)["image"]
        other = _run(tiny_g, z, torch.randn_like(zm), t, c)["image"]
        zero = _run(tiny_g, z, torch.zeros_like(zm), t, c)["image"]
    change = (a - other).abs().mean(dim=(0, 2, 3, 4))
    assert change[0] == 0  # at t = 0 the motion branch sees z_motion * 0: z_motion cannot matter
    assert change[2] > change[1] > 0
    # z_motion = 0 is the same as t = 0 for every frame
    assert torch.equal(zero[:, 1], zero[:, 0]) and torch.equal(zero[:, 2], zero[:, 0])


def test_per_frame_conditioning_and_render_cameras(tiny_g):
    z, zm, t, c = _inputs(b=1)
    c_render = pose_vector(torch.tensor([-0.3, 0.0, 0.3]))[None]
    with torch.no_grad():
        out = _run(tiny_g, z, zm, torch.zeros(1, 3), c, c_render=c_render)
    # same w, same t: only the render camera moves the frames
    assert (out["image_raw"][0, 0] - out["image_raw"][0, 2]).abs().mean() > 1e-3
    per_frame = c[:, None].expand(1, 3, 25)
    with torch.no_grad():
        a = _run(tiny_g, z, zm, t, c)
        b = _run(tiny_g, z, zm, t, per_frame)
    assert torch.allclose(a["image"], b["image"], atol=1e-5)


def test_video_discriminator_input_layout():
    frames = torch.randn(2, 2, 3, 8, 8)
    t = torch.tensor([[0.2, 0.7], [0.0, 1.0]])
    c = torch.randn(2, 2, 25)
    x, cc = video_input(frames, t, c)
    assert x.shape == (2, 7, 8, 8) and cc.shape == (2, 50)
    assert torch.equal(x[:, :3], frames[:, 0]) and torch.equal(x[:, 3:6], frames[:, 1])
    assert torch.allclose(x[0, 6], torch.full((8, 8), 0.5)) and torch.allclose(x[1, 6], torch.ones(8, 8))
    assert torch.equal(cc[:, :25], c[:, 0]) and torch.equal(cc[:, 25:], c[:, 1])


def test_discriminators_use_their_inputs():
    torch.manual_seed(0)
    d_img, d_vid = build_discriminators("tiny")
    img, raw, c = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 16, 16), pose_vector(torch.zeros(4))
    base = d_img(img, raw, c)
    assert base.shape == (4, 1)
    assert not torch.allclose(base, d_img(img, raw * 0, c))  # the raw image is a D input
    assert not torch.allclose(base, d_img(img, raw, pose_vector(torch.full((4,), 0.3))))  # so is the camera
    frames = torch.randn(4, 2, 3, 32, 32)
    x1, cc = video_input(frames, torch.tensor([[0.0, 0.1]] * 4), c[:, None].expand(4, 2, 25))
    x2, _ = video_input(frames, torch.tensor([[0.0, 0.9]] * 4), c[:, None].expand(4, 2, 25))
    assert not torch.allclose(d_vid(x1, cc), d_vid(x2, cc))  # the dt plane matters


def test_save_and_load_round_trip(tmp_path, tiny_g):
    tiny_g.save_pretrained(tmp_path / "g")
    loaded = TriPlaneGenerator.from_pretrained(tmp_path / "g")
    z, zm, t, c = _inputs()
    with torch.no_grad():
        assert torch.equal(_run(tiny_g, z, zm, t, c)["image"], _run(loaded, z, zm, t, c)["image"])
    d_img, d_vid = build_discriminators("tiny")
    d_img.save_pretrained(tmp_path / "di")
    d_vid.save_pretrained(tmp_path / "dv")
    assert torch.equal(
        ImageDiscriminator.from_pretrained(tmp_path / "di").b32.conv0.weight, d_img.b32.conv0.weight
    )
    assert VideoDiscriminator.from_pretrained(tmp_path / "dv").b32.fromrgb.weight.shape[1] == 7


def test_every_shipped_config_builds():
    names = config_names("pv3d")
    assert {"voxceleb", "voxceleb-res128", "celebvhq", "talkinghead", "tiny", "repro"} <= set(names)
    for name in names:  # every config validates; the small ones are built
        cfg = get_config(name)
        if cfg.generator.plane_resolution <= 64:
            g = build_generator(cfg)
            d_img, d_vid = build_discriminators(cfg)
            assert g.num_ws == 2 * len(g.synthesis.resolutions)
            assert d_img.resolution == d_vid.resolution == g.config.image_resolution
    assert get_config("voxceleb-res128").generator.render_resolution == 128
    paper = build_generator("voxceleb")
    d_img, d_vid = build_discriminators("voxceleb")
    assert d_img.b512.fromrgb.weight.shape[1] == 6 and d_vid.b512.fromrgb.weight.shape[1] == 7
    assert paper.num_ws == 14 and paper.config.render_resolution == 64
    assert all(
        hasattr(getattr(paper.synthesis, f"b{r}"), "motion") == (r <= 32) for r in paper.synthesis.resolutions
    )


def test_config_refuses_bad_values():
    with pytest.raises(ConfigError, match="n_fine"):
        get_config("tiny", ["generator.n_fine=3"])
    with pytest.raises(ConfigError, match="swap_prob_end"):
        get_config("tiny", ["train.swap_prob_end=1.5"])
    with pytest.raises(ConfigError, match="nonexistent"):
        get_config("tiny", ["train.nonexistent=1"])
    assert canonical_camera().shape == (1, 25)
