"""Renderer and cameras: tri-plane projections, ray marching, the hand-set sphere's depth, mirror cameras."""

import math

import torch
from pv3d.cameras import FOCAL, PIVOT, canonical_camera, mirror_camera, pose_vector, split_camera
from pv3d.models.handset import sphere_depth, sphere_scene
from pv3d.models.rendering import ray_bundle, ray_march, render_rays, sample_pdf, sample_triplane


def test_sample_triplane_projections_include_the_zx_quirk():
    # plane p holds a linear ramp along width (first coordinate) in channel 0 and along height in channel 1
    res = 8
    g = ((torch.arange(res) + 0.5) / res * 2 - 1) / 2
    v, u = torch.meshgrid(g, g, indexing="ij")
    planes = torch.stack([u, v]).expand(1, 3, 2, res, res).clone()
    pts = torch.tensor([[[0.1, -0.2, 0.15]]])
    feats = sample_triplane(planes, pts)  # [1, 3, 1, 2]
    expected = torch.tensor([[0.1, -0.2], [0.1, 0.15], [0.15, 0.1]])  # (x,y), (x,z), (z,x)
    assert torch.allclose(feats[0, :, 0], expected, atol=1e-5)
    # outside the box: zeros padding
    assert sample_triplane(planes, torch.tensor([[[2.0, 2.0, 2.0]]])).abs().max() == 0


def test_ray_march_opaque_slab_and_empty_ray():
    depths = torch.linspace(2.0, 3.0, 11).reshape(1, 1, 11, 1).repeat(1, 2, 1, 1)
    sigma = torch.full((1, 2, 11, 1), -50.0)
    sigma[0, 0, 5:] = 200.0  # ray 0 hits an opaque slab at depth ~2.5
    colors = torch.ones(1, 2, 11, 3) * 0.75
    rgb, depth, weights = ray_march(colors, sigma, depths)
    assert weights.shape == (1, 2, 10, 1)
    assert abs(depth[0, 0].item() - 2.45) < 0.06  # first midpoint whose density is fully on (2.45)
    assert torch.allclose(rgb[0, 0], torch.full((3,), 0.5), atol=1e-3)  # 0.75 -> [-1, 1]
    assert weights[0, 1].sum() < 1e-6 and depth[0, 1].item() == depths.max().item()  # empty ray: far bound


def test_ray_bundle_centre_ray_and_row_major_order():
    c = pose_vector(0.0)
    origins, dirs = ray_bundle(c, 5)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(1, 25), atol=1e-6)
    cam2world, _ = split_camera(c)
    forward = cam2world[0, :3, 2]
    assert torch.allclose(dirs[0, 12], forward, atol=1e-6)  # pixel (2, 2) is the principal point
    # row-major: index 1 is to the right of index 0 (camera +x), index 5 below it (camera +y, world -y)
    right, down = cam2world[0, :3, 0], cam2world[0, :3, 1]
    assert ((dirs[0, 1] - dirs[0, 0]) @ right) > 0 and ((dirs[0, 5] - dirs[0, 0]) @ down) > 0
    assert down[1] < 0  # image down is world down (y up)
    assert torch.allclose(origins[0, 0], cam2world[0, :3, 3])


def test_handset_sphere_central_ray_depth():
    """Radius-0.4 sphere at the pivot, canonical render camera: central ray at 2.7 - 0.4 = 2.3 +- one coarse step.

    The sphere reaches z = 0.6, outside EG3D's unit box, so this scene uses box_warp 2."""
    planes, dec = sphere_scene(PIVOT, 0.4, channels=8, hidden=4, resolution=64, box_warp=2.0)
    c = pose_vector(0.0, 0.0)
    origins, dirs = ray_bundle(c, 9)
    g = torch.Generator().manual_seed(0)
    _, depth, opacity = render_rays(
        planes, dec, origins, dirs, n_coarse=48, n_fine=48, near=2.25, far=3.3, box_warp=2.0, generator=g
    )
    centre = 4 * 9 + 4
    assert abs(depth[0, centre, 0].item() - 2.3) < (3.3 - 2.25) / 47
    assert opacity[0, centre, 0] > 0.99


def test_handset_sphere_matches_analytic_render():
    """Off-pivot sphere (the repro's render gate scene) at three yaws: silhouette and depth."""
    centre = (0.1, -0.05, 0.25)
    planes, dec = sphere_scene(centre, 0.2, channels=8, hidden=4, resolution=64)
    c = pose_vector(torch.tensor([-0.3, 0.0, 0.3]))
    origins, dirs = ray_bundle(c, 24)
    g = torch.Generator().manual_seed(0)
    _, depth, opacity = render_rays(
        planes.expand(3, -1, -1, -1, -1),
        dec,
        origins,
        dirs,
        n_coarse=16,
        n_fine=16,
        near=2.25,
        far=3.3,
        generator=g,
    )
    true_depth, hit = sphere_depth(origins, dirs, centre, 0.2)
    pred = opacity > 0.5
    iou = (pred & hit).sum() / (pred | hit).sum()
    assert 0.2 < hit.float().mean() < 0.6 and iou > 0.95
    assert (depth[hit & pred] - true_depth[hit & pred]).abs().mean() < 0.01


def test_sample_pdf_concentrates_on_heavy_bins():
    bins = torch.linspace(0, 1, 11).reshape(1, 11)
    weights = torch.zeros(1, 10)
    weights[0, 7] = 1.0
    s = sample_pdf(bins, weights, 64, torch.rand(1, 64, generator=torch.Generator().manual_seed(0)))
    assert ((s >= 0.7) & (s <= 0.8)).float().mean() > 0.95


def test_mirror_camera_renders_the_mirror_image():
    """x-symmetric sphere: the mirrored camera sees the horizontally flipped image; mirror(yaw) == -yaw."""
    planes, dec = sphere_scene((0.08, 0.0, 0.2), 0.2, channels=8, hidden=4)
    mirrored_planes, mirrored_dec = sphere_scene((-0.08, 0.0, 0.2), 0.2, channels=8, hidden=4)
    c = pose_vector(0.3, 0.1)
    assert torch.allclose(mirror_camera(c), pose_vector(-0.3, 0.1), atol=1e-6)
    res = 12
    jitter = torch.rand(res * res, 16, generator=torch.Generator().manual_seed(0))
    o, d = ray_bundle(c, res)
    _, depth, _ = render_rays(planes, dec, o, d, n_coarse=16, n_fine=0, near=2.25, far=3.3, jitter=jitter)
    om, dm = ray_bundle(mirror_camera(c), res)
    flipped_jitter = jitter.reshape(res, res, 16).flip(1).reshape(res * res, 16)
    _, depth_m, _ = render_rays(
        mirrored_planes,
        mirrored_dec,
        om,
        dm,
        n_coarse=16,
        n_fine=0,
        near=2.25,
        far=3.3,
        jitter=flipped_jitter,
    )
    img, img_m = depth.reshape(res, res), depth_m.reshape(res, res)
    assert (img - img.flip(1)).abs().max() > 0.05  # the scene seen from this camera is not symmetric
    assert torch.allclose(img_m, img.flip(1), atol=2e-3)


def test_camera_vectors():
    c = canonical_camera()
    cam2world, k = split_camera(c)
    assert torch.allclose(cam2world[0, :3, 3], torch.tensor([0.0, 0.0, 2.7]), atol=1e-6)
    assert k[0, 0, 0] == FOCAL and k[0, 0, 2] == 0.5
    side = pose_vector(math.pi / 2)
    assert side[0, 3] > 2.6  # yaw +90 degrees puts the camera on +x
