import math

import pytest
import torch
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

from visioncore.backbones import (
    CheckpointError,
    LoadReport,
    ResNet,
    ViT,
    load_weights,
    resnet18,
    resnet50,
    sincos_pos_embed_2d,
    vit_base,
    vit_large,
    vit_small,
    vit_tiny,
)

TINY = dict(img_size=32, patch_size=4, embed_dim=64, depth=2, num_heads=4)


def tiny_vit(**kwargs) -> ViT:
    torch.manual_seed(0)
    return vit_tiny(**{**TINY, **kwargs}).eval()


def images(batch=2, size=32) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------------------------------------------ ViT constructors


@pytest.mark.parametrize(
    ("ctor", "dim", "depth", "heads"),
    [(vit_tiny, 192, 12, 3), (vit_small, 384, 12, 6), (vit_base, 768, 12, 12), (vit_large, 1024, 24, 16)],
)
def test_standard_widths_and_token_shape(ctor, dim, depth, heads):
    # meta device: shapes only, no memory or compute even for ViT-L
    vit = ctor(img_size=64, device="meta", weight_init="skip")
    assert isinstance(vit, ViT)
    assert (vit.embed_dim, len(vit.blocks), vit.blocks[0].attn.num_heads) == (dim, depth, heads)
    assert (vit.patch_size, vit.grid_size, vit.num_patches) == (16, (4, 4), 16)
    assert vit.timm_model.num_classes == 0 and vit.timm_model.dynamic_img_size
    out = vit.forward_tokens(torch.empty(2, 3, 64, 64, device="meta"))
    assert out.shape == (2, 1 + 16, dim)


def test_real_forward_default_tiny():
    vit = vit_tiny(img_size=32).eval()
    with torch.no_grad():
        assert vit(images()).shape == (2, 1 + 4, 192)


def test_custom_tiny_vit_and_kwargs_pass_through():
    vit = vit_tiny(**TINY, drop_path_rate=0.1, qkv_bias=False)
    assert (vit.embed_dim, len(vit.blocks), vit.grid_size, vit.num_patches) == (64, 2, (8, 8), 64)
    assert vit.blocks[0].attn.qkv.bias is None
    assert vit.blocks[1].drop_path1.drop_prob == pytest.approx(0.1)
    assert vit.norm is vit.timm_model.norm


def test_token_shapes_with_cls_and_final_norm():
    vit, x = tiny_vit(), images()
    with torch.no_grad():
        tokens = vit.forward_tokens(x)
        normed = vit.forward_tokens(x, final_norm=True)
        patches = vit.forward_tokens(x, with_cls=False)
    assert tokens.shape == (2, 65, 64) and patches.shape == (2, 64, 64)
    torch.testing.assert_close(patches, tokens[:, 1:])
    assert not torch.allclose(tokens, normed)
    torch.testing.assert_close(normed, vit.norm(tokens))
    # final_norm=True is exactly timm's forward_features
    torch.testing.assert_close(normed, vit.timm_model.forward_features(x))
    torch.testing.assert_close(vit(x), tokens)


def test_visible_all_in_order_equals_full_forward():
    vit, x = tiny_vit(), images()
    visible = torch.arange(vit.num_patches).expand(2, -1)
    with torch.no_grad():
        torch.testing.assert_close(vit.forward_tokens(x, visible=visible), vit.forward_tokens(x))


def test_visible_subset_shape_and_mae_semantics():
    vit, x = tiny_vit(), images()
    keep = torch.stack(
        [torch.randperm(64, generator=torch.Generator().manual_seed(i))[:16] for i in range(2)]
    )
    with torch.no_grad():
        out = vit.forward_tokens(x, visible=keep)
        assert out.shape == (2, 1 + 16, 64)
        assert vit.forward_tokens(x, visible=keep, with_cls=False).shape == (2, 16, 64)
        # the same result as running timm's blocks on (cls + pos) ++ gathered (patch + pos) tokens
        tm = vit.timm_model
        patches = tm.patch_embed(x).flatten(1, 2) + tm.pos_embed[:, 1:]
        gathered = torch.gather(patches, 1, keep[:, :, None].expand(-1, -1, 64))
        cls = (tm.cls_token + tm.pos_embed[:, :1]).expand(2, -1, -1)
        torch.testing.assert_close(out, tm.blocks(torch.cat([cls, gathered], 1)))


def test_visible_rejects_bad_index_tensor():
    vit, x = tiny_vit(), images()
    with pytest.raises(ValueError, match="LongTensor"):
        vit.forward_tokens(x, visible=torch.zeros(2, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match="LongTensor"):
        vit.forward_tokens(x, visible=torch.zeros(3, 4, dtype=torch.long))


def test_dynamic_image_size_interpolates_position_embeddings():
    vit = tiny_vit()
    with torch.no_grad():
        assert vit.forward_tokens(images(size=64)).shape == (2, 1 + 256, 64)
        assert vit.forward_tokens(torch.randn(1, 3, 48, 32)).shape == (1, 1 + 12 * 8, 64)
        keep = torch.tensor([[0, 255, 17]])
        assert vit.forward_tokens(images(1, 64), visible=keep).shape == (1, 4, 64)
    assert vit.grid_size == (8, 8)  # the configured grid does not change


def test_sincos_option_is_fixed_and_mae_like():
    vit = tiny_vit(pos_embed="sincos")
    pos = vit.timm_model.pos_embed
    assert not pos.requires_grad
    torch.testing.assert_close(pos[0], sincos_pos_embed_2d(64, 8, cls_token=True))
    assert "timm_model.pos_embed" in vit.state_dict()
    with torch.no_grad():
        assert vit.forward_tokens(images(size=64)).shape == (2, 257, 64)
    assert vit_tiny(**TINY, pos_embed="none").timm_model.pos_embed is None
    with pytest.raises(ValueError, match="pos_embed"):
        vit_tiny(**TINY, pos_embed="rope")


# ---------------------------------------------------------------------------------------------------- sincos


def test_sincos_values_match_hand_formula_on_2x2_grid():
    emb = sincos_pos_embed_2d(8, 2)
    assert emb.shape == (4, 8) and emb.dtype == torch.float32

    def one_d(p):  # D/2 = 4 channels per axis: omega = [1, 1/100]
        return [math.sin(p), math.sin(p / 100), math.cos(p), math.cos(p / 100)]

    # patch r * w + c: first half encodes the column c, second half the row r (MAE's layout)
    expected = torch.tensor([one_d(c) + one_d(r) for r in range(2) for c in range(2)])
    torch.testing.assert_close(emb, expected)
    with_cls = sincos_pos_embed_2d(8, (2, 2), cls_token=True)
    assert with_cls.shape == (5, 8)
    assert torch.equal(with_cls[0], torch.zeros(8)) and torch.equal(with_cls[1:], emb)


def test_sincos_properties():
    emb = sincos_pos_embed_2d(64, (3, 5))
    assert emb.shape == (15, 64)
    # each (sin, cos) pair has unit norm, so every row has norm sqrt(D / 2)
    torch.testing.assert_close(emb.norm(dim=1), torch.full((15,), math.sqrt(32.0)))
    # a row is most similar to itself and rows are all distinct
    sim = emb @ emb.T
    assert torch.equal(sim.argmax(dim=1), torch.arange(15))
    assert torch.all(sim.diagonal()[:, None] > sim + 1e-3 - 1e3 * torch.eye(15))
    with pytest.raises(ValueError, match="multiple of 4"):
        sincos_pos_embed_2d(30, 4)


def test_sincos_temperature():
    # the default is MAE's 10000: passing it explicitly changes nothing
    assert torch.equal(sincos_pos_embed_2d(64, 3), sincos_pos_embed_2d(64, 3, temperature=10000.0))
    # the formula with another temperature (D/2 = 4 channels per axis: omega = [1, 1/sqrt(T)])
    emb = sincos_pos_embed_2d(8, 2, temperature=4.0)
    one_d = lambda p: [math.sin(p), math.sin(p / 2), math.cos(p), math.cos(p / 2)]  # noqa: E731
    torch.testing.assert_close(emb, torch.tensor([one_d(c) + one_d(r) for r in range(2) for c in range(2)]))

    def mean_cosine(table):  # mean cosine similarity between the codes of different patches
        unit = table / table.norm(dim=1, keepdim=True)
        sim = unit @ unit.T
        return sim[~torch.eye(len(table), dtype=torch.bool)].mean().item()

    # on a 3x3 grid MAE's codes are nearly collinear; a low temperature spreads them
    assert mean_cosine(sincos_pos_embed_2d(64, 3)) > 0.9
    assert mean_cosine(sincos_pos_embed_2d(64, 3, temperature=10.0)) < 0.85
    assert (
        mean_cosine(sincos_pos_embed_2d(64, 6, temperature=10.0))
        < mean_cosine(sincos_pos_embed_2d(64, 6)) - 0.2
    )
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="temperature"):
            sincos_pos_embed_2d(64, 3, temperature=bad)


# ---------------------------------------------------------------------------------------------------- ResNet


def test_resnet_maps_shape():
    net = resnet18().eval()
    assert isinstance(net, ResNet) and net.out_channels == 512 and net.stride == 32
    with torch.no_grad():
        assert net.forward_maps(images(size=64)).shape == (2, 512, 2, 2)
        assert net(torch.randn(1, 3, 96, 64)).shape == (1, 512, 3, 2)
    big = resnet50(device="meta")
    assert big.out_channels == 2048
    assert big.forward_maps(torch.empty(1, 3, 64, 64, device="meta")).shape == (1, 2048, 2, 2)


# ---------------------------------------------------------------------------------------------------- load_weights


def outputs_equal(a: ViT, b: ViT, size=32):
    x = images(size=size)
    with torch.no_grad():
        torch.testing.assert_close(a.forward_tokens(x), b.forward_tokens(x))


def test_load_safetensors_round_trip(tmp_path):
    src = tiny_vit()
    path = tmp_path / "vit.safetensors"
    save_file(src.state_dict(), path)
    dst = vit_tiny(**TINY).eval()
    report = load_weights(dst, path)
    assert report == LoadReport([], []) and report.missing == []
    outputs_equal(src, dst)
    outputs_equal(src, vit_tiny(**TINY, weights=path).eval())


def test_load_timm_layout_pth_with_classifier(tmp_path):
    torch.manual_seed(0)
    timm_vit = VisionTransformer(**TINY, num_classes=10).eval()  # a plain timm checkpoint, head included
    path = tmp_path / "timm_vit.pth"
    torch.save(timm_vit.state_dict(), path)
    vit = vit_tiny(**TINY, weights=path).eval()
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(vit.forward_tokens(x, final_norm=True), timm_vit.forward_features(x))
    # and the other way: a wrapper checkpoint into a bare timm model
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": vit.state_dict()}, wrapped)
    bare = VisionTransformer(**TINY, num_classes=0)
    assert load_weights(bare, wrapped) == ([], [])
    torch.testing.assert_close(bare.pos_embed, timm_vit.pos_embed)


def test_load_dino_teacher_checkpoint(tmp_path):
    src = tiny_vit()
    teacher = {f"backbone.{k.removeprefix('timm_model.')}": v for k, v in src.state_dict().items()}
    teacher["head.mlp.0.weight"] = torch.randn(8, 64)  # DINO head, not part of the backbone
    path = tmp_path / "dino_checkpoint.pth"
    torch.save({"student": {"module.x": torch.zeros(1)}, "teacher": teacher, "epoch": 100}, path)
    dst = vit_tiny(**TINY).eval()
    assert load_weights(dst, path) == LoadReport([], [])
    outputs_equal(src, dst)


def test_load_module_prefix_and_key_map(tmp_path):
    src = tiny_vit()
    path = tmp_path / "ddp.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    dst = vit_tiny(**TINY).eval()
    load_weights(dst, path)
    outputs_equal(src, dst)

    other = tmp_path / "encoder.pth"
    raw = {k.removeprefix("timm_model."): v for k, v in src.state_dict().items()}
    torch.save({f"encoder.{k}": v for k, v in raw.items()} | {"decoder.w": torch.zeros(2)}, other)
    dst2 = vit_tiny(**TINY).eval()
    assert load_weights(dst2, other, key_map={"encoder.": "", "decoder.": None}) == ([], [])
    outputs_equal(src, dst2)
    dst3 = vit_tiny(**TINY).eval()
    rename = lambda k: None if k.startswith("decoder.") else k.removeprefix("encoder.")
    assert load_weights(dst3, other, key_map=rename) == ([], [])
    outputs_equal(src, dst3)


def test_pos_embed_resampled_from_another_grid(tmp_path):
    src = tiny_vit(img_size=16)  # 4x4 grid
    path = tmp_path / "small_grid.safetensors"
    save_file(src.state_dict(), path)
    dst = vit_tiny(**TINY)  # 8x8 grid
    assert load_weights(dst, path) == ([], [])
    assert dst.timm_model.pos_embed.shape == (1, 65, 64)
    torch.testing.assert_close(dst.timm_model.pos_embed[:, :1], src.timm_model.pos_embed[:, :1])
    # same as timm's own interpolation when running the 4x4 model on 32x32 images
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(dst.eval().forward_tokens(x), src.forward_tokens(x))


def test_shape_mismatch_raises_naming_file_and_keys(tmp_path):
    path = tmp_path / "wide_mlp_vit.safetensors"
    save_file(vit_tiny(**TINY, mlp_ratio=2.0).state_dict(), path)
    dst = vit_tiny(**TINY)
    before = dst.timm_model.cls_token.clone()
    with pytest.raises(CheckpointError, match="wide_mlp_vit.safetensors") as info:
        load_weights(dst, path)
    message = str(info.value)
    assert "6 tensor(s)" in message
    assert "timm_model.blocks.1.mlp.fc1.weight (checkpoint (128, 64) vs model (256, 64))" in message
    assert torch.equal(dst.timm_model.cls_token, before)  # nothing loaded
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_weights(dst, path, strict=False)


def test_strict_missing_and_unexpected_keys(tmp_path):
    state = tiny_vit().state_dict()
    del state["timm_model.norm.weight"]
    state["timm_model.extra.weight"] = torch.zeros(3)
    path = tmp_path / "partial.safetensors"
    save_file(state, path)
    dst = vit_tiny(**TINY)
    with pytest.raises(CheckpointError, match="partial.safetensors") as info:
        load_weights(dst, path)
    assert "timm_model.norm.weight" in str(info.value) and "timm_model.extra.weight" in str(info.value)
    report = load_weights(dst, path, strict=False)
    assert report.missing == ["timm_model.norm.weight"] and report.unexpected == ["timm_model.extra.weight"]
    torch.testing.assert_close(dst.timm_model.cls_token, state["timm_model.cls_token"])


def test_missing_or_unreadable_file(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pth"):
        load_weights(tiny_vit(), tmp_path / "nope.pth")
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pth"):
        load_weights(tiny_vit(), bad)
    empty = tmp_path / "meta_only.pth"
    torch.save({"epoch": 3, "args": "x"}, empty)
    with pytest.raises(CheckpointError, match="no tensors"):
        load_weights(tiny_vit(), empty)


def test_resnet_load_timm_layout_drops_classifier(tmp_path):
    torch.manual_seed(0)
    src = resnet18().eval()
    state = {k.removeprefix("timm_model."): v for k, v in src.state_dict().items()}
    state |= {"fc.weight": torch.zeros(10, 512), "fc.bias": torch.zeros(10)}
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    dst = resnet18(weights=path).eval()
    x = images(1, 64)
    with torch.no_grad():
        torch.testing.assert_close(dst.forward_maps(x), src.forward_maps(x))
