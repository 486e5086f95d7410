import numpy as np
import pytest
import torch
from cyclic_walks.data.synthetic import render_textured_scene
from cyclic_walks.models import BackboneConfig, build_backbone
from cyclic_walks.models.backbone import BackboneError, load_vit_weights
from cyclic_walks.repro import affinity_gap, token_labels
from safetensors.torch import save_file

from visioncore.backbones import vit_tiny

# The native size stays 224 (DINO ViT-S/8's) so that loading resamples no position embedding.
TINY = {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}


def tiny_cfg(**kw):
    return BackboneConfig(kind="vit_tiny", patch_size=8, embed_dim=32, depth=2, num_heads=2, **kw)


def test_vit_tokens_before_final_norm_without_cls_at_any_size():
    torch.manual_seed(0)
    backbone = build_backbone(tiny_cfg())
    images = torch.rand(2, 3, 48, 40)
    tokens, grid = backbone(images)
    assert grid == (6, 5) and tokens.shape == (2, 30, 32) and not tokens.requires_grad
    x = backbone.normalise(images)
    torch.testing.assert_close(tokens, backbone.extractor.forward_tokens(x, with_cls=False, final_norm=False))
    assert all(not p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not backbone.training  # frozen backbones stay in eval mode


def test_dino_checkpoint_loads_and_bad_checkpoint_names_file(tmp_path):
    torch.manual_seed(1)
    source = vit_tiny(**TINY)
    state = {f"backbone.{k.removeprefix('timm_model.')}": v for k, v in source.state_dict().items()}
    torch.save({"teacher": state, "epoch": 3}, tmp_path / "dino.pth")
    backbone = build_backbone(tiny_cfg(weights=str(tmp_path / "dino.pth")))
    images = torch.rand(1, 3, 32, 32)
    expected = source.forward_tokens(backbone.normalise(images), with_cls=False, final_norm=False)
    torch.testing.assert_close(backbone(images)[0], expected)
    wide = vit_tiny(patch_size=8, embed_dim=48, depth=2, num_heads=2)
    save_file(
        {k.removeprefix("timm_model."): v for k, v in wide.state_dict().items()},
        str(tmp_path / "wide.safetensors"),
    )
    with pytest.raises(ValueError, match="wide.safetensors"):
        build_backbone(tiny_cfg(weights=str(tmp_path / "wide.safetensors")))
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        build_backbone(tiny_cfg(weights=str(tmp_path / "absent.pth")))
    with pytest.raises(BackboneError, match="kind"):
        build_backbone(BackboneConfig(kind="vgg"))


def test_transformers_vit_layout_matches_hidden_states(tmp_path):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(2)
    hf = ViTModel(
        ViTConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
            image_size=224,
            patch_size=8,
            layer_norm_eps=1e-6,
            qkv_bias=True,
        ),
        add_pooling_layer=False,
    ).eval()
    v5 = {k: v.contiguous() for k, v in hf.state_dict().items()}
    save_file(v5, str(tmp_path / "hf_v5.safetensors"))
    # The hub's facebook/dino-vits8 files use the transformers 4.x names; write that layout too.
    renames = {
        "layers.": "encoder.layer.",
        "attention.q_proj": "attention.attention.query",
        "attention.k_proj": "attention.attention.key",
        "attention.v_proj": "attention.attention.value",
        "attention.o_proj": "attention.output.dense",
        "mlp.fc1": "intermediate.dense",
        "mlp.fc2": "output.dense",
    }
    v4 = {}
    for key, value in v5.items():
        for old, new in renames.items():
            key = key.replace(old, new)
        v4[key] = value
    torch.save(v4, tmp_path / "pytorch_model.bin")
    pixels = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = hf(pixel_values=pixels, output_hidden_states=True).hidden_states[-1][:, 1:]
    for name in ("hf_v5.safetensors", "pytorch_model.bin"):
        vit = vit_tiny(**TINY)
        load_vit_weights(vit, tmp_path / name)
        with torch.no_grad():
            got = vit.forward_tokens(pixels, with_cls=False, final_norm=False)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_colour_histogram_separates_objects_unlike_random_conv():
    rng = np.random.default_rng(0)
    scenes = [render_textured_scene(rng, 64, 3) for _ in range(6)]
    images = torch.stack([torch.from_numpy(img).permute(2, 0, 1).float() / 255 for img, _, _ in scenes])
    labels = token_labels(np.stack([inst for _, inst, _ in scenes]), 8)
    histogram = build_backbone(
        BackboneConfig(kind="colour_histogram", patch_size=8, histogram_bins=3, input_norm="unit")
    )
    tokens, grid = histogram(images)
    assert grid == (8, 8) and tokens.shape == (6, 64, 27)
    f = torch.nn.functional.normalize(tokens, dim=-1)
    same = torch.from_numpy((labels[:, :, None] == labels[:, None]) & (labels[:, :, None] > 0))
    assert (f @ f.transpose(1, 2))[same].mean() > 0.7  # the P-W-P threshold links tokens of one object
    conv = build_backbone(BackboneConfig(kind="random_conv", patch_size=8, embed_dim=16))
    conv_tokens, _ = conv(images)
    assert affinity_gap(tokens, labels) > 0.3
    assert affinity_gap(tokens, labels) > affinity_gap(conv_tokens, labels) + 0.1
    again, _ = build_backbone(BackboneConfig(kind="random_conv", patch_size=8, embed_dim=16))(images)
    torch.testing.assert_close(conv_tokens, again)  # seeded: the same extractor in every process
