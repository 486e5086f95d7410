import pytest
import torch
from deepfake_mae.config import get_config, mae_kwargs
from deepfake_mae.losses import discrepancy_margin_loss, mae_loss, part_margin_loss, patchify, unpatchify
from deepfake_mae.models.convert import load_pretrained_mae
from deepfake_mae.models.detector import (
    DeepfakeDetector,
    PartDiscrepancyHead,
    layer_id,
    param_groups,
    part_discrepancies,
    weight_decay_groups,
)
from deepfake_mae.models.mae import FacePartMAE, visible_indices
from deepfake_mae.models.masking import box_pixel_mask, patch_membership, random_mask

from visioncore.backbones import sincos_pos_embed_2d
from visioncore.hub import CheckpointError

TINY_MAE = mae_kwargs(get_config("tiny").model)
DETECTOR = dict(mae=TINY_MAE, head_hidden=8, part_margin=1.0, max_frames=4)


def _boxes(batch: int, time: int) -> torch.Tensor:
    box = torch.tensor([[6.0, 6.0, 26.0, 12.0], [13.0, 13.0, 19.0, 19.0], [10.0, 21.0, 22.0, 27.0]])
    return box.expand(batch, time, 3, 4).clone()


def test_patchify_roundtrip_and_order():
    x = torch.randn(2, 3, 32, 32)
    p = patchify(x, 8)
    assert p.shape == (2, 16, 192)
    torch.testing.assert_close(unpatchify(p, 8, 4), x)
    # patch 1 is the second patch of the first row; values ordered (row, col, channel)
    torch.testing.assert_close(p[0, 1, :3], x[0, :, 0, 8])


def test_mae_loss_only_counts_masked_patches():
    pred, target = torch.zeros(1, 4, 2), torch.zeros(1, 4, 2)
    target[0, 0] = 10.0  # a huge error on a VISIBLE patch must not count
    mask = torch.tensor([[False, True, True, False]])
    assert mae_loss(pred, target, mask).item() == 0.0
    target[0, 1] = 1.0
    assert mae_loss(pred, target, mask).item() == pytest.approx(0.5)
    part = torch.tensor([[False, True, False, False]])
    assert mae_loss(pred, target, mask, part, part_weight=1.0).item() == pytest.approx(0.5 + 1.0)


def test_mae_forward_and_gradients_only_through_masked_loss():
    torch.manual_seed(0)
    mae = FacePartMAE(**TINY_MAE)
    x = torch.randn(4, 3, 32, 32)
    mask = random_mask(4, 16, 0.5, torch.Generator().manual_seed(0))
    pred = mae(x, mask)
    assert pred.shape == (4, 16, 8 * 8 * 3)
    assert not mae.encoder.timm_model.pos_embed.requires_grad  # fixed sin-cos
    loss = mae.loss(x, mask)
    loss.backward()
    assert mae.decoder.mask_token.grad.abs().sum() > 0
    # norm_pix target is per-patch standardised
    t = mae.target(x)
    torch.testing.assert_close(t.mean(-1), torch.zeros(4, 16), atol=1e-5, rtol=0)


def test_visible_indices_reject_unequal_counts():
    mask = torch.tensor([[True, False, False], [True, True, False]])
    with pytest.raises(ValueError):
        visible_indices(mask)
    assert visible_indices(torch.tensor([[True, False, False]])).tolist() == [[1, 2]]


def test_detector_forward_backward():
    torch.manual_seed(0)
    det = DeepfakeDetector(**DETECTOR, temporal="transformer")
    frames, boxes = torch.randn(2, 3, 3, 32, 32), _boxes(2, 3)
    out = det(frames, boxes)
    assert out["logit"].shape == (2,) and out["discrepancy"].shape == (2, 3)
    assert (out["discrepancy"] > 0).all()
    torch.testing.assert_close(out["logit"], out["enc_logit"] + out["dec_logit"])
    out["logit"].sum().backward()
    assert det.encoder.timm_model.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert det.mae.decoder.pred.weight.grad.abs().sum() > 0


def test_discrepancy_loss_moves_network_2():
    torch.manual_seed(0)
    det = DeepfakeDetector(**DETECTOR)
    frames, boxes = torch.randn(2, 2, 3, 32, 32), _boxes(2, 2)
    labels = torch.tensor([0, 1])
    before = {k: v.clone() for k, v in det.mae.state_dict().items()}
    opt = torch.optim.SGD([p for p in det.mae.parameters() if p.requires_grad], lr=0.1)
    loss = discrepancy_margin_loss(det.discrepancies(frames, boxes).mean(1), labels, margin=5.0)
    loss.backward()
    opt.step()
    changed = [k for k, v in det.mae.state_dict().items() if not torch.equal(v, before[k])]
    assert any("decoder" in k for k in changed) and any("encoder" in k for k in changed)


def test_margin_loss_values():
    d = torch.tensor([0.2, 0.3, 2.0])
    y = torch.tensor([0, 1, 1])
    # real: 0.2 ; fake below margin: 1 - 0.3 ; fake beyond margin: 0
    assert discrepancy_margin_loss(d, y, 1.0).item() == pytest.approx((0.2 + 0.7 + 0.0) / 3)


def test_frozen_network_2_and_branch_ablations():
    det = DeepfakeDetector(**DETECTOR, freeze_net2=True)
    assert not any(p.requires_grad for p in det.mae.parameters())
    frames, boxes = torch.randn(1, 2, 3, 32, 32), _boxes(1, 2)
    torch.testing.assert_close(
        det.discrepancies(frames, boxes), det.discrepancies(frames, boxes)
    )  # cacheable
    enc = DeepfakeDetector(**DETECTOR, branches="encoder")
    out = enc(frames, boxes)
    assert torch.equal(out["logit"], out["enc_logit"])
    dec = DeepfakeDetector(**DETECTOR, branches="decoder")
    assert not any(p.requires_grad for p in dec.encoder.parameters())


def test_layer_decay_groups():
    det = DeepfakeDetector(**DETECTOR)
    assert layer_id("encoder.timm_model.patch_embed.proj.weight", 2) == 0
    assert layer_id("mae.encoder.timm_model.blocks.1.mlp.fc1.weight", 2) == 2
    assert layer_id("enc_head.weight", 2) == 3
    groups = param_groups(det, 0.05, 0.75, 2)
    scales = sorted({g["lr_scale"] for g in groups})
    assert scales == pytest.approx([0.75**3, 0.75**2, 0.75, 1.0])
    n = sum(p.numel() for g in groups for p in g["params"])
    assert n == sum(p.numel() for p in det.parameters() if p.requires_grad)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    det = DeepfakeDetector(**DETECTOR).eval()
    frames, boxes = torch.randn(1, 2, 3, 32, 32), _boxes(1, 2)
    g = lambda: torch.Generator().manual_seed(3)
    ref = det(frames, boxes, generator=g())["logit"]
    det.save_pretrained(tmp_path / "det")
    again = DeepfakeDetector.from_pretrained(tmp_path / "det")
    torch.testing.assert_close(again(frames, boxes, generator=g())["logit"], ref)
    mae = FacePartMAE(**TINY_MAE)
    mae.save_pretrained(tmp_path / "mae")
    with pytest.raises(CheckpointError):
        FacePartMAE.from_pretrained(tmp_path / "mae", embed_dim=64)


def test_init_from_transformers_layout(tmp_path):
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    cfg = ViTMAEConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        decoder_hidden_size=16,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
        image_size=32,
        patch_size=8,
        layer_norm_eps=1e-6,
        mask_ratio=0.5,
    )
    torch.manual_seed(0)
    hf = ViTMAEForPreTraining(cfg).eval()
    with (
        torch.no_grad()
    ):  # a real MAE checkpoint holds the sin-cos tables (transformers 5 leaves them zero at init)
        hf.vit.embeddings.position_embeddings.copy_(sincos_pos_embed_2d(32, 4, cls_token=True)[None])
        hf.decoder.decoder_pos_embed.copy_(sincos_pos_embed_2d(16, 4, cls_token=True)[None])
    hf.save_pretrained(tmp_path / "hf")
    mae = FacePartMAE(**TINY_MAE).eval()
    load_pretrained_mae(mae, tmp_path / "hf")
    torch.testing.assert_close(
        mae.encoder.timm_model.patch_embed.proj.weight, hf.vit.embeddings.patch_embeddings.projection.weight
    )
    # Same masking through transformers' noise argument: keep the 8 patches with the lowest noise.
    x = torch.randn(1, 3, 32, 32)
    noise = torch.rand(1, 16)
    keep = noise.argsort(1)[:, :8]
    mask = torch.ones(1, 16, dtype=torch.bool)
    mask[0, keep[0]] = False
    with torch.no_grad():
        ours = mae(x, mask)
        theirs = hf(pixel_values=x, noise=noise).logits
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_init_from_timm_layout_and_wrong_architecture(tmp_path, caplog):
    from safetensors.torch import save_file

    src = FacePartMAE(**TINY_MAE)
    enc = {
        k.removeprefix("encoder.timm_model."): v
        for k, v in src.state_dict().items()
        if k.startswith("encoder.")
    }
    save_file(enc, tmp_path / "vit.safetensors")
    mae = FacePartMAE(**TINY_MAE)
    missing = load_pretrained_mae(mae, tmp_path / "vit.safetensors")
    assert all(k.startswith("decoder.") or "pos_embed" in k for k in missing) and missing
    assert "decoder starts from random" in caplog.text
    torch.testing.assert_close(
        mae.encoder.timm_model.blocks[1].mlp.fc2.weight, src.encoder.timm_model.blocks[1].mlp.fc2.weight
    )
    torch.save({"model": {**enc, "blocks.0.attn.qkv.weight": torch.zeros(5, 5)}}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="bad.pth.*shape"):
        load_pretrained_mae(FacePartMAE(**TINY_MAE), tmp_path / "bad.pth")


def test_detector_takes_one_mae_config(tmp_path):
    det = DeepfakeDetector(**DETECTOR)
    assert det.encoder.embed_dim == det.mae.encoder.embed_dim == TINY_MAE["embed_dim"]
    assert len(det.encoder.blocks) == len(det.mae.encoder.blocks) == TINY_MAE["depth"]
    with pytest.raises(ValueError, match="bogus"):
        DeepfakeDetector(mae={**TINY_MAE, "bogus": 1})
    det.save_pretrained(tmp_path / "det")
    assert DeepfakeDetector.from_pretrained(tmp_path / "det").mae.decoder.pred.out_features == 8 * 8 * 3


def test_three_part_views_in_one_forward_equal_separate_forwards():
    """The batched network-2 pass gives, per part, what one forward per part-masked view gives (same masks)."""
    from deepfake_mae.losses import part_pixel_error
    from deepfake_mae.models.masking import every_part_mask

    torch.manual_seed(0)
    mae = FacePartMAE(**TINY_MAE).eval()
    images, boxes = torch.randn(4, 3, 32, 32), _boxes(4, 1)[:, 0]
    with torch.no_grad():
        batched = part_discrepancies(mae, images, boxes, 1.0, 0.0, torch.Generator().manual_seed(5))
        member = patch_membership(boxes, mae.grid, mae.patch_size, 1.0)
        masks, part_masks = every_part_mask(member, 0.0, torch.Generator().manual_seed(5))
        pixels, target = box_pixel_mask(boxes, 32, 32), mae.target(images)
        for part in range(3):
            mask = masks[part * 4 : (part + 1) * 4]
            assert torch.equal(part_masks[part * 4 : (part + 1) * 4], member[:, part])
            assert (mask | ~member[:, part]).all()  # the part itself is fully masked in its view
            err = part_pixel_error(mae(images, mask), target, pixels[:, part], mae.patch_size, mae.grid)
            torch.testing.assert_close(batched[:, part], err, rtol=1e-5, atol=1e-6)
    assert masks.sum(1).unique().numel() == 1  # one common count: one forward


def test_per_part_margin_loss_leaves_the_other_parts_alone():
    # a mouth-swapped fake whose mouth error is beyond the margin: no push on the eyes and nose
    d = torch.tensor([[0.2, 0.3, 2.0]], requires_grad=True)
    fake = torch.tensor([1])
    part_margin_loss(d, fake, margin=1.0, form="part").backward()
    assert d.grad.abs().sum() == 0
    d.grad = None
    part_margin_loss(d, fake, margin=1.0, form="mean").backward()  # the average (0.83) is below the margin
    assert (d.grad < 0).all()  # pushes every part up, eyes and nose included
    # below the margin the per-part form pushes the most discrepant part only; reals pull every part down
    d = torch.tensor([[0.2, 0.3, 0.6], [0.2, 0.3, 0.6]], requires_grad=True)
    loss = part_margin_loss(d, torch.tensor([1, 0]), margin=1.0, form="part")
    assert loss.item() == pytest.approx(((1 - 0.6) + (0.2 + 0.3 + 0.6) / 3) / 2)
    loss.backward()
    assert d.grad[0].tolist() == pytest.approx([0, 0, -0.5]) and (d.grad[1] > 0).all()
    with pytest.raises(ValueError):
        part_margin_loss(d, torch.tensor([1, 0]), 1.0, form="max")


@pytest.mark.parametrize("hidden", [0, 8])
def test_network_2_head_stays_monotone_after_training(hidden):
    """A larger discrepancy never lowers the score: checked on random weights, after adversarial training steps that
    reward a U-shape (low AND high discrepancies labelled fake)."""
    torch.manual_seed(hidden)
    head = PartDiscrepancyHead(3, hidden)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(50):
        d = torch.rand(64, 3) * 4 + 1e-3
        labels = ((d[:, 0] < 0.5) | (d[:, 0] > 3)).float()  # U-shaped target in part 0
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(d), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    head.eval()
    d = (torch.rand(256, 3) * 4 + 1e-3).requires_grad_(True)
    head(d).sum().backward()
    assert (d.grad >= 0).all()
    grid = torch.linspace(0.01, 5, 50)
    scores = head(torch.stack([grid, torch.ones(50), torch.ones(50)], 1)).detach()
    assert (scores[1:] >= scores[:-1] - 1e-6).all()


def test_pretraining_weight_decay_groups_follow_the_mae_recipe():
    mae = FacePartMAE(**TINY_MAE)
    decay, no_decay = weight_decay_groups(mae, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in mae.named_parameters()}
    undecayed = {names[id(p)] for p in no_decay["params"]}
    decayed = {names[id(p)] for p in decay["params"]}
    assert "decoder.mask_token" in undecayed and "encoder.timm_model.cls_token" in undecayed
    assert all(n.endswith(".bias") or "norm" in n or "token" in n for n in undecayed)
    assert all(p.ndim >= 2 for n, p in mae.named_parameters() if n in decayed)
    assert (
        "decoder.blocks.0.attn.qkv.weight" in decayed
        and "encoder.timm_model.patch_embed.proj.weight" in decayed
    )
    assert not any("pos_embed" in n for n in decayed | undecayed)  # fixed sin-cos: not trained at all
    assert len(decayed) + len(undecayed) == sum(p.requires_grad for p in mae.parameters())


def test_from_scratch_initialisation_is_maes():
    """MAE's initialize_weights at ViT-B/16: xavier-uniform linears, zero biases, tokens N(0, 0.02), unit norms."""
    torch.manual_seed(0)
    mae = FacePartMAE()  # ViT-B/16, 512x8 decoder
    qkv = mae.encoder.timm_model.blocks[0].attn.qkv
    fan_out, fan_in = qkv.weight.shape
    assert qkv.weight.std().item() == pytest.approx((2 / (fan_in + fan_out)) ** 0.5, rel=0.05)
    pred = mae.decoder.pred.weight
    assert pred.std().item() == pytest.approx((2 / sum(pred.shape)) ** 0.5, rel=0.05)
    proj = (
        mae.encoder.timm_model.patch_embed.proj.weight
    )  # as a Linear on the flattened (768, 3*16*16) weight
    assert proj.std().item() == pytest.approx((2 / (768 + 3 * 16 * 16)) ** 0.5, rel=0.05)
    for name, module in mae.named_modules():
        if isinstance(module, torch.nn.Linear):
            assert torch.count_nonzero(module.bias) == 0, name
        if isinstance(module, torch.nn.LayerNorm):
            assert torch.all(module.weight == 1) and torch.count_nonzero(module.bias) == 0, name
            assert module.eps == 1e-6, name
    for token in (mae.encoder.timm_model.cls_token, mae.decoder.mask_token):
        assert token.std().item() == pytest.approx(0.02, rel=0.2)
    assert mae.decoder.blocks[0].norm1.eps == 1e-6


def test_mae_training_checkpoint_with_args_namespace_loads(tmp_path):
    """MAE's own checkpoint-N.pth (model, optimizer, epoch, scaler, args Namespace) loads; other globals do not."""
    import argparse
    import collections
    from pathlib import PosixPath

    torch.manual_seed(0)
    source = FacePartMAE(**TINY_MAE)
    official = {}  # facebookresearch/mae names
    renames = {"encoder.timm_model.": "", "decoder.mask_token": "mask_token", "decoder.": "decoder_"}
    for key, value in source.state_dict().items():
        old = next(k for k in renames if key.startswith(k))
        official[renames[old] + key[len(old) :]] = value
    args = argparse.Namespace(model="mae_vit_base_patch16", mask_ratio=0.75, lr=None, epochs=800)
    ckpt = {
        "model": official,
        "optimizer": {"state": {}},
        "epoch": 799,
        "scaler": {"scale": 65536.0},
        "args": args,
    }
    torch.save(ckpt, tmp_path / "checkpoint-799.pth")
    target = FacePartMAE(**TINY_MAE)
    load_pretrained_mae(target, tmp_path / "checkpoint-799.pth")
    for key, value in source.state_dict().items():
        if "pos_embed" not in key:
            assert torch.equal(target.state_dict()[key], value), key
    for name, bad in (
        ("collections.defaultdict", collections.defaultdict(int)),
        ("pathlib.PosixPath", PosixPath("/x")),
    ):
        torch.save({**ckpt, "args": argparse.Namespace(extra=bad)}, tmp_path / "bad.pth")
        with pytest.raises(CheckpointError, match=f"bad.pth.*{name.split('.')[-1]}") as err:
            load_pretrained_mae(FacePartMAE(**TINY_MAE), tmp_path / "bad.pth")
        assert len(str(err.value).splitlines()) == 1
