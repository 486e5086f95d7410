"""The metric networks: I3D (FVD) and ArcFace IR-SE50 (ID) in the released files' layouts, 'same' padding, the
metrics' maths, and one-line errors for mismatched weight files."""

import pytest
import torch
import torch.nn.functional as F
from pv3d.cli import main
from pv3d.evaluate import (
    clip_features,
    identity_similarity,
    load_arcface,
    load_feature_net,
    multiview_identity,
)
from pv3d.models.arcface import ArcFaceIRSE50
from pv3d.models.i3d import InceptionI3d, SameMaxPool3d, Unit3D, i3d_input, same_padding
from safetensors.torch import save_file

from visioncore.hub import CheckpointError

I3D_RELEASED = {  # names and shapes in i3d_pretrained_400.pt / rgb_imagenet.pt
    "Conv3d_1a_7x7.conv3d.weight": (64, 3, 7, 7, 7),
    "Conv3d_1a_7x7.bn.running_mean": (64,),
    "Conv3d_2c_3x3.conv3d.weight": (192, 64, 3, 3, 3),
    "Mixed_3b.b0.conv3d.weight": (64, 192, 1, 1, 1),
    "Mixed_3b.b1a.bn.running_var": (96,),
    "Mixed_3b.b1b.conv3d.weight": (128, 96, 3, 3, 3),
    "Mixed_4f.b2b.conv3d.weight": (128, 32, 3, 3, 3),
    "Mixed_5c.b3b.conv3d.weight": (128, 832, 1, 1, 1),
    "logits.conv3d.weight": (400, 1024, 1, 1, 1),
    "logits.conv3d.bias": (400,),
}
ARCFACE_RELEASED = {  # names and shapes in model_ir_se50.pth
    "input_layer.0.weight": (64, 3, 3, 3),
    "input_layer.2.weight": (64,),
    "body.0.res_layer.5.fc1.weight": (4, 64, 1, 1),
    "body.3.shortcut_layer.0.weight": (128, 64, 1, 1),
    "body.3.shortcut_layer.1.running_mean": (128,),
    "body.23.res_layer.4.running_var": (512,),
    "output_layer.0.weight": (512,),
    "output_layer.3.weight": (512, 512 * 7 * 7),
    "output_layer.4.running_mean": (512,),
}


def _released_style(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The net's own (random-init) state dict without ``num_batches_tracked``, as in the TF-converted I3D file."""
    return {k: v.clone() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}


def test_same_padding_is_tensorflows():
    # n = 9, k = 3, s = 2: 9 mod 2 = 1 -> total 2 (1, 1); n = 10: total 1 -> (0, 1), the extra pixel at the back
    assert same_padding((9, 10, 7), (3, 3, 3), (2, 2, 2)) == (1, 1, 0, 1, 1, 1)
    assert same_padding((16, 224, 224), (7, 7, 7), (2, 2, 2)) == (2, 3, 2, 3, 2, 3)
    assert same_padding((5, 5, 5), (1, 1, 1), (1, 1, 1)) == (0,) * 6
    unit = Unit3D(1, 1, (1, 3, 1), (1, 2, 1), batch_norm=False, relu=False)
    with torch.no_grad():
        unit.conv3d.weight.fill_(1.0)
        unit.conv3d.bias.zero_()
    x = torch.arange(4.0).reshape(1, 1, 1, 4, 1)
    # windows [0, 1, 2] and [2, 3, pad]: 3 and 5 (symmetric padding 1 would give 1 and 6)
    assert unit(x).flatten().tolist() == [3.0, 5.0]
    assert unit(torch.zeros(1, 1, 3, 9, 2)).shape == (1, 1, 3, 5, 2)  # ceil(n / s)
    pool = SameMaxPool3d((1, 3, 3), (1, 2, 2))
    assert pool(torch.rand(1, 2, 3, 112, 111)).shape == (1, 2, 3, 56, 56)


def test_i3d_has_the_released_layout_and_loads_strictly(tmp_path):
    net = InceptionI3d()
    state = net.state_dict()
    for key, shape in I3D_RELEASED.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith("logits.bn") for k in state)
    weights = _released_style(net)
    torch.save(weights, tmp_path / "i3d_pretrained_400.pt")
    loaded = load_feature_net(tmp_path / "i3d_pretrained_400.pt")
    assert isinstance(loaded, InceptionI3d) and not loaded.training
    assert torch.equal(loaded.Mixed_5c.b3b.conv3d.weight, weights["Mixed_5c.b3b.conv3d.weight"])
    save_file(weights, tmp_path / "i3d.safetensors")
    assert torch.equal(
        load_feature_net(tmp_path / "i3d.safetensors").logits.conv3d.bias, weights["logits.conv3d.bias"]
    )
    weights["Mixed_3b.b1.conv3d.weight"] = weights.pop("Mixed_3b.b1b.conv3d.weight")
    torch.save(weights, tmp_path / "renamed.pt")
    with pytest.raises(
        CheckpointError, match=r"renamed\.pt.*Mixed_3b\.b1b\.conv3d\.weight.*Mixed_3b\.b1\.conv3d"
    ):
        load_feature_net(tmp_path / "renamed.pt")


def test_arcface_has_the_released_layout_and_embeds_on_the_sphere(tmp_path):
    net = ArcFaceIRSE50()
    state = net.state_dict()
    for key, shape in ARCFACE_RELEASED.items():
        assert tuple(state[key].shape) == shape, key
    assert len(net.body) == 24 and not any(k.startswith("body.0.shortcut_layer") for k in state)
    assert round(sum(p.numel() for p in net.parameters()) / 1e5) == 438  # IR-SE50: 43.8M parameters
    weights = _released_style(net)
    torch.save(weights, tmp_path / "model_ir_se50.pth")
    arcface = load_arcface(tmp_path / "model_ir_se50.pth")
    assert torch.equal(arcface.output_layer[3].weight, weights["output_layer.3.weight"])
    faces = torch.rand(3, 3, 40, 40, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        emb = arcface.embed(faces)
    assert emb.shape == (3, 512) and torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    # ID: the same face in every view scores 1; three different faces score lower
    same = identity_similarity(emb[:1, None].expand(1, 4, 512))
    assert same == pytest.approx(1.0, abs=1e-6)
    assert identity_similarity(emb[None, [0, 1, 2, 0]]) < 0.99


def test_identity_similarity_averages_the_papers_pairs():
    e1, e2 = torch.eye(2)
    # views (e1, e2, e1, e1): pairs (0,2) 1, (3,1) 0, (0,1) 0, (3,2) 1, (0,3) 1, (2,1) 0
    assert identity_similarity(torch.stack([e1, 3 * e2, e1, 2 * e1])[None]) == pytest.approx(0.5)


def test_i3d_input_and_fvd_through_the_real_i3d():
    u = torch.randint(0, 256, (1, 9, 3, 224, 224), generator=torch.Generator().manual_seed(0))
    clip = u / 127.5 - 1  # 8-bit frames at I3D's size pass through unchanged
    assert torch.allclose(i3d_input(clip), clip.transpose(1, 2), atol=1e-6)
    # 8 x 16 frames: short side to 224 (16 -> 448 wide), centre crop: only the middle (ones) is seen
    border = torch.full((1, 9, 3, 8, 2), -1.0)
    wide = torch.cat([border, torch.ones(1, 9, 3, 8, 12), border], dim=-1)
    assert torch.allclose(i3d_input(wide), torch.ones(1, 3, 9, 224, 224), atol=1e-6)
    net = InceptionI3d().eval()
    gen = torch.Generator().manual_seed(0)
    with (
        torch.no_grad()
    ):  # He-initialised convs keep the signal through the 20 layers (torch's default fades it)
        for m in net.modules():
            if isinstance(m, torch.nn.Conv3d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2 / m.weight[0].numel()) ** 0.5)
    a = torch.rand(2, 9, 3, 8, 8, generator=gen) * 2 - 1
    b = (a + 0.5 * torch.randn(2, 9, 3, 8, 8, generator=gen)).clamp(-1, 1)
    feats = clip_features(net, torch.cat([a, b]), batch=2)  # tiny clips resized to 224, the 400 logits
    from visioncore.metrics import frechet_distance

    itself = frechet_distance(feats[:2].numpy(), feats[:2].numpy())
    other = frechet_distance(feats[:2].numpy(), feats[2:].numpy())
    assert feats.shape == (4, 400) and other > 0 and abs(itself) < 1e-4 * other
    with pytest.raises(ValueError, match="9 frames"):
        net(i3d_input(a[:1, :8]))


def test_identity_of_a_generator(tmp_path):
    from pv3d.models import build_generator

    g = build_generator("tiny").eval()
    arcface = ArcFaceIRSE50().eval()
    with torch.no_grad():
        score = multiview_identity(g, arcface, 2, seed=0, batch=1)
        again = multiview_identity(g, arcface, 2, seed=0, batch=1)
    assert 0 < score <= 1 and score == pytest.approx(again, abs=1e-6)


def test_mismatched_metric_weights_are_one_line_errors(tmp_path, capsys):
    torch.save({"conv.weight": torch.zeros(2, 2)}, tmp_path / "wrong.pt")
    base = ["evaluate", "--config", "tiny", "--weights", str(tmp_path / "nomodel"), "--data", str(tmp_path)]
    for flag, model in (("--feature-weights", "InceptionI3d"), ("--id-weights", "ArcFaceIRSE50")):
        code = main(
            [*base, flag, str(tmp_path / "wrong.pt"), "--out", str(tmp_path / "o"), "--device", "cpu"]
        )
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
        assert "wrong.pt" in err and model in err and "conv.weight" in err
        assert not (tmp_path / "o").exists()
    code = main(
        [
            *base,
            "--feature-weights",
            str(tmp_path / "wrong.pt"),
            "--set",
            "data.num_frames=4",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "9 frames" in capsys.readouterr().err


def test_clip_features_do_not_depend_on_the_batch():
    net = load_feature_net(None)
    clips = torch.rand(3, 4, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    feats = clip_features(net, clips, batch=2)
    assert torch.allclose(feats, clip_features(net, clips, batch=3), atol=1e-5)
    assert F.cosine_similarity(feats[0], feats[1], dim=0) < 0.999
