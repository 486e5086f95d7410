import pytest
import torch
from stprivacy.models import (
    STPrivacy,
    TokenPredictor,
    VideoViT,
    convert_official_state,
    freeze_for_anonymization,
    inflate_image_checkpoint,
    masked_softmax,
    tokens_per_slice,
)
from stprivacy.models.layers import tubelets_to_video, video_to_tubelets

from visioncore.config import ConfigError
from visioncore.hub import CheckpointError


def test_masked_softmax_formula_and_fully_dropped_rows_stay_finite():
    scores = torch.randn(2, 3, 5, 5)
    keep = torch.tensor([[1, 0, 1, 0, 1], [0, 0, 0, 0, 0]], dtype=torch.float32)
    attn = masked_softmax(scores, keep)
    assert torch.isfinite(attn).all()
    # rows sum to 1 (up to eps); dropped keys get only the eps/N floor, the diagonal is always allowed
    assert torch.allclose(attn.sum(-1), torch.ones(2, 3, 5), atol=1e-5)
    assert attn[0, :, 0, 1].max() < 1e-5 and attn[0, :, 0, 3].max() < 1e-5
    assert torch.allclose(
        attn[1], torch.eye(5).expand(3, 5, 5), atol=1e-5
    )  # all dropped: each token on itself
    # against the formula with the max over ALL keys
    mask = keep[:, None, None, :] + (1 - keep[:, None, None, :]) * torch.eye(5)
    a = torch.exp(scores - scores.amax(-1, keepdim=True)) * mask
    assert torch.allclose(attn, (a + 1e-6 / 5) / (a.sum(-1, keepdim=True) + 1e-6))
    # a dropped key far above every allowed one: the row becomes nearly uniform (max over all keys), still finite
    far = torch.zeros(1, 1, 2, 2)
    far[..., 1] = 100.0
    assert torch.isfinite(masked_softmax(far, torch.tensor([[1.0, 0.0]]))).all()
    # all kept: an ordinary softmax
    assert torch.allclose(masked_softmax(scores, torch.ones(2, 5)), scores.softmax(-1), atol=1e-5)


def test_tokens_per_slice_are_cumulative():
    assert [tokens_per_slice(49, 0.7, s) for s in (1, 2, 3)] == [34, 24, 16]
    assert [tokens_per_slice(16, 0.6, s) for s in (1, 2, 3)] == [9, 5, 3]


def test_predictor_needs_d_divisible_by_12_and_survives_dropped_slices():
    with pytest.raises(ConfigError, match="divisible by 12"):
        TokenPredictor(40)
    pred = TokenPredictor(48)
    keep = torch.ones(2, 4 * 16)
    keep[:, :16] = 0  # the whole first slice dropped
    logp = pred(torch.randn(2, 64, 48), keep, slices=4)
    assert logp.shape == (2, 64, 2) and torch.isfinite(logp).all()
    assert torch.allclose(logp.exp().sum(-1), torch.ones(2, 64), atol=1e-5)


def test_tubelet_layout_round_trip_and_channel_last():
    video = torch.randn(2, 3, 8, 32, 32)
    rows = video_to_tubelets(video, (2, 8, 8))
    assert rows.shape == (2, 64, 2 * 8 * 8 * 3)
    assert torch.equal(tubelets_to_video(rows, (2, 8, 8), (4, 4, 4)), video)
    # token 5 = slice 0, row 1, column 1; first value = frame 0, pixel (8, 8), channel 0; then channel 1
    assert rows[0, 5, 0] == video[0, 0, 0, 8, 8] and rows[0, 5, 1] == video[0, 1, 0, 8, 8]


def test_training_path_decisions_are_cumulative_and_dropped_tubelets_zero(tiny_kwargs):
    model = STPrivacy(**tiny_kwargs)
    out = model(torch.randn(3, 3, 8, 32, 32))
    assert out.video.shape == (3, 3, 8, 32, 32) and len(out.decisions) == 3
    for prev, cur in zip(out.decisions, out.decisions[1:]):
        assert (cur <= prev).all()  # a dropped token stays dropped
    assert torch.equal(out.keep, out.decisions[-1].reshape(3, -1))
    rows = video_to_tubelets(out.video, model.tubelet)
    dropped = out.keep == 0
    assert dropped.any() and (rows[dropped] == 0).all()
    assert (rows[~dropped].abs().sum(-1) > 0).all()


def test_test_path_per_slice_topk_positions_and_zero_fill(tiny_kwargs):
    model = STPrivacy(**tiny_kwargs).eval()
    video = torch.randn(2, 3, 8, 32, 32)
    res = model.anonymize(video)
    assert res.index.shape == (2, 4, 3)  # k = 3 of 16 per slice at alpha 0.6
    slice_of = res.index // 16
    assert torch.equal(slice_of, torch.arange(4).view(1, 4, 1).expand(2, 4, 3))
    assert res.keep.sum(1).tolist() == [12, 12]
    rows = video_to_tubelets(res.video, model.tubelet)
    assert (rows[res.keep == 0] == 0).all()
    assert model.anonymize(video, keep_ratio=1.0).index.shape == (2, 4, 16)
    assert model.anonymize(video, keep_ratio=0.8).index.shape == (2, 4, int(16 * 0.8**3))
    random_keep = model.anonymize(video, generator=torch.Generator().manual_seed(1))
    assert random_keep.index.shape == (2, 4, 3) and not torch.equal(random_keep.index, res.index)


@pytest.mark.parametrize("residual", [False, True])
def test_masked_and_gathered_paths_agree(tiny_kwargs, residual):
    model = STPrivacy(**tiny_kwargs, residual=residual).eval()
    if residual:
        torch.nn.init.normal_(model.head_recon.weight, std=0.02)
    with torch.no_grad():  # spread the keep scores so that near-ties cannot flip between the two computations
        for pred in model.predictors:
            pred.out_conv[4].weight.mul_(100)
    video = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        masked = model(video, decide="topk")
    gathered = model.anonymize(video)
    assert torch.equal(masked.keep, gathered.keep)
    assert torch.allclose(masked.video, gathered.video, atol=1e-4)


def test_residual_block_starts_as_identity_on_kept_tubelets(tiny_kwargs):
    model = STPrivacy(**tiny_kwargs, residual=True).eval()
    video = torch.randn(1, 3, 8, 32, 32)
    res = model.anonymize(video)
    assert torch.allclose(res.video, video * _pixel_mask(res.keep, model))


def _pixel_mask(keep, model):
    rows = keep.unsqueeze(-1).expand(-1, -1, 2 * 8 * 8 * 3)
    return tubelets_to_video(rows, model.tubelet, model.grid)


def test_freeze_for_anonymization_keeps_only_the_pab_trainable(tiny_kwargs):
    model = freeze_for_anonymization(STPrivacy(**tiny_kwargs))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(
        n.startswith(("blocks.3.", "blocks.4.", "blocks.5.", "norm_recon", "head_recon")) for n in trainable
    )
    assert any(n.startswith("blocks.3.") for n in trainable)  # from the last pruning location on, inclusive
    out = model(torch.randn(2, 3, 8, 32, 32))
    out.video.square().mean().backward()
    assert all(p.grad is None for n, p in model.named_parameters() if n not in trainable)
    assert model.head_recon.weight.grad.abs().sum() > 0


def test_config_errors(tiny_kwargs):
    with pytest.raises(ConfigError, match="pruning_loc"):
        STPrivacy(**{**tiny_kwargs, "pruning_loc": (3, 1)})
    with pytest.raises(ConfigError, match="keep_ratio"):
        STPrivacy(**{**tiny_kwargs, "keep_ratio": 1.5})
    with pytest.raises(ValueError, match="does not fit"):
        STPrivacy(**tiny_kwargs)(torch.randn(1, 3, 8, 16, 16))


def test_video_vit_aligned_equals_masked_on_the_kept_tokens():
    vit = VideoViT(4, img_size=32, num_frames=8, tubelet=(2, 8, 8), embed_dim=48, depth=2, num_heads=3).eval()
    video = torch.randn(2, 3, 8, 32, 32)
    index = torch.stack([torch.randperm(16)[:5].sort().values + 16 * s for s in range(4)]).expand(2, 4, 5)
    keep = torch.zeros(2, 64).scatter(1, index.reshape(2, -1), 1.0)
    with torch.no_grad():
        assert torch.allclose(vit.forward_aligned(video, index), vit.forward_masked(video, keep), atol=1e-4)
        assert torch.allclose(vit.forward_masked(video, torch.ones(2, 64)), vit(video), atol=1e-4)


def test_save_load_round_trip_and_other_architecture_refused(tmp_path, tiny_kwargs):
    model = STPrivacy(**tiny_kwargs, residual=True)
    model.save_pretrained(tmp_path / "m")
    back = STPrivacy.from_pretrained(tmp_path / "m")
    assert back.residual and back.pruning_loc == (1, 2, 3)
    video = torch.randn(1, 3, 8, 32, 32)
    assert torch.equal(model.eval().anonymize(video).video, back.anonymize(video).video)
    VideoViT(
        4, img_size=32, num_frames=8, tubelet=(2, 8, 8), embed_dim=48, depth=2, num_heads=3
    ).save_pretrained(tmp_path / "v")
    with pytest.raises(CheckpointError):
        STPrivacy.from_pretrained(tmp_path / "v")


def _image_state(d=48, p=8, grid=4):
    torch.manual_seed(1)
    return {
        "cls_token": torch.randn(1, 1, d),
        "pos_embed": torch.randn(1, 1 + grid * grid, d),
        "patch_embed.proj.weight": torch.randn(d, 3, p, p),
        "patch_embed.proj.bias": torch.randn(d),
        "blocks.0.mlp.fc1.weight": torch.randn(4 * d, d),
        "norm.weight": torch.randn(d),
        "head.weight": torch.randn(1000, d),
    }


@pytest.mark.parametrize("mode", ["average", "central"])
def test_inflation_conv_modes(mode):
    state = _image_state()
    out = inflate_image_checkpoint({"model": state}, mode, tubelet_frames=2, grid=(4, 2, 2))
    w = out["patch_embed.proj.weight"]
    assert w.shape == (48, 3, 2, 8, 8)
    assert "cls_token" not in out and "head.weight" not in out and "norm.weight" not in out
    # a static clip gives the image response in both modes
    img = torch.randn(3, 8, 8)
    clip = img.unsqueeze(1).expand(3, 2, 8, 8)
    assert torch.allclose(
        (w * clip).sum((1, 2, 3, 4)), (state["patch_embed.proj.weight"] * img).sum((1, 2, 3)), atol=1e-4
    )
    if mode == "central":
        assert (w[:, :, 0] == 0).all()
    assert out["pos_embed"].shape == (1, 4 * 4, 48)
    assert torch.equal(out["pos_embed"][:, :4], out["pos_embed"][:, 4:8])  # repeated over slices


def test_inflated_checkpoint_loads_into_the_models():
    state = _image_state()
    del state["blocks.0.mlp.fc1.weight"]
    out = inflate_image_checkpoint(state, tubelet_frames=2, grid=(4, 4, 4))
    # same grid (4x4 image -> 4x4 video): positions copied exactly per slice
    assert torch.allclose(out["pos_embed"][0, :16], state["pos_embed"][0, 1:], atol=1e-5)
    model = STPrivacy(
        img_size=32, num_frames=8, tubelet=(2, 8, 8), embed_dim=48, depth=2, num_heads=3, pruning_loc=(1,)
    )
    missing, unexpected = model.load_state_dict(out, strict=False)
    assert not unexpected and "pos_embed" not in missing
    with pytest.raises(ValueError, match="mode"):
        inflate_image_checkpoint(state, "nearest")


def test_official_key_map():
    official = {
        "score_predictor.0.in_conv.1.weight": torch.zeros(48, 48),
        "head_new.weight": torch.zeros(4, 48),
        "blocks.0.attn.q_bias": torch.ones(48),
        "blocks.0.attn.v_bias": torch.full((48,), 2.0),
    }
    ours = convert_official_state(official)
    assert set(ours) == {"predictors.0.in_conv.1.weight", "head.weight", "blocks.0.attn.qkv.bias"}
    assert ours["blocks.0.attn.qkv.bias"].tolist() == [1.0] * 48 + [0.0] * 48 + [2.0] * 48


@pytest.mark.parametrize("family", ["vit", "cnn3d", "cnn2d", "mlp", "bag"])
def test_every_recognizer_family_learns_and_round_trips(family, tmp_path):
    from stprivacy.models import build_recognizer
    from stprivacy.train import load_recognizer

    model = build_recognizer(
        family, 5, video_shape=(8, 32), tubelet=(2, 8, 8), vit=dict(embed_dim=48, depth=1, num_heads=3)
    )
    x, y = torch.randn(8, 3, 8, 32, 32), torch.randint(0, 2, (8, 5)).float()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):  # memorise 8 clips: the loss must fall
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.save_pretrained(tmp_path / family)
    back = load_recognizer(family, tmp_path / family)
    assert torch.allclose(back(x), model.eval()(x), atol=1e-6)
